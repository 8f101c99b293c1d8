"""Background jobs of the email channel: sending replies (with retries and backoff) and polling IMAP."""

from __future__ import annotations

import logging
import smtplib
from datetime import timedelta

from huey import crontab
from sqlalchemy.orm import Session

from cape import jobs
from cape.channels.email.imap import poll_mailboxes
from cape.channels.email.send import (
    MAX_ATTEMPTS,
    PermanentFailure,
    build_outgoing,
    deliver,
    prepare_reply,
    record_delivery,
    stalled_sends,
)
from cape.conversations.service import outbound_senders
from cape.db import unit_of_work
from cape.models import ChannelKind, Message

log = logging.getLogger(__name__)


def retry_delay_s(attempt: int) -> int:
    """Exponential backoff: 30 s, 1 min, 2 min, 4 min, 8 min between attempts."""
    return 30 * 2 ** (attempt - 1)


# Longer than all retries together (about 16 minutes), so a live retry chain is never doubled.
STALLED_AFTER = timedelta(minutes=30)


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
            send_email_task.schedule((message_id, attempt + 1), delay=retry_delay_s(attempt))


def queue_email_reply(session: Session, message: Message) -> None:
    """Called by ``add_reply`` for replies in email conversations: send once committed."""
    prepare_reply(session, message=message)
    jobs.enqueue_after_commit(session, send_email_task, message.id)


@jobs.huey.periodic_task(crontab(minute="*/10"))
def resend_stalled_email_task() -> None:
    """Give replies whose send job was lost (a worker killed mid-send) one last attempt."""
    with unit_of_work(jobs.session_factory(), read_only=True) as session:
        stalled = stalled_sends(session, older_than=STALLED_AFTER)
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


outbound_senders[ChannelKind.email] = queue_email_reply
