"""The admin pages for people: inviting users, their role, language and deactivation; teams and members."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from cape import jobs
from cape.auth.service import create_team, team_member_ids
from cape.channels.email.service import SmtpConfig, create_email_channel, set_default_outbound
from cape.kit import clock
from cape.models import AuditEntry, Invitation, Role, Team, User
from tests.fixtures.mailservers import smtp_sink
from tests.fixtures.web import form_csrf, sign_in


def _invite(client, csrf, **fields):
    data = {"name": "Nina New", "email": "nina@example.test", "role": "supervisor", "language": "fr"} | fields
    return client.post("/admin/users", data=data, headers=csrf)


def _link(page) -> str:
    return re.search(r'value="http://testserver(/invitations/[^"]+)"', page.text).group(1)


def test_an_invited_user_chooses_a_password_from_the_link_and_is_signed_in(client, db, carol_admin):
    csrf = sign_in(client, carol_admin)
    page = _invite(client, csrf)
    assert page.status_code == 200 and "data-invitation" in page.text
    assert "No mailbox sends email" in page.text  # no default mailbox: the admin gives the link
    link = _link(page)
    nina = db.scalar(select(User).where(User.email == "nina@example.test"))
    assert nina.role is Role.supervisor and nina.language == "fr" and nina.password_hash is None
    events = set(db.scalars(select(AuditEntry.event).where(AuditEntry.subject_id == nina.id)))
    assert {"user.created", "user.invited"} <= events

    client.cookies.clear()
    welcome = client.get(link)
    assert welcome.status_code == 200 and 'lang="en"' in welcome.text and "nina@example.test" in welcome.text
    token = form_csrf(client, link)
    short = client.post(link, data={"password": "short", "password_again": "short", "csrf_token": token})
    assert short.status_code == 422 and 'id="password-error"' in short.text
    differ = client.post(link, data={"password": "long enough 1", "password_again": "long enough 2",
                                     "csrf_token": token})  # fmt: skip
    assert differ.status_code == 422 and 'id="password_again-error"' in differ.text
    done = client.post(link, data={"password": "long enough 1", "password_again": "long enough 1",
                                   "csrf_token": token}, follow_redirects=False)  # fmt: skip
    assert done.status_code == 303 and done.headers["location"] == "/inbox"
    inbox = client.get("/inbox")
    assert inbox.status_code == 200 and 'lang="fr"' in inbox.text and "Nina New" in inbox.text

    # The link works once.
    client.cookies.clear()
    again = client.get(link)
    assert again.status_code == 404 and 'data-invitation-problem="invitation_used"' in again.text
    reuse = client.post(link, data={"password": "another one 1", "password_again": "another one 1",
                                    "csrf_token": form_csrf(client, "/login")})  # fmt: skip
    assert reuse.status_code == 404
    # And the password chosen is the one to sign in with.
    login = client.post("/login", data={"email": "nina@example.test", "password": "long enough 1",
                                        "csrf_token": form_csrf(client)}, follow_redirects=False)  # fmt: skip
    assert login.status_code == 303


def test_an_invitation_expires_and_a_new_link_replaces_the_old_one(client, db, carol_admin, monkeypatch):
    csrf = sign_in(client, carol_admin)
    first = _link(_invite(client, csrf))
    nina = db.scalar(select(User).where(User.email == "nina@example.test"))
    second_page = client.post(f"/admin/users/{nina.id}/invitation", headers=csrf)
    second = _link(second_page)
    assert second != first

    client.cookies.clear()
    assert 'data-invitation-problem="invitation_used"' in client.get(first).text
    forged = second[:-4] + ("AAAA" if not second.endswith("AAAA") else "BBBB")
    assert 'data-invitation-problem="invitation_invalid"' in client.get(forged).text
    assert client.get(second).status_code == 200

    later = clock.utcnow() + timedelta(days=7, minutes=1)
    monkeypatch.setattr("cape.auth.invitations.utcnow", lambda: later)
    expired = client.get(second)
    assert expired.status_code == 404 and 'data-invitation-problem="invitation_expired"' in expired.text
    assert db.scalar(select(Invitation.used_at).where(Invitation.user_id == nina.id).order_by(Invitation.id.desc()))\
        is None  # fmt: skip


def test_inviting_keeps_what_was_typed_beside_the_error(client, carol_admin, alice_agent):
    csrf = sign_in(client, carol_admin)
    taken = _invite(client, csrf, email=alice_agent.user.email, name="Someone Else")
    assert taken.status_code == 409 and 'id="invite-email-error"' in taken.text
    assert 'value="Someone Else"' in taken.text
    empty = _invite(client, csrf, name=" ", email="not-an-address")
    assert empty.status_code == 422
    assert 'id="invite-name-error"' in empty.text and 'id="invite-email-error"' in empty.text


def test_the_invitation_is_emailed_from_the_default_mailbox(client, db, settings, session_factory, carol_admin):
    with smtp_sink() as sink:
        create_email_channel(db, address="help@example.com", name="Example Help",
                             app_secret=settings.resolved_secret_key,
                             smtp=SmtpConfig(host=sink.host, port=sink.port, starttls=False))  # fmt: skip
        set_default_outbound(db, address="help@example.com")
        db.commit()
        jobs.configure(session_factory, settings)
        try:
            csrf = sign_in(client, carol_admin)
            page = _invite(client, csrf, language="da")
            assert "Invitation sent by email" in page.text
            email = sink.wait_for(1)[0]
        finally:
            jobs._runtime.clear()
    assert email.rcpt_tos == ["nina@example.test"]
    text = email.message.get_content()
    assert _link(page) in text and "Hej Nina New" in text  # in the invited user's language


def test_admins_change_role_and_language(client, db, carol_admin, alice_agent):
    csrf = sign_in(client, carol_admin)
    saved = client.post(f"/admin/users/{alice_agent.user.id}", data={"role": "supervisor", "language": "da"},
                        headers=csrf, follow_redirects=False)  # fmt: skip
    assert saved.status_code == 303
    db.refresh(alice_agent.user)
    assert alice_agent.user.role is Role.supervisor and alice_agent.user.language == "da"
    page = client.get("/admin/users")
    assert "Supervisor" in page.text and "Danish" in page.text and ">supervisor<" not in page.text
    assert db.scalar(select(AuditEntry).where(AuditEntry.event == "user.updated", AuditEntry.subject_id ==
                                              alice_agent.user.id)) is not None  # fmt: skip


def test_deactivation_refuses_oneself_and_the_last_admin(client, db, carol_admin, alice_agent):
    csrf = sign_in(client, carol_admin)
    own = client.post(f"/admin/users/{carol_admin.user.id}/active", data={}, headers=csrf)
    assert own.status_code == 409 and f'id="user-{carol_admin.user.id}-error"' in own.text
    assert "You cannot deactivate yourself" in own.text
    demoted = client.post(f"/admin/users/{carol_admin.user.id}", data={"role": "agent", "language": "en"}, headers=csrf)
    assert demoted.status_code == 409
    assert re.search(r'<option value="agent" selected>', demoted.text)  # the choice is kept beside the error

    gone = client.post(f"/admin/users/{alice_agent.user.id}/active", data={}, headers=csrf, follow_redirects=False)
    assert gone.status_code == 303
    db.refresh(alice_agent.user)
    assert alice_agent.user.is_active is False
    back = client.post(f"/admin/users/{alice_agent.user.id}/active", data={"active": "true"}, headers=csrf,
                       follow_redirects=False)  # fmt: skip
    assert back.status_code == 303
    db.refresh(alice_agent.user)
    assert alice_agent.user.is_active is True


def test_the_last_admin_cannot_be_demoted_by_anyone(db, carol_admin):
    from cape.auth.service import update_user
    from cape.kit.errors import Conflict

    other = User(email="erin@example.test", name="Erin Admin", role=Role.admin, language="en")
    db.add(other)
    db.flush()
    update_user(db, user=other, actor=carol_admin.user, role=Role.agent)  # Carol stays: allowed
    with pytest.raises(Conflict) as refused:
        update_user(db, user=carol_admin.user, actor=other, is_active=False)  # the last admin
    assert refused.value.code == "last_admin"


def test_teams_are_created_renamed_deactivated_and_given_members(client, db, carol_admin, alice_agent, bob_supervisor):
    csrf = sign_in(client, carol_admin)
    created = client.post("/admin/teams", data={"name": "Returns"}, headers=csrf, follow_redirects=False)
    assert created.status_code == 303
    team = db.scalar(select(Team).where(Team.name == "Returns"))
    create_team(db, name="Billing", member_ids=[])
    db.commit()
    taken = client.post(f"/admin/teams/{team.id}", data={"name": "Billing"}, headers=csrf)
    assert taken.status_code == 409 and f'id="team-{team.id}-error"' in taken.text and 'value="Billing"' in taken.text
    duplicate = client.post("/admin/teams", data={"name": "Billing"}, headers=csrf)
    assert duplicate.status_code == 409 and 'id="new-team-error"' in duplicate.text

    url = f"/admin/teams/{team.id}"
    assert client.post(url, data={"name": "Returns and exchanges"}, headers=csrf).status_code == 200
    for person in (alice_agent, bob_supervisor):
        client.post(f"{url}/members", data={"add": str(person.user.id)}, headers=csrf)
    client.post(f"{url}/members", data={"remove": str(alice_agent.user.id)}, headers=csrf)
    client.post(f"{url}/active", data={}, headers=csrf)
    db.expire_all()
    team = db.get(Team, team.id)
    assert team.name == "Returns and exchanges" and team.is_active is False
    assert team_member_ids(db, team=team) == [bob_supervisor.user.id]
    page = client.get("/admin/teams")
    assert "Bob Supervisor" in page.text and "data-reactivate" in page.text
    events = set(db.scalars(select(AuditEntry.event).where(AuditEntry.subject_type == "team")))
    assert {"team.created", "team.updated", "team.deactivated"} <= events


@pytest.mark.parametrize("path", ["/admin/users", "/admin/teams"])
def test_agents_and_supervisors_get_a_403_page(client, alice_agent, bob_supervisor, path):
    for actor in (alice_agent, bob_supervisor):
        client.cookies.clear()
        sign_in(client, actor)
        response = client.get(path, headers={"accept": "text/html"})
        assert response.status_code == 403 and 'data-error-status="403"' in response.text


@pytest.mark.parametrize("language, words", [("fr", "Inviter"), ("da", "Invitér")])
def test_the_pages_speak_the_admins_language(client, db, carol_admin, language, words):
    carol_admin.user.language = language
    db.commit()
    sign_in(client, carol_admin)
    page = client.get("/admin/users")
    assert f'lang="{language}"' in page.text and words in page.text
