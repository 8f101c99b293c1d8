"""End to end with real servers: Dovecot IMAP in, Cape, an aiosmtpd sink out, and back in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from cape.app import create_app
from cape.channels.email.imap import poll_mailbox, poll_mailboxes
from cape.cli import app as cli
from cape.db import create_session_factory
from cape.models import Channel, MailboxState, Message
from tests.channels.email import corpus
from tests.conftest import DATABASES
from tests.fixtures.databases import fresh_database
from tests.fixtures.factories import make_token, make_user
from tests.fixtures.mailservers import dovecot, smtp_sink


@pytest.fixture
def imap_server():
    with dovecot() as server:
        yield server


def _cli_env(settings) -> dict[str, str]:
    return {
        "CAPE_DATABASE_URL": settings.database_url,
        "CAPE_DATA_DIR": str(settings.data_dir),
        "CAPE_SECRET_KEY": settings.secret_key.get_secret_value(),
        "CAPE_JOBS_BACKEND": "immediate",
        "CAPE_LOG_LEVEL": "WARNING",
    }


def _add_mailbox(settings, imap_server, *extra: str) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "channels",
            "add-email",
            "--address",
            "support@example.test",
            "--imap-host",
            imap_server.host,
            "--imap-port",
            str(imap_server.port),
            "--no-imap-ssl",
            "--imap-user",
            imap_server.user,
            "--imap-password",
            imap_server.password,
            *extra,
        ],
        env=_cli_env(settings),
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("kind", DATABASES)
def test_mail_in_reply_out_answer_threads_back(kind, tmp_path, imap_server):
    with fresh_database(kind, tmp_path / "db") as (settings, engine), smtp_sink() as sink:
        _add_mailbox(settings, imap_server, "--smtp-host", sink.host, "--smtp-port", str(sink.port),
                     "--no-smtp-starttls")  # fmt: skip
        factory = create_session_factory(engine)
        imap_server.deliver(corpus.plain(1, sender="ann@example.org", to="support@example.test"))

        assert list(poll_mailboxes(factory, settings)) == [("support@example.test", 1)]
        assert list(imap_server.maildir.joinpath("new").iterdir()) == []
        assert all(p.name.endswith(",S") for p in imap_server.maildir.joinpath("cur").iterdir())

        with factory() as session:
            agent = make_user(session, name="Alice Agent")
            token = make_token(session, agent)
            session.commit()
            conversation_id = session.scalars(select(Message.conversation_id)).one()
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(settings)) as client:
            detail = client.get(f"/api/v1/conversations/{conversation_id}", headers=headers).json()
            assert detail["channel"] == "email"
            assert detail["messages"][0]["channel"] == "email"
            assert detail["messages"][0]["body"] == "Hello, this is message 1."
            raw = client.get(f"/api/v1/messages/{detail['messages'][0]['id']}/raw", headers=headers)
            assert raw.content == corpus.plain(1, sender="ann@example.org", to="support@example.test")

            reply = client.post(
                f"/api/v1/conversations/{conversation_id}/replies", json={"body": "Fixed!"}, headers=headers
            ).json()
            delivered = sink.wait_for(1)[0].message
            assert delivered["In-Reply-To"] == "<plain-1@example.org>"
            assert delivered["References"] == "<plain-1@example.org>"
            assert delivered["Message-ID"] == reply["external_id"]
            assert (
                client.get(f"/api/v1/conversations/{conversation_id}", headers=headers).json()["messages"][-1][
                    "delivery_status"
                ]
                == "sent"
            )

        imap_server.deliver(
            corpus._raw(
                "From: Ann <ann@example.org>",
                f"To: {delivered['Reply-To']}",
                "Subject: Re: Plain message 1",
                "Message-ID: <answer-1@example.org>",
                f"In-Reply-To: {delivered['Message-ID']}",
                f"References: <plain-1@example.org> {delivered['Message-ID']}",
                "",
                "Works now, thank you.",
            )
        )
        assert list(poll_mailboxes(factory, settings)) == [("support@example.test", 1)]
        assert list(poll_mailboxes(factory, settings)) == [("support@example.test", 0)]
        with factory() as session:
            rows = session.execute(select(Message.conversation_id, Message.direction)).all()
            assert [r.conversation_id for r in rows] == [conversation_id] * 3
            state = session.scalars(select(MailboxState)).one()
            assert state.last_uid == 2 and state.uidvalidity and state.last_error is None


def test_processed_folder_receives_imported_mail(tmp_path, imap_server):
    with fresh_database("sqlite", tmp_path / "db") as (settings, engine):
        _add_mailbox(settings, imap_server, "--imap-processed-folder", "Processed")
        import imaplib

        client = imaplib.IMAP4(imap_server.host, imap_server.port)
        client.login(imap_server.user, imap_server.password)
        client.create("Processed")
        for n in range(3):
            imap_server.deliver(corpus.plain(n))
        factory = create_session_factory(engine)
        assert list(poll_mailboxes(factory, settings)) == [("support@example.test", 3)]
        assert client.select("INBOX")[1] == [b"0"]
        assert client.select("Processed")[1] == [b"3"]
        client.logout()


def test_wrong_password_is_recorded_not_raised(tmp_path, imap_server):
    with fresh_database("sqlite", tmp_path / "db") as (settings, engine):
        imap_server.password = "wrong"
        _add_mailbox(settings, imap_server)
        factory = create_session_factory(engine)
        assert list(poll_mailboxes(factory, settings)) == []
        with factory() as session:
            assert "login" in session.scalars(select(MailboxState)).one().last_error
            channel = session.scalars(select(Channel).where(Channel.key == "email:support@example.test")).one()
            assert "wrong" not in (channel.secrets_encrypted or "")


@pytest.mark.slow
def test_killed_import_loses_and_duplicates_nothing(tmp_path, imap_server):
    """SIGKILL the importer in the middle of 1,000 messages; after a restart there are exactly 1,000."""
    total = 1000
    with fresh_database("sqlite", tmp_path / "db") as (settings, engine):
        _add_mailbox(settings, imap_server)
        for n in range(total):
            imap_server.deliver(corpus.plain(n))
        factory = create_session_factory(engine)

        def count() -> int:
            with factory() as session:
                return session.scalar(select(func.count()).select_from(Message))

        command = [sys.executable, "-m", "cape.cli", "channels", "poll-email", "--once"]
        env = {**os.environ, **_cli_env(settings)}
        importer = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while count() < 150 and time.monotonic() < deadline and importer.poll() is None:
            time.sleep(0.01)
        importer.send_signal(signal.SIGKILL)
        importer.wait()
        killed_at = count()
        assert 0 < killed_at < total, f"the importer was not killed mid-batch ({killed_at})"
        print(f"killed after {killed_at} of {total} messages")

        finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert finished.returncode == 0, finished.stdout + finished.stderr
        with factory() as session:
            assert session.scalar(select(func.count()).select_from(Message)) == total
            assert session.scalar(select(func.count(func.distinct(Message.external_id)))) == total
        assert list(imap_server.maildir.joinpath("new").iterdir()) == []
        unseen = [p for p in imap_server.maildir.joinpath("cur").iterdir() if not p.name.endswith("S")]
        assert unseen == []


def test_idle_imports_new_mail_as_it_arrives(tmp_path, imap_server):
    with fresh_database("sqlite", tmp_path / "db") as (settings, engine):
        _add_mailbox(settings, imap_server)
        factory = create_session_factory(engine)
        with factory() as session:
            channel_id = session.scalars(select(Channel.id).where(Channel.key == "email:support@example.test")).one()
        imap_server.deliver(corpus.plain(1))
        results: list[int] = []
        watcher = threading.Thread(
            target=lambda: results.append(poll_mailbox(factory, settings, channel_id=channel_id, idle_s=6))
        )
        watcher.start()

        def count() -> int:
            with factory() as session:
                return session.scalar(select(func.count()).select_from(Message))

        deadline = time.monotonic() + 5
        while count() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        delivered_at = time.monotonic()
        imap_server.deliver(corpus.plain(2))
        while count() < 2 and time.monotonic() < delivered_at + 4:
            time.sleep(0.05)
        arrived_after = time.monotonic() - delivered_at
        watcher.join()
        assert results == [2]
        assert arrived_after < 4, "new mail was not picked up while idling"


def test_the_periodic_job_polls_every_mailbox(tmp_path, imap_server):
    from cape import jobs
    from cape.channels.email.tasks import poll_email_task

    with fresh_database("sqlite", tmp_path / "db") as (settings, engine):
        _add_mailbox(settings, imap_server)
        imap_server.deliver(corpus.plain(1))
        factory = create_session_factory(engine)
        jobs.configure(factory, settings)
        try:
            poll_email_task.call_local()
        finally:
            jobs._runtime.clear()
        with factory() as session:
            assert session.scalar(select(func.count()).select_from(Message)) == 1
