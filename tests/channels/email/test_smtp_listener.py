"""The SMTP listener on a real port: 250 only after commit, 550 for unknown recipients."""

from __future__ import annotations

import smtplib
import time

import pytest
from sqlalchemy import func, select

from cape.channels.email.service import create_email_channel
from cape.channels.email.smtp_server import RecipientCache, start_smtp_listener
from cape.db import create_session_factory
from cape.models import Message, RawSource
from tests.channels.email import corpus
from tests.conftest import DATABASES
from tests.fixtures.databases import fresh_database
from tests.fixtures.mailservers import free_port


@pytest.fixture(scope="module", params=DATABASES)
def live(request, tmp_path_factory):
    """A committed database with an email channel, and the listener in front of it."""
    with fresh_database(request.param, tmp_path_factory.mktemp("smtp")) as (settings, engine):
        factory = create_session_factory(engine)
        with factory() as session:
            create_email_channel(session, address="support@example.com", app_secret=settings.resolved_secret_key)
            session.commit()
        listener = start_smtp_listener(settings, factory, port=free_port())
        try:
            yield factory, listener
        finally:
            listener.stop()


def _count(factory, model) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_accepted_message_is_committed_before_the_reply(live):
    factory, listener = live
    raw = corpus.plain(501)
    with smtplib.SMTP("127.0.0.1", listener.port) as client:
        refused = client.sendmail("ann@example.org", ["support@example.com"], raw)
    assert refused == {}
    # sendmail returned: the server said 250, so the message must already be there.
    with factory() as session:
        message = session.scalars(select(Message).where(Message.external_id == "<plain-501@example.org>")).one()
        assert session.get(RawSource, message.raw_source_id).content == raw


def test_unknown_recipient_is_refused_with_550(live):
    _, listener = live
    with smtplib.SMTP("127.0.0.1", listener.port) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.sendmail("ann@example.org", ["nobody@example.com"], corpus.plain(502))
    assert refused.value.recipients["nobody@example.com"][0] == 550


def test_the_recipient_cache_never_grows_past_its_bound(live):
    """A sender trying made-up addresses cannot grow the listener's memory without end."""
    _, listener = live
    handler = listener.handler
    kept, handler.recipients = handler.recipients, RecipientCache(size=8)
    try:
        with smtplib.SMTP("127.0.0.1", listener.port) as client:
            client.ehlo()
            client.mail("ann@example.org")
            assert client.rcpt("support@example.com")[0] == 250
            for n in range(40):
                assert client.rcpt(f"made-up-{n}@example.com")[0] == 550
                assert len(handler.recipients) <= 8
            assert client.rcpt("support@example.com")[0] == 250  # forgotten, looked up again
            assert client.rcpt("made-up-39@example.com")[0] == 550
            client.rset()
        assert len(handler.recipients) == 8
    finally:
        handler.recipients = kept


def test_plus_address_and_retry_give_one_message(live):
    factory, listener = live
    before = _count(factory, Message)
    for _ in range(2):  # the sender retries, e.g. after a lost connection
        with smtplib.SMTP("127.0.0.1", listener.port) as client:
            client.sendmail("ann@example.org", ["Support+orders@Example.com"], corpus.plain(503))
    assert _count(factory, Message) == before + 1


def test_unparseable_mail_is_still_accepted_and_kept(live):
    factory, listener = live
    raw = b"Subject: =?bogus?q?\xff\xfe?=\r\nContent-Type: multipart/mixed\r\n\r\n\x00\x01garbage\r\n"
    with smtplib.SMTP("127.0.0.1", listener.port) as client:
        client.sendmail("", ["support@example.com"], raw)
    with factory() as session:
        raw_row = session.scalars(select(RawSource).order_by(RawSource.id.desc()).limit(1)).one()
        assert raw_row.content == raw
        message = session.scalars(select(Message).where(Message.raw_source_id == raw_row.id)).one()
        assert message.subject


@pytest.mark.slow
def test_killed_listener_loses_and_duplicates_nothing(tmp_path):
    """SIGKILL `cape serve` while mail streams in; the sender retries what was not accepted."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    from tests.fixtures.mailservers import wait_for_port

    total = 300
    with fresh_database("sqlite", tmp_path) as (settings, engine):
        factory = create_session_factory(engine)
        with factory() as session:
            create_email_channel(session, address="support@example.com", app_secret=settings.resolved_secret_key)
            session.commit()
        smtp_port, web_port = free_port(), free_port()
        env = {**os.environ, "CAPE_DATABASE_URL": settings.database_url, "CAPE_DATA_DIR": str(tmp_path),
               "CAPE_SECRET_KEY": settings.secret_key.get_secret_value(), "CAPE_LOG_LEVEL": "WARNING"}  # fmt: skip
        command = [sys.executable, "-m", "cape.cli", "serve", "--no-jobs", "--no-migrate",
                   "--port", str(web_port), "--smtp-port", str(smtp_port)]  # fmt: skip

        def start():
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for_port(smtp_port, timeout=30)
            return process

        accepted = []

        def send_all():
            n = 0
            while n < total:
                try:
                    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
                        while n < total:
                            client.sendmail("ann@example.org", ["support@example.com"], corpus.plain(10_000 + n))
                            accepted.append(n)
                            n += 1
                except (OSError, smtplib.SMTPException):
                    time.sleep(0.05)  # like a real MTA: keep the message and try again

        server = start()
        sender = threading.Thread(target=send_all)
        sender.start()
        while len(accepted) < 100:
            time.sleep(0.005)
        server.send_signal(signal.SIGKILL)
        server.wait()
        killed_at = len(accepted)
        server = start()
        sender.join(timeout=120)
        server.terminate()
        server.wait()
        assert killed_at < total and len(accepted) == total
        with factory() as session:
            assert session.scalar(select(func.count()).select_from(Message)) == total
            assert session.scalar(select(func.count(func.distinct(Message.external_id)))) == total
