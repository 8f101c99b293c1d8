"""Who is calling: tokens, sign-in and out, deactivated users, CSRF, password guessing.

Every route's answer to each role is walked in tests/web/test_access.py."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from cape import jobs
from cape.auth.service import end_all_web_sessions
from cape.auth.throttle import (
    SIGN_IN_BY_ADDRESS,
    SIGN_IN_BY_EMAIL,
    SIGN_IN_BY_EMAIL_AND_ADDRESS,
    address_key,
    hit,
    prune,
)
from cape.kit.clock import utcnow
from cape.models import RateLimitHit, UserSession
from tests.fixtures.factories import make_inbound
from tests.fixtures.web import PASSWORD, form_csrf, sign_in


def test_bad_or_deactivated_tokens_get_401(client, dave_outsider):
    assert client.get("/api/v1/users", headers={"Authorization": "Bearer cape_nope"}).status_code == 401
    assert client.get("/api/v1/users", headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.get("/api/v1/users", headers=dave_outsider.headers).status_code == 401


def test_any_signed_in_user_lists_users(client, alice_agent, carol_admin):
    emails = {u["email"] for u in client.get("/api/v1/users", headers=alice_agent.headers).json()}
    assert {"alice.agent@example.test", "carol.admin@example.test"} <= emails
    assert all("password" not in key for u in client.get("/api/v1/users", headers=alice_agent.headers).json()
               for key in u)  # fmt: skip


@pytest.mark.parametrize("actor", ["alice_agent", "bob_supervisor"])
def test_only_admins_create_users(client, request, actor):
    caller = request.getfixturevalue(actor)
    response = client.post("/api/v1/users", json={"email": "new@example.test", "name": "New"}, headers=caller.headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_admin_creates_user_who_can_then_sign_in(client, carol_admin):
    body = {"email": "Nina@Example.test", "name": "Nina", "role": "supervisor", "password": "a-long-password"}
    response = client.post("/api/v1/users", json=body, headers=carol_admin.headers)
    assert response.status_code == 201, response.text
    assert response.json()["email"] == "nina@example.test"
    assert response.json()["role"] == "supervisor"
    again = client.post("/api/v1/users", json=body, headers=carol_admin.headers)
    assert again.status_code == 409

    login = client.post("/login", data={"email": "nina@example.test", "password": "a-long-password",
                                        "csrf_token": form_csrf(client)}, follow_redirects=False)  # fmt: skip
    assert login.status_code == 303
    me = client.get("/api/v1/users/me").json()
    assert me["email"] == "nina@example.test"


def test_user_creation_validates_input(client, carol_admin):
    h = carol_admin.headers
    assert client.post("/api/v1/users", json={"email": "x", "name": "X"}, headers=h).status_code == 422
    bad_role = {"email": "x@example.test", "name": "X", "role": "owner"}
    assert client.post("/api/v1/users", json=bad_role, headers=h).status_code == 422
    short = {"email": "x@example.test", "name": "X", "password": "short"}
    assert client.post("/api/v1/users", json=short, headers=h).status_code == 422


def test_cookie_session_needs_csrf_token_for_changes(client, db, alice_agent):
    result = make_inbound(db)
    sign_in(client, alice_agent)
    url = f"/api/v1/conversations/{result.conversation_id}/replies"
    assert client.get(f"/api/v1/conversations/{result.conversation_id}").status_code == 200  # reads need none
    refused = client.post(url, json={"body": "forged"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/inbox").text).group(1)
    accepted = client.post(url, json={"body": "real"}, headers={"X-CSRF-Token": token})
    assert accepted.status_code == 201


def test_login_itself_needs_the_csrf_token(client, alice_agent):
    response = client.post("/login", data={"email": alice_agent.user.email, "password": "correct horse battery"})
    assert response.status_code == 403


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(client, alice_agent):
    for email, password in [(alice_agent.user.email, "wrong"), ("nobody@example.test", "correct horse battery")]:
        response = client.post("/login", data={"email": email, "password": password, "csrf_token": form_csrf(client)})
        assert response.status_code == 401
        assert "Wrong email or password" in response.text


def test_deactivated_user_cannot_sign_in(client, dave_outsider):
    response = client.post("/login", data={"email": dave_outsider.user.email, "password": "correct horse battery",
                                           "csrf_token": form_csrf(client)})  # fmt: skip
    assert response.status_code == 401


def test_open_redirects_are_refused(client, alice_agent):
    response = client.post("/login", data={"email": alice_agent.user.email, "password": "correct horse battery",
                                           "csrf_token": form_csrf(client), "next": "https://evil.example"},
                           follow_redirects=False)  # fmt: skip
    assert response.headers["location"] == "/inbox"


def test_teams_admins_create_everyone_reads_and_conversations_join_them(client, db, alice_agent, carol_admin):
    body = {"name": "Returns", "member_ids": [alice_agent.user.id]}
    assert client.post("/api/v1/teams", json=body, headers=alice_agent.headers).status_code == 403
    created = client.post("/api/v1/teams", json=body, headers=carol_admin.headers)
    assert created.status_code == 201
    assert client.post("/api/v1/teams", json=body, headers=carol_admin.headers).status_code == 409
    bad = client.post("/api/v1/teams", json={"name": "Ghosts", "member_ids": [987654]}, headers=carol_admin.headers)
    assert bad.status_code == 422
    teams = client.get("/api/v1/teams", headers=alice_agent.headers).json()
    assert teams == [{"id": created.json()["id"], "name": "Returns", "is_active": True,
                      "member_ids": [alice_agent.user.id]}]  # fmt: skip

    result = make_inbound(db)
    url = f"/api/v1/conversations/{result.conversation_id}"
    patched = client.patch(url, json={"team_id": created.json()["id"]}, headers=alice_agent.headers)
    assert patched.json()["team_id"] == created.json()["id"]
    assert client.patch(url, json={"team_id": 424242}, headers=alice_agent.headers).status_code == 422


def test_admin_deactivates_a_user_whose_token_then_stops_working(client, alice_agent, bob_supervisor, carol_admin):
    url = f"/api/v1/users/{alice_agent.user.id}"
    assert client.patch(url, json={"is_active": False}, headers=bob_supervisor.headers).status_code == 403
    assert client.get("/api/v1/users/me", headers=alice_agent.headers).status_code == 200
    response = client.patch(url, json={"is_active": False, "role": "supervisor"}, headers=carol_admin.headers)
    assert response.status_code == 200
    assert response.json()["is_active"] is False and response.json()["role"] == "supervisor"
    assert client.get("/api/v1/users/me", headers=alice_agent.headers).status_code == 401
    own = client.patch(f"/api/v1/users/{carol_admin.user.id}", json={"is_active": False}, headers=carol_admin.headers)
    assert own.status_code == 409
    bad = client.patch(url, json={"language": "xx"}, headers=carol_admin.headers)
    assert bad.status_code == 422


HTML = {"accept": "text/html"}


def test_signing_out_ends_the_session_for_every_copy_of_its_cookie(client, db, alice_agent):
    headers = sign_in(client, alice_agent)
    copied = dict(client.cookies)
    assert client.get("/inbox", headers=HTML, follow_redirects=False).status_code == 200
    assert client.post("/logout", headers=headers, follow_redirects=False).status_code == 303

    client.cookies.clear()
    for name, value in copied.items():
        client.cookies.set(name, value)  # the cookie as it was before signing out
    response = client.get("/inbox", headers=HTML, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert client.get("/api/v1/conversations").status_code == 401
    # Only the hash of a session's key is kept.
    assert all(len(key_hash) == 64 for key_hash in db.scalars(select(UserSession.key_hash)))


def test_a_deactivated_user_is_signed_out_of_open_sessions(client, db, alice_agent, carol_admin):
    sign_in(client, alice_agent)
    assert client.get("/inbox", headers=HTML, follow_redirects=False).status_code == 200
    url = f"/api/v1/users/{alice_agent.user.id}"
    changed = client.patch(url, json={"is_active": False}, headers=carol_admin.headers)
    assert changed.status_code == 200, changed.text
    assert client.get("/inbox", headers=HTML, follow_redirects=False).status_code == 303
    back = client.patch(url, json={"is_active": True}, headers=carol_admin.headers)
    assert back.status_code == 200
    assert client.get("/inbox", headers=HTML, follow_redirects=False).status_code == 303  # those sessions stay ended


def test_signing_out_everywhere_ends_every_sign_in_of_the_user(client, db, alice_agent):
    sign_in(client, alice_agent)
    assert end_all_web_sessions(db, user_id=alice_agent.user.id) == 1
    db.commit()
    assert client.get("/inbox", headers=HTML, follow_redirects=False).status_code == 303


def test_password_guessing_is_refused_for_a_while_then_allowed_again(client, db, alice_agent, monkeypatch):
    def attempt(password: str):
        data = {"email": alice_agent.user.email, "password": password, "csrf_token": form_csrf(client)}
        return client.post("/login", data=data, follow_redirects=False)

    for _ in range(SIGN_IN_BY_EMAIL_AND_ADDRESS.max_hits):
        assert attempt("guess").status_code == 401
    refused = attempt(PASSWORD)  # even the right password, while the email is being guessed at
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= SIGN_IN_BY_EMAIL_AND_ADDRESS.window.total_seconds() + 1
    assert "Too many failed sign-ins" in refused.text

    later = utcnow() + SIGN_IN_BY_EMAIL_AND_ADDRESS.window + timedelta(seconds=1)
    monkeypatch.setattr("cape.auth.throttle.utcnow", lambda: later)
    assert attempt(PASSWORD).status_code == 303
    email_hits = (
        select(func.count()).select_from(RateLimitHit).where(RateLimitHit.scope == SIGN_IN_BY_EMAIL_AND_ADDRESS.scope)
    )
    assert db.scalar(email_hits) == 0  # forgotten on success


def test_one_address_guessing_many_emails_is_refused_too(client, db, alice_agent):
    for n in range(SIGN_IN_BY_ADDRESS.max_hits):
        data = {"email": f"guess{n}@example.test", "password": "x", "csrf_token": form_csrf(client)}
        assert client.post("/login", data=data).status_code == 401
    data = {"email": alice_agent.user.email, "password": PASSWORD, "csrf_token": form_csrf(client)}
    assert client.post("/login", data=data).status_code == 429


def test_counts_of_other_addresses_do_not_lock_a_user_out(client, db, alice_agent):
    for _ in range(SIGN_IN_BY_EMAIL_AND_ADDRESS.max_hits):  # someone else guessing, from elsewhere
        hit(db, limit=SIGN_IN_BY_EMAIL_AND_ADDRESS, key=f"{alice_agent.user.email} 203.0.113.7")
        hit(db, limit=SIGN_IN_BY_EMAIL, key=alice_agent.user.email)
    data = {"email": alice_agent.user.email, "password": PASSWORD, "csrf_token": form_csrf(client)}
    assert client.post("/login", data=data, follow_redirects=False).status_code == 303


def test_ipv6_clients_count_by_their_64_and_expired_counts_are_pruned(db, monkeypatch):
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("::ffff:198.51.100.4") == address_key("198.51.100.4") == "198.51.100.4"
    assert address_key(None) == "unknown"
    hit(db, limit=SIGN_IN_BY_ADDRESS, key="198.51.100.4")
    later = utcnow() + SIGN_IN_BY_ADDRESS.window + timedelta(seconds=1)
    monkeypatch.setattr("cape.auth.throttle.utcnow", lambda: later)
    assert prune(db) >= 1
    assert db.scalar(select(func.count()).select_from(RateLimitHit)) == 0


def test_right_passwords_do_not_count_and_one_account_guessed_from_everywhere_is_held(client, db, alice_agent):
    for _ in range(3):  # a team signing in from one office address
        sign_in(client, alice_agent)
        client.cookies.clear()
    assert db.scalar(select(func.count()).select_from(RateLimitHit)) == 0
    for n in range(SIGN_IN_BY_EMAIL.max_hits):
        hit(db, limit=SIGN_IN_BY_EMAIL, key=alice_agent.user.email)
    data = {"email": alice_agent.user.email, "password": PASSWORD, "csrf_token": form_csrf(client)}
    assert client.post("/login", data=data).status_code == 429


def test_a_new_sign_in_clears_away_the_users_ended_ones_and_counts_are_pruned_by_a_job(client, db, alice_agent):
    headers = sign_in(client, alice_agent)
    client.post("/logout", headers=headers)
    sign_in(client, alice_agent)
    mine = select(func.count()).select_from(UserSession).where(UserSession.user_id == alice_agent.user.id)
    assert db.scalar(mine) == 1
    assert "cape.auth.tasks" in jobs.TASK_MODULES  # prune_rate_limits runs every 15 minutes
