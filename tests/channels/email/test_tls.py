"""Mail in transit: certificates and host names verified, STARTTLS required, nothing sent before TLS.

Real servers with certificates from a test CA: Dovecot with implicit TLS and with STARTTLS, and
the aiosmtpd relay with STARTTLS. A server whose certificate comes from another CA, and one that
does not offer STARTTLS, must be refused before the password leaves Cape; both servers record
every login attempt to prove it.
"""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from typer.testing import CliRunner

from cape import jobs
from cape.app import create_app
from cape.channels import registry as channels
from cape.channels.email.imap import poll_mailboxes
from cape.channels.email.send import MAX_ATTEMPTS
from cape.channels.email.service import (
    ImapConfig,
    Security,
    SmtpConfig,
    create_email_channel,
    imap_config,
    receive_email,
    smtp_config,
)
from cape.channels.email.tasks import send_email_task
from cape.cli import app as cli
from cape.db import create_session_factory
from cape.models import Channel, DeliveryStatus, MailboxState, Message
from tests.channels.email import corpus
from tests.fixtures.databases import fresh_database
from tests.fixtures.mailservers import dovecot, smtp_sink, test_ca


@pytest.fixture(scope="module")
def ca():
    """The CA the channels are told to trust."""
    with test_ca() as made:
        yield made


@pytest.fixture(scope="module")
def stranger_ca():
    """Another CA: what someone in the middle would present a certificate from."""
    with test_ca() as made:
        yield made


def _mailbox(db, settings, server, **tls) -> Channel:
    imap = ImapConfig(host=server.host, port=server.port, user=server.user, password=server.password, **tls)
    channel = create_email_channel(db, address=server.user, app_secret=settings.resolved_secret_key, imap=imap)
    db.commit()
    return channel


def _last_error(db) -> str:
    state = db.scalars(select(MailboxState)).one()
    db.refresh(state)
    return state.last_error or ""


# IMAP


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_imap_over_tls_trusting_the_channels_ca_file_imports_mail(tmp_path, ca, mode):
    with fresh_database("sqlite", tmp_path) as (settings, engine), dovecot(mode, ca=ca) as server:
        env = {"CAPE_DATABASE_URL": settings.database_url, "CAPE_DATA_DIR": str(tmp_path),
               "CAPE_SECRET_KEY": settings.secret_key.get_secret_value()}  # fmt: skip
        flags = ["--imap-starttls"] if mode == "starttls" else []
        added = CliRunner().invoke(
            cli,
            ["channels", "add-email", "--address", server.user, "--imap-host", server.host,
             "--imap-port", str(server.port), "--imap-user", server.user, "--imap-password", server.password,
             "--imap-ca-file", str(ca.ca_file), *flags],
            env=env,
        )  # fmt: skip
        assert added.exit_code == 0, added.output
        assert "warning" not in added.output
        server.deliver(corpus.plain(1, to=server.user))

        assert list(poll_mailboxes(create_session_factory(engine), settings)) == [(server.user, 1)]
        [connection] = server.ended_connections(1)
        assert "Login: user=<support@example.test>" in connection and "TLS" in connection
        listed = CliRunner().invoke(cli, ["channels", "list"], env=env).output
        assert f"imap {server.host}:{server.port} {'starttls' if mode == 'starttls' else 'tls'}\t" in listed


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_imap_server_with_an_untrusted_certificate_gets_no_login(db, settings, session_factory, stranger_ca, ca, mode):
    with dovecot(mode, ca=stranger_ca) as server:
        _mailbox(db, settings, server, ssl=mode == "implicit", starttls=mode == "starttls", ca_file=str(ca.ca_file))
        server.deliver(corpus.plain(2))

        assert list(poll_mailboxes(session_factory, settings)) == []
        assert "certificate is not accepted" in _last_error(db)
        assert "not logging in" in _last_error(db)
        assert server.login_attempts(1) == [0]
        assert db.scalar(select(Message.id)) is None


def test_imap_verifies_against_the_systems_cas_by_default(db, settings, session_factory, ca):
    """A private CA's certificate is not trusted unless the channel names the CA file."""
    with dovecot("implicit", ca=ca) as server:
        _mailbox(db, settings, server)
        assert list(poll_mailboxes(session_factory, settings)) == []
        assert "certificate is not accepted" in _last_error(db)
        assert server.login_attempts(1) == [0]


def test_imap_starttls_required_but_not_offered_gets_no_login(db, settings, session_factory):
    with dovecot("none") as server:  # would take the password in clear
        _mailbox(db, settings, server, ssl=False, starttls=True)
        server.deliver(corpus.plain(3))

        assert list(poll_mailboxes(session_factory, settings)) == []
        assert "does not offer STARTTLS" in _last_error(db)
        assert server.login_attempts(1) == [0]
        assert db.scalar(select(Message.id)) is None


