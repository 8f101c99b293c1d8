"""Email throughput: the SMTP listener (messages/s accepted, each committed before 250) and IMAP import.

    .venv/bin/python bench/mail.py                      # SQLite in a temporary folder
    .venv/bin/python bench/mail.py --cores 0,1          # pin the listener to two cores
    .venv/bin/python bench/mail.py --database postgresql

Run on demand, never in CI. Needs dovecot for the IMAP part (scripts/test-services.sh).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and its name would hide the
# standard library's email package: put the repository root there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import os  # noqa: E402
import smtplib  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from sqlalchemy import func, select  # noqa: E402

from cape.channels.email.imap import poll_mailboxes  # noqa: E402
from cape.channels.email.service import ImapConfig, create_email_channel  # noqa: E402
from cape.db import create_session_factory  # noqa: E402
from cape.models import Message  # noqa: E402
from tests.fixtures.databases import fresh_database  # noqa: E402
from tests.fixtures.mailservers import dovecot, free_port, wait_for_port  # noqa: E402


def small_message(n: int, to: str) -> bytes:
    return (
        f"From: Customer {n % 500} <customer{n % 500}@example.org>\r\n"
        f"To: {to}\r\n"
        f"Subject: Order question {n}\r\n"
        f"Message-ID: <bench-{n}-{time.time_ns()}@example.org>\r\n"
        "Date: Tue, 24 Nov 2026 08:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"Hello, where is my order {n}? Thanks.\r\n"
    ).encode()


def count_messages(factory) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Message))


def bench_smtp(settings, factory, *, total: int, senders: int, cores: str | None) -> float:
    port = free_port()
    env = {**os.environ, "CAPE_DATABASE_URL": settings.resolved_database_url, "CAPE_DATA_DIR": str(settings.data_dir),
           "CAPE_SECRET_KEY": settings.resolved_secret_key, "CAPE_LOG_LEVEL": "WARNING"}  # fmt: skip
    command = [sys.executable, __file__, "_listen", str(port)]
    if cores:
        command = ["taskset", "-c", cores, *command]
    listener = subprocess.Popen(command, env=env)
    try:
        wait_for_port(port, timeout=30)
        before = count_messages(factory)
        per_sender = total // senders
        errors: list[Exception] = []

        def send(offset: int) -> None:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
                    for n in range(offset, offset + per_sender):
                        client.sendmail(f"customer{n % 500}@example.org", ["support@example.com"],
                                        small_message(n, "support@example.com"))  # fmt: skip
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(i * per_sender,)) for i in range(senders)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if errors:
            raise errors[0]
        stored = count_messages(factory) - before
        assert stored == per_sender * senders, f"{stored} stored, {per_sender * senders} accepted"
        return stored / elapsed
    finally:
        listener.terminate()
        listener.wait()


def bench_imap(settings, factory, *, total: int) -> float:
    with dovecot() as server:
        with factory() as session:
            create_email_channel(
                session, address=server.user, app_secret=settings.resolved_secret_key,
                imap=ImapConfig(host=server.host, port=server.port, user=server.user, password=server.password,
                                ssl=False),
            )  # fmt: skip
            session.commit()
        for n in range(total):
            server.deliver(small_message(n, server.user))
        before = count_messages(factory)
        started = time.perf_counter()
        imported = sum(n for _, n in poll_mailboxes(factory, settings, address=server.user))
        elapsed = time.perf_counter() - started
        assert imported == total and count_messages(factory) - before == total
        return total / elapsed


def _listen(port: int) -> None:
    from cape.channels.email.smtp_server import start_smtp_listener
    from cape.config import Settings
    from cape.db import create_db_engine

    settings = Settings()
    listener = start_smtp_listener(settings, create_session_factory(create_db_engine(settings)), port=port)
    try:
        threading.Event().wait()
    finally:
        listener.stop()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_listen":
        _listen(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--cores", help="CPU list for the SMTP listener, e.g. 0,1 (taskset)")
    parser.add_argument("--skip-imap", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.database, Path(tmp)) as (settings, engine):
        factory = create_session_factory(engine)
        with factory() as session:
            create_email_channel(session, address="support@example.com", app_secret=settings.resolved_secret_key)
            session.commit()
        where = f" on cores {args.cores}" if args.cores else f" ({os.cpu_count()} cores)"
        rate = bench_smtp(settings, factory, total=args.messages, senders=args.senders, cores=args.cores)
        print(f"SMTP listener, {args.database}{where}: {args.messages} messages from {args.senders} senders, "
              f"{rate:.0f} messages/s (each committed before 250)")  # fmt: skip
        if not args.skip_imap:
            rate = bench_imap(settings, factory, total=args.messages)
            print(f"IMAP import, {args.database}: {args.messages} messages, {rate:.0f} messages/s")


if __name__ == "__main__":
    main()
