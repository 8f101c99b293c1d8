from hypothesis import given, settings
from hypothesis import strategies as st

from cape.auth.passwords import hash_password, verify_password


def test_hash_is_argon2id_and_verifies():
    hashed = hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "correct horse battery")
    assert not verify_password(hashed, "correct horse batterY")


def test_missing_or_broken_hash_never_verifies():
    assert not verify_password(None, "anything")
    assert not verify_password("not-a-hash", "anything")


@settings(max_examples=15, deadline=None)
@given(st.text(min_size=1, max_size=64))
def test_any_password_round_trips(password):
    assert verify_password(hash_password(password), password)