def test_verification_off_reads_an_untrusted_server_and_is_warned_about(
    db, settings, session_factory, client, carol_admin, stranger_ca, ca, caplog
):
    with dovecot("implicit", ca=stranger_ca) as server:
        _mailbox(db, settings, server, verify_tls=False)
        create_email_channel(
            db, address="verified@example.test", app_secret=settings.resolved_secret_key,
            imap=ImapConfig(host="imap.example.test", user="u", password="imap-password", ca_file=str(ca.ca_file)),
            smtp=SmtpConfig(host="smtp.example.test", user="u", password="smtp-password"),
        )  # fmt: skip
        db.commit()
        server.deliver(corpus.plain(4))
        assert list(poll_mailboxes(session_factory, settings, address=server.user)) == [(server.user, 1)]

    page = client.get("/admin/channels", headers=carol_admin.headers)
    rows = {row.split("</strong>")[0].rpartition(">")[2]: row for row in page.text.split("<tr>")[2:]}
    assert "certificate not verified" in rows[server.user]
    assert "data-tls-warning" not in rows["verified@example.test"]
    assert "can be read, and their passwords taken" in page.text
    carol_admin.user.language = "fr"
    db.commit()
    assert "certificat non vérifié" in client.get("/admin/channels", headers=carol_admin.headers).text

    caplog.set_level(logging.WARNING, logger="cape.channels.email.service")
    starting = create_app(settings)
    starting.state.session_factory = session_factory
    with TestClient(starting):  # start-up
        pass
    warned = [r.getMessage() for r in caplog.records if r.name == "cape.channels.email.service"]
    assert warned == [
        f"mail of {server.user} travels to a server whose certificate is not verified: IMAP {server.host}:{server.port}"
    ]
    assert server.password not in " ".join(warned)


# SMTP


@pytest.fixture
def customer_message(db, settings):
    """A channel (relay set by the test) and a customer's message on it, to reply to."""

    def make(smtp: SmtpConfig | None) -> int:
        channel = create_email_channel(
            db, address="help@example.com", app_secret=settings.resolved_secret_key, smtp=smtp
        )
        db.commit()
        return receive_email(db, settings=settings, channel=channel, raw=corpus.plain(21)).conversation_id

    return make


def _reply(db, client, actor, conversation_id) -> Message:
    response = client.post(
        f"/api/v1/conversations/{conversation_id}/replies", json={"body": "On its way."}, headers=actor.headers
    )
    assert response.status_code == 201, response.text
    message = db.get(Message, response.json()["id"])
    db.refresh(message)
    return message


def _relay(sink, **tls) -> SmtpConfig:
    return SmtpConfig(host=sink.host, port=sink.port, user=sink.user, password=sink.password, **tls)


def test_relay_with_starttls_and_the_channels_ca_gets_login_and_mail(
    db, client, alice_agent, job_sessions, customer_message, ca
):
    with smtp_sink(ca=ca, auth=True) as sink:
        conversation_id = customer_message(_relay(sink, ca_file=str(ca.ca_file)))
        message = _reply(db, client, alice_agent, conversation_id)
        assert message.delivery_status is DeliveryStatus.sent, message.delivery_error
        assert sink.wait_for(1)[0].rcpt_tos == ["ann@example.org"]
        assert sink.logins == [(sink.user, sink.password)]


def test_the_default_relay_takes_its_ca_file_from_settings(
    db, settings, session_factory, client, alice_agent, job_sessions, customer_message, ca
):
    with smtp_sink(ca=ca, auth=True) as sink:
        relay = {"smtp_relay_host": sink.host, "smtp_relay_port": sink.port, "smtp_relay_user": sink.user,
                 "smtp_relay_password": SecretStr(sink.password), "smtp_relay_ca_file": str(ca.ca_file)}  # fmt: skip
        relay_settings = settings.model_copy(update=relay)
        jobs.configure(session_factory, relay_settings)
        channels.setup(relay_settings)  # as the app and worker do when they start with these settings
        conversation_id = customer_message(None)
        message = _reply(db, client, alice_agent, conversation_id)
        assert message.delivery_status is DeliveryStatus.sent, message.delivery_error
        assert len(sink.wait_for(1)) == 1 and sink.logins == [(sink.user, sink.password)]


def test_relay_with_an_untrusted_certificate_gets_neither_password_nor_mail(
    db, client, alice_agent, job_sessions, customer_message, stranger_ca, ca
):
    with smtp_sink(ca=stranger_ca, auth=True) as sink:
        conversation_id = customer_message(_relay(sink, ca_file=str(ca.ca_file)))
        message = _reply(db, client, alice_agent, conversation_id)
        assert message.delivery_status is DeliveryStatus.queued
        assert message.delivery_error.startswith("attempt 1 of 6 failed, retrying: TlsFailure: STARTTLS with")
        assert "certificate is not accepted" in message.delivery_error
        assert sink.logins == [] and sink.received == []


