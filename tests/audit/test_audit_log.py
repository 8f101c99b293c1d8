"""Admin changes are in the audit log: who, when, before and after, never a secret."""

from __future__ import annotations

import csv
import io
import json

from sqlalchemy import select
from typer.testing import CliRunner

from cape.channels.email.service import channel_for_recipient
from cape.cli import app as cli
from cape.models import Activity, AuditEntry, Channel
from tests.fixtures.databases import fresh_database
from tests.fixtures.factories import make_inbound
from tests.fixtures.web import sign_in

SECRET = "s3cret-password"


def entries(db, subject_type: str, subject_id: int) -> list[AuditEntry]:
    db.expire_all()
    query = select(AuditEntry).where(AuditEntry.subject_type == subject_type, AuditEntry.subject_id == subject_id)
    return list(db.scalars(query.order_by(AuditEntry.id)))


def audit_csv(client, actor) -> list[dict[str, str]]:
    response = client.get("/api/v1/audit.csv", headers=actor.headers)
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


def test_creating_changing_and_deactivating_a_user_is_audited(client, db, carol_admin):
    body = {"email": "nina@example.test", "name": "Nina", "role": "agent", "password": SECRET}
    created = client.post("/api/v1/users", json=body, headers=carol_admin.headers)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    url = f"/api/v1/users/{user_id}"
    assert client.patch(url, json={"role": "supervisor", "name": "Nina B."}, headers=carol_admin.headers).is_success
    assert client.patch(url, json={"role": "supervisor"}, headers=carol_admin.headers).is_success  # no change
    assert client.patch(url, json={"is_active": False}, headers=carol_admin.headers).is_success
    assert client.patch(url, json={"is_active": True}, headers=carol_admin.headers).is_success

    log = entries(db, "user", user_id)
    assert [e.event for e in log] == ["user.created", "user.updated", "user.deactivated", "user.reactivated"]
    assert {e.actor_user_id for e in log} == {carol_admin.user.id}
    assert log[0].before is None
    assert log[0].after == {"email": "nina@example.test", "name": "Nina", "role": "agent", "language": "en",
                            "is_active": True}  # fmt: skip
    assert (log[1].before["role"], log[1].after["role"]) == ("agent", "supervisor")
    assert (log[1].before["name"], log[1].after["name"]) == ("Nina", "Nina B.")
    assert (log[2].before["is_active"], log[2].after["is_active"]) == (True, False)
    assert all(e.created_at is not None for e in log)

    exported = audit_csv(client, carol_admin)
    assert SECRET not in json.dumps(exported) and "argon2" not in json.dumps(exported)
    mine = [r for r in exported if r["subject_type"] == "user" and r["subject_id"] == str(user_id)]
    assert (mine[0]["event"], mine[0]["actor_name"]) == ("user.created", "Carol Admin")


def test_the_export_keeps_its_columns_and_adds_the_subject_at_the_end(client, carol_admin):
    header = client.get("/api/v1/audit.csv", headers=carol_admin.headers).text.splitlines()[0]
    assert header.split(",") == [
        "id", "created_at", "actor_user_id", "actor_name", "event", "action_id", "customer_id",
        "conversation_id", "reason", "before", "after", "subject_type", "subject_id",
    ]  # fmt: skip


