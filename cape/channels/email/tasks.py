"""Background jobs of the email channel: sending replies (with retries and backoff) and polling IMAP."""

from __future__ import annotations

import logging
import smtplib
from datetime import timedelta

from huey import crontab

from cape import jobs
from cape.channels.email.imap import poll_mailboxes
from cape.channels.email.send import (
    MAX_ATTEMPTS,
    PermanentFailure,
    build_outgoing,
    deliver,
    record_delivery,
    stalled_sends,
)
from cape.config import Settings
from cape.db import unit_of_work

log = logging.getLogger(__name__)


def retry_delay_s(attempt: int, *, backoff_s: float) -> float:
    """Exponential backoff after ``attempt`` failed: by default 30 s, 1, 2, 4, 8 minutes."""
    return backoff_s * 2 ** (attempt - 1)


def stalled_after(settings: Settings) -> timedelta:
    """When a queued reply's send job counts as lost: 30 minutes, or half as long again as all its
    retries together (about 16 minutes by default) if longer, so a live retry chain is never doubled."""
    all_retries_s = sum(retry_delay_s(n, backoff_s=settings.email_retry_backoff_s) for n in range(1, MAX_ATTEMPTS))
    return max(timedelta(minutes=30), timedelta(seconds=1.5 * all_retries_s))


@jobs.huey.task()
def send_email_task(message_id: int, attempt: int = 1) -> None:
    """Send one outbound message; a temporary failure is retried later, a permanent one recorded."""
    factory = jobs.session_factory()
    settings = jobs.runtime_settings()
    error: str | None = None
    refused: str | None = None
    final = False
    try:
        with unit_of_work(factory) as session:
            outgoing = build_outgoing(session, message_id=message_id, settings=settings)
        if outgoing is None:
            return
        deliver(outgoing)
    except PermanentFailure as exc:
        error, final, refused = str(exc), True, exc.refused_address
    except (OSError, smtplib.SMTPException) as exc:
        error = f"{type(exc).__name__}: {exc}"
        final = attempt >= MAX_ATTEMPTS
    with unit_of_work(factory) as session:
        record_delivery(
            session, message_id=message_id, error=error, final=final, attempt=attempt, refused_address=refused
        )
    if error is not None:
        log.warning("email delivery failed", extra={"message_id": message_id, "attempt": attempt, "final": final})
        if not final:
            delay = retry_delay_s(attempt, backoff_s=settings.email_retry_backoff_s)
            send_email_task.schedule((message_id, attempt + 1), delay=delay)


@jobs.huey.periodic_task(crontab(minute="*/10"))
def resend_stalled_email_task() -> None:
    """Give replies whose send job was lost (a worker killed mid-send) one last attempt."""
    with unit_of_work(jobs.session_factory(), read_only=True) as session:
        stalled = stalled_sends(session, older_than=stalled_after(jobs.runtime_settings()))
    for message_id in stalled:
        log.warning("resending a stalled email reply", extra={"message_id": message_id})
        send_email_task(message_id, MAX_ATTEMPTS)


@jobs.huey.periodic_task(crontab(minute="*"))
def poll_email_task() -> None:
    """Import new mail from every IMAP mailbox, once a minute; one poll at a time."""
    with jobs.huey.lock_task("poll-email"):
        for address, imported in poll_mailboxes(jobs.session_factory(), jobs.runtime_settings()):
            if imported:
                log.info("imported email", extra={"channel": address, "count": imported})
