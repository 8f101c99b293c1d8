"""Admins add email channels in the UI; others cannot."""

from __future__ import annotations

from sqlalchemy import select

from cape.models import Channel


def test_admin_adds_an_imap_channel(db, client, carol_admin):
    page = client.get("/admin/channels", headers=carol_admin.headers)
    assert page.status_code == 200 and "No email channels yet." in page.text
    form = {
        "address": "Help@Example.com", "name": "Help", "imap_host": "imap.example.com", "imap_port": "993",
        "imap_user": "help", "imap_password": "s3cret-password", "imap_ssl": "true",
    }  # fmt: skip
    response = client.post("/admin/channels/email", data=form, headers=carol_admin.headers, follow_redirects=False)
    assert response.status_code == 303
    channel = db.scalars(select(Channel).where(Channel.key == "email:help@example.com")).one()
    assert channel.settings["imap"]["host"] == "imap.example.com"
    assert "s3cret" not in (channel.secrets_encrypted or "")
    page = client.get("/admin/channels", headers=carol_admin.headers)
    assert "help@example.com" in page.text and "s3cret" not in page.text

    again = client.post("/admin/channels/email", data=form, headers=carol_admin.headers)
    assert again.status_code == 422 and "already exists" in again.text


def test_agents_and_supervisors_cannot(client, alice_agent, bob_supervisor):
    assert client.get("/admin/channels", headers=alice_agent.headers).status_code == 403
    data = {"address": "x@example.com"}
    assert client.post("/admin/channels/email", data=data, headers=bob_supervisor.headers).status_code == 403