def test_teams_are_audited_and_a_deactivated_team_takes_no_conversations(
    client, db, alice_agent, bob_supervisor, carol_admin
):
    created = client.post("/api/v1/teams", json={"name": "Returns", "member_ids": [alice_agent.user.id]},
                          headers=carol_admin.headers)  # fmt: skip
    team_id = created.json()["id"]
    url = f"/api/v1/teams/{team_id}"
    assert client.patch(url, json={"name": "Nope"}, headers=bob_supervisor.headers).status_code == 403
    renamed = client.patch(url, json={"name": "Returns EU", "member_ids": [bob_supervisor.user.id]},
                           headers=carol_admin.headers)  # fmt: skip
    assert renamed.status_code == 200, renamed.text
    assert renamed.json() == {"id": team_id, "name": "Returns EU", "is_active": True,
                              "member_ids": [bob_supervisor.user.id]}  # fmt: skip
    assert client.patch(url, json={"member_ids": [404040]}, headers=carol_admin.headers).status_code == 422
    assert client.patch(url, json={"name": None}, headers=carol_admin.headers).status_code == 422
    unknown = client.patch("/api/v1/teams/404040", json={"is_active": False}, headers=carol_admin.headers)
    assert unknown.status_code == 404
    other = client.post("/api/v1/teams", json={"name": "Billing"}, headers=carol_admin.headers).json()
    taken = client.patch(f"/api/v1/teams/{other['id']}", json={"name": "Returns EU"}, headers=carol_admin.headers)
    assert taken.status_code == 409

    conversation = make_inbound(db).conversation_id
    patch = f"/api/v1/conversations/{conversation}"
    assert client.patch(patch, json={"team_id": team_id}, headers=alice_agent.headers).status_code == 200
    assert client.patch(url, json={"is_active": False}, headers=carol_admin.headers).json()["is_active"] is False
    released = client.patch(patch, json={"team_id": None}, headers=alice_agent.headers)
    assert released.status_code == 200  # taking a conversation away from a deactivated team is fine
    assert client.patch(patch, json={"team_id": team_id}, headers=alice_agent.headers).status_code == 422

    log = entries(db, "team", team_id)
    assert [e.event for e in log] == ["team.created", "team.updated", "team.deactivated"]
    assert log[0].after == {"name": "Returns", "is_active": True, "member_ids": [alice_agent.user.id]}
    assert log[1].before["member_ids"] == [alice_agent.user.id]
    assert log[1].after == {"name": "Returns EU", "is_active": True, "member_ids": [bob_supervisor.user.id]}
    assert all(e.actor_user_id == carol_admin.user.id for e in log)


def test_adding_and_deactivating_a_channel_is_audited_without_its_credentials(client, db, carol_admin):
    form = {
        "address": "help@example.com", "imap_host": "imap.example.com", "imap_port": "993", "imap_user": "help",
        "imap_password": SECRET, "imap_ssl": "true", "smtp_host": "smtp.example.com", "smtp_port": "587",
        "smtp_user": "help", "smtp_password": SECRET + "-smtp",
    }  # fmt: skip
    added = client.post("/admin/channels/email", data=form, headers=carol_admin.headers, follow_redirects=False)
    assert added.status_code == 303
    channel = db.scalars(select(Channel).where(Channel.key == "email:help@example.com")).one()
    assert channel_for_recipient(db, recipient="help@example.com") is not None

    deactivated = client.post(f"/admin/channels/{channel.id}/active", headers=carol_admin.headers,
                              follow_redirects=False)  # fmt: skip
    assert deactivated.status_code == 303
    db.expire_all()
    assert channel_for_recipient(db, recipient="help@example.com") is None  # the listener no longer takes its mail
    page = client.get("/admin/channels", headers=carol_admin.headers).text
    assert "help@example.com" in page and "data-reactivate" in page
    again = client.post(f"/admin/channels/{channel.id}/active", data={"active": "true"}, headers=carol_admin.headers)
    assert again.status_code == 200  # followed back to the page
    assert client.post("/admin/channels/404040/active", headers=carol_admin.headers).status_code == 404

    log = entries(db, "channel", channel.id)
    assert [e.event for e in log] == ["channel.created", "channel.deactivated", "channel.reactivated"]
    assert log[0].after["settings"]["imap"]["host"] == "imap.example.com"
    assert log[0].after["credentials"] == ["imap_password", "smtp_password"]
    assert (log[1].before["is_active"], log[1].after["is_active"]) == (True, False)
    assert all(e.actor_user_id == carol_admin.user.id for e in log)
    assert SECRET not in json.dumps([(e.before, e.after) for e in log])
    assert SECRET not in json.dumps(audit_csv(client, carol_admin))


