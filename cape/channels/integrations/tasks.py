"""Background jobs of the API channel: replies delivered to the integration's webhook."""

from __future__ import annotations

import logging
from datetime import timedelta

from huey import crontab
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from cape import jobs
from cape.channels.integrations.service import reply_payload, reply_webhook
from cape.channels.outbound import record_attempt
from cape.kit.clock import utcnow
from cape.kit.webhooks import SignedWebhook
from cape.models import (
    Channel,
    ChannelKind,
    Conversation,
    Customer,
    DeliveryStatus,
    Identity,
    IdentityKind,
    Message,
    MessageDirection,
)

log = logging.getLogger(__name__)

# Rounds of attempts (each with the webhook's own retries) before a reply is given up on.
MAX_ROUNDS = 6
# A reply still queued after this long lost its job (a worker stopped mid-way): sent again.
STALE_AFTER = timedelta(minutes=10)


@jobs.huey.task()
def deliver_api_reply_task(message_id: int, round_: int = 1) -> None:
    """POST an agent's reply to the integration; safe to run twice (Idempotency-Key: message-<id>)."""
    settings = jobs.runtime_settings()
    # Three short steps: the HTTP call and its retries hold no transaction (on SQLite, the write turn).
    with jobs.job_session() as session:
        message = session.scalar(
            select(Message).where(Message.id == message_id).options(
                selectinload(Message.channel), selectinload(Message.author_user)
            )
        )  # fmt: skip
        if message is None or message.delivery_status is not DeliveryStatus.queued:
            return
        webhook = reply_webhook(message.channel, settings.resolved_secret_key)
        conversation = session.get_one(Conversation, message.conversation_id)
        customer = session.get_one(Customer, conversation.customer_id)
        emails = list(
            session.scalars(
                select(Identity.value)
                .where(Identity.customer_id == customer.id, Identity.kind == IdentityKind.email)
                .order_by(Identity.id)
            )
        )
        payload = reply_payload(message, conversation, customer, emails)
        payload["message"]["in_reply_to"] = session.scalar(
            select(Message.external_id)
            .where(Message.conversation_id == conversation.id, Message.direction == MessageDirection.inbound)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(1)
        )
    if webhook is None:
        answer_error, final, delivered = "the API channel's reply webhook was removed", True, False
    else:
        answer = SignedWebhook(
            webhook.url, webhook.secret, timeout_s=settings.actions_webhook_timeout_s,
            attempts=settings.actions_webhook_attempts, backoff_s=settings.actions_webhook_backoff_s,
            user_agent="Cape-Replies/1",
        ).post(payload, idempotency_key=f"message-{message_id}")  # fmt: skip
        refused = answer.refused or answer.body.get("status") == "failed"
        answer_error = None if answer.answered and not refused else (answer.body.get("error") or answer.error)
        final = refused or round_ >= MAX_ROUNDS
        delivered = answer.body.get("status") == "delivered"
    with jobs.job_session() as session:
        record_attempt(
            session, message_id=message_id, error=str(answer_error) if answer_error else None, final=final,
            attempt=round_, max_attempts=MAX_ROUNDS, delivered=delivered,
        )  # fmt: skip
    if answer_error and not final:
        log.warning("reply webhook gave no clear answer", extra={"message_id": message_id, "round": round_})


def stale_api_replies(session, *, older_than: timedelta) -> list[tuple[int, int]]:
    """(message id, round) of API replies still queued long after their job should have ended."""
    rows = session.execute(
        select(Message.id, Message.meta)
        .join(Channel, Channel.id == Message.channel_id)
        .where(
            Channel.kind == ChannelKind.api,
            Message.direction == MessageDirection.outbound,
            Message.delivery_status == DeliveryStatus.queued,
            Message.created_at < utcnow() - older_than,
        )
        .order_by(Message.id)
        .limit(500)
    )
    return [(message_id, int((meta or {}).get("rounds", 1)) + 1) for message_id, meta in rows]


@jobs.huey.periodic_task(crontab(minute="*/5"))
def redeliver_stale_api_replies_task() -> int:
    """Send again what no clear answer, or a stopped worker, left queued (the key stays the same)."""
    with jobs.job_session() as session:
        stale = stale_api_replies(session, older_than=STALE_AFTER)
        for message_id, round_ in stale:
            message = session.get_one(Message, message_id)
            message.meta = {**message.meta, "rounds": round_}
    for message_id, round_ in stale:
        deliver_api_reply_task(message_id, min(round_, MAX_ROUNDS))
    return len(stale)