def test_relay_that_stops_offering_starttls_gets_neither_password_nor_mail(
    db, client, alice_agent, job_sessions, customer_message
):
    with smtp_sink(auth=True) as sink:  # offers AUTH in clear, as when STARTTLS is stripped
        conversation_id = customer_message(_relay(sink))  # STARTTLS required: the default
        message = _reply(db, client, alice_agent, conversation_id)
        assert message.delivery_status is DeliveryStatus.queued
        assert "does not offer STARTTLS, which this relay requires; nothing sent" in message.delivery_error
        assert message.delivery_error.startswith("attempt 1 of 6 failed, retrying")

        send_email_task.call_local(message.id, MAX_ATTEMPTS)  # the last retry fails the same way
        db.refresh(message)
        assert message.delivery_status is DeliveryStatus.failed
        assert "does not offer STARTTLS" in message.delivery_error
        assert sink.logins == [] and sink.received == []


def test_relay_verification_off_delivers_to_an_untrusted_certificate(
    db, client, alice_agent, job_sessions, customer_message, stranger_ca
):
    with smtp_sink(ca=stranger_ca, auth=True) as sink:
        conversation_id = customer_message(_relay(sink, verify_tls=False))
        message = _reply(db, client, alice_agent, conversation_id)
        assert message.delivery_status is DeliveryStatus.sent, message.delivery_error
        assert len(sink.wait_for(1)) == 1


# Settings


def test_settings_stored_before_tls_options_keep_their_meaning(db, settings):
    channel = create_email_channel(db, address="old@example.com", app_secret=settings.resolved_secret_key)
    channel.settings = {
        "imap": {"host": "imap.example.com", "port": 143, "user": "u", "ssl": False, "folder": "INBOX",
                 "processed_folder": ""},
        "smtp": {"host": "smtp.example.com", "port": 587, "user": "u", "starttls": True, "ssl": False},
    }  # fmt: skip
    imap, smtp = imap_config(channel, settings.resolved_secret_key), smtp_config(channel, settings.resolved_secret_key)
    assert (imap.security, imap.verify_tls, imap.ca_file) == (Security.none, True, "")
    assert (smtp.security, smtp.verify_tls) == (Security.starttls, True)
    channel.settings = {"imap": {**channel.settings["imap"], "ssl": True}}
    assert imap_config(channel, settings.resolved_secret_key).security is Security.tls


def test_admin_chooses_starttls_and_a_ca_file(db, client, carol_admin, ca, tmp_path):
    form = {
        "address": "private@example.com", "imap_host": "imap.example.com", "imap_port": "143",
        "imap_user": "u", "imap_password": "imap-password", "imap_security": "starttls",
        "imap_ca_file": str(ca.ca_file), "smtp_host": "smtp.example.com", "smtp_security": "tls",
        "smtp_port": "465",
    }  # fmt: skip
    response = client.post("/admin/channels/email", data=form, headers=carol_admin.headers, follow_redirects=False)
    assert response.status_code == 303, response.text
    channel = db.scalars(select(Channel).where(Channel.key == "email:private@example.com")).one()
    imap = channel.settings["imap"]
    assert (imap["ssl"], imap["starttls"], imap["ca_file"], imap["verify_tls"]) == (False, True, str(ca.ca_file), True)
    assert (channel.settings["smtp"]["ssl"], channel.settings["smtp"]["verify_tls"]) == (True, True)
    page = client.get("/admin/channels", headers=carol_admin.headers).text
    assert "STARTTLS" in page and "data-tls-warning" not in page

    (tmp_path / "not-a-ca.pem").write_text("nothing here")
    for bad in (str(tmp_path / "missing.pem"), str(tmp_path / "not-a-ca.pem")):
        again = client.post(
            "/admin/channels/email", data={**form, "address": "other@example.com", "imap_ca_file": bad},
            headers=carol_admin.headers,
        )  # fmt: skip
        assert again.status_code == 422 and "cannot load the CA file" in again.text
    plain = client.post(
        "/admin/channels/email",
        data={**form, "address": "plain@example.com", "imap_security": "none", "smtp_security": "none",
              "imap_ca_file": ""},
        headers=carol_admin.headers, follow_redirects=False,
    )  # fmt: skip
    assert plain.status_code == 303
    page = client.get("/admin/channels", headers=carol_admin.headers).text
    assert page.count("not encrypted") == 2  # its IMAP server and its relay