def test_merging_customers_needs_a_supervisor_and_is_audited(client, db, alice_agent, bob_supervisor):
    keep = make_inbound(db, email="olivia@example.org", name="Olivia Bennett")
    dup = make_inbound(db, phone="+14155550101", name="O. Bennett")
    url = f"/api/v1/customers/{keep.customer_id}/merge"
    refused = client.post(url, json={"other_id": dup.customer_id}, headers=alice_agent.headers)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert db.scalars(select(Activity).where(Activity.kind == "customer_merged")).first() is None

    merged = client.post(url, json={"other_id": dup.customer_id}, headers=bob_supervisor.headers)
    assert merged.status_code == 200, merged.text
    [entry] = entries(db, "customer", dup.customer_id)
    assert (entry.event, entry.actor_user_id, entry.customer_id) == (
        "customer.merged", bob_supervisor.user.id, keep.customer_id,
    )  # fmt: skip
    assert entry.before["other"] == {"id": dup.customer_id, "name": "O. Bennett", "identities": ["phone:+14155550101"]}
    assert entry.before["target"]["identities"] == ["email:olivia@example.org"]
    assert entry.after["merged_into_id"] == keep.customer_id
    assert entry.after["moved"]["identities"] == 1 and entry.after["moved"]["conversations"] == 1


def test_agents_see_no_merge_form_and_cannot_post_it(client, db, alice_agent, bob_supervisor):
    keep = make_inbound(db).customer_id
    dup = make_inbound(db).customer_id
    headers = sign_in(client, alice_agent)
    page = client.get(f"/customers/{keep}")
    assert f'action="/customers/{keep}/merge"' not in page.text and "data-merge-note" in page.text
    assert "A supervisor can merge a duplicate into this customer." in page.text
    posted = client.post(f"/customers/{keep}/merge", data={"other": str(dup)}, headers=headers)
    assert posted.status_code == 403

    client.cookies.clear()
    headers = sign_in(client, bob_supervisor)
    assert f'action="/customers/{keep}/merge"' in client.get(f"/customers/{keep}").text
    done = client.post(f"/customers/{keep}/merge", data={"other": f"#{dup}"}, headers=headers, follow_redirects=False)
    assert done.status_code == 303
    assert [e.actor_user_id for e in entries(db, "customer", dup)] == [bob_supervisor.user.id]


def test_command_line_changes_are_audited_with_who_ran_them(tmp_path):
    with fresh_database("sqlite", tmp_path) as (settings, engine):
        env = {"CAPE_DATABASE_URL": settings.database_url, "CAPE_DATA_DIR": str(tmp_path),
               "CAPE_SECRET_KEY": settings.secret_key.get_secret_value()}  # fmt: skip
        runner = CliRunner()
        user = runner.invoke(cli, ["users", "create", "--email", "ops@example.com", "--name", "Ops", "--role",
                                   "admin", "--password", SECRET], env=env)  # fmt: skip
        assert user.exit_code == 0, user.output
        add = ["channels", "add-email", "--address", "support@example.com", "--imap-host", "imap.example.com",
               "--imap-user", "s", "--imap-password", SECRET]  # fmt: skip
        channel = runner.invoke(cli, add, env=env)
        assert channel.exit_code == 0, channel.output
        with engine.connect() as conn:
            rows = conn.execute(select(AuditEntry.event, AuditEntry.actor_user_id, AuditEntry.reason,
                                       AuditEntry.after).order_by(AuditEntry.id)).all()  # fmt: skip
        assert [(r.event, r.actor_user_id) for r in rows] == [("user.created", None), ("channel.created", None)]
        assert rows[0].reason.startswith("command line: cape users create (by ")
        assert rows[1].reason.startswith("command line: cape channels add-email (by ")
        assert SECRET not in json.dumps([r.after for r in rows])
