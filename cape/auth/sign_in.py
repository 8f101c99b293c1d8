"""Signing in with a password: rate limits, the password check and the browser's sign-in record.

The one service that commits in the middle of its work: the counted attempt (and, on PostgreSQL,
the per-account lock) is committed before the password is hashed, so that no transaction (on
SQLite, the one write turn) waits about 0.2 s on the hashing. The rest continues in a new
transaction, committed by the request boundary as usual.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from cape.auth import service, throttle
from cape.kit.errors import NotAuthenticated, TooManyAttempts


def sign_in(
    session: Session,
    *,
    email: str,
    password: str,
    client_host: str | None,
    user_agent: str | None,
    keep_for: timedelta,
    previous_key: str | None = None,
) -> str:
    """Check the password and start a browser sign-in; returns the key for its cookie.

    Raises ``TooManyAttempts`` past a limit (before the password is checked) and
    ``NotAuthenticated`` for a wrong email or password.
    """
    if "\x00" in email or "\x00" in password:  # no such account can exist, nor be stored
        raise NotAuthenticated("wrong email or password", code="bad_credentials")
    # Password guessing is slowed, not just logged: past a limit, the password is not even checked.
    email_key, address = service.normalize_email(email), throttle.address_key(client_host)
    counted = [(throttle.SIGN_IN_BY_EMAIL_AND_ADDRESS, f"{email_key} {address}"),
               (throttle.SIGN_IN_BY_EMAIL, email_key), (throttle.SIGN_IN_BY_ADDRESS, address)]  # fmt: skip
    throttle.serialize(session, keys=[email_key, address])
    if wait := max(throttle.retry_after(session, limit=limit, key=key) or 0 for limit, key in counted):
        raise TooManyAttempts("too many sign-in attempts; try again later", retry_after_s=wait)
    # Counted before the password is checked, so that parallel guesses count too; taken back
    # below when the password is right.
    hit_ids = [throttle.hit(session, limit=limit, key=key) for limit, key in counted]
    candidate = service.sign_in_candidate(session, email=email)
    session.commit()  # hashing takes a while: no transaction (on SQLite, the write turn) waits on it
    user_id = service.check_password(candidate, password)
    new_hash = service.renewed_hash(candidate, password) if user_id is not None else None
    user = service.signed_in_user(session, candidate=candidate, new_hash=new_hash) if user_id else None
    if user is None:
        raise NotAuthenticated("wrong email or password", code="bad_credentials")
    throttle.uncount(session, hit_ids=hit_ids)
    limit, key = counted[0]
    throttle.forget(session, limit=limit, key=key)  # and earlier misses on this account from this address
    if previous_key is not None:
        service.end_web_session(session, key=previous_key)
    return service.start_web_session(session, user=user, user_agent=user_agent, keep_for=keep_for)
