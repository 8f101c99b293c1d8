"""Conversations: ingest, the inbox query, replies, notes and changes, each leaving history."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from cape import events
from cape.channels.base import InboundMessage
from cape.customers.service import IdentityRace, resolve_customer
from cape.kit.clock import utcnow
from cape.kit.errors import CapeError, InvalidInput, NotFound
from cape.kit.html import sanitize_html
from cape.kit.pagination import decode_cursor, encode_cursor
from cape.models import (
    Activity,
    Attachment,
    AuthorType,
    ChannelKind,
    Conversation,
    ConversationStatus,
    ConversationTag,
    Customer,
    DeliveryStatus,
    Message,
    MessageDirection,
    Priority,
    RawSource,
    RawStatus,
    User,
)

log = logging.getLogger(__name__)

_INGEST_ATTEMPTS = 3


@dataclass(frozen=True)
class IngestResult:
    customer_id: int
    conversation_id: int
    message_id: int
    created: bool
    raw_source_id: int


def ingest(session: Session, *, inbound: InboundMessage) -> IngestResult:
    """Store the raw source, then file the message on the right customer and conversation.

    Commits eagerly, the one service that does: the raw source is committed before anything
    else is tried, so bad input is kept even when it cannot be filed, and the caller may
    acknowledge its source only once this returns. Idempotent on (channel, external_id).
    """
    raw = RawSource(
        channel_id=inbound.channel.id,
        external_id=inbound.external_id,
        content_type=inbound.raw_content_type,
        content=inbound.raw,
        received_at=utcnow(),
    )
    session.add(raw)
    session.commit()
    for attempt in range(1, _INGEST_ATTEMPTS + 1):
        try:
            result = _file_inbound(session, inbound=inbound, raw=raw)
            session.commit()
            return result
        except (IdentityRace, IntegrityError) as exc:
            # A concurrent ingest created the same identity or message: the retry finds it.
            session.rollback()
            if attempt == _INGEST_ATTEMPTS:
                _mark_failed(session, raw, f"gave up after {attempt} concurrent conflicts: {exc}")
                raise
        except Exception as exc:
            session.rollback()
            _mark_failed(session, raw, exc.message if isinstance(exc, CapeError) else repr(exc))
            raise
    raise AssertionError("unreachable")


def _mark_failed(session: Session, raw: RawSource, error: str) -> None:
    raw.status = RawStatus.failed
    raw.error = error[:2000]
    session.commit()


def _file_inbound(session: Session, *, inbound: InboundMessage, raw: RawSource) -> IngestResult:
    channel = inbound.channel
    if inbound.external_id:
        existing = session.execute(
            select(Message.id, Message.conversation_id, Message.customer_id).where(
                Message.channel_id == channel.id, Message.external_id == inbound.external_id
            )
        ).first()
        if existing is not None:
            raw.status = RawStatus.duplicate
            return IngestResult(existing.customer_id, existing.conversation_id, existing.id, False, raw.id)

    customer = resolve_customer(session, sender=inbound.sender)
    now = utcnow()
    conversation = _conversation_for(session, inbound=inbound, customer=customer)
    if conversation is None:
        conversation = Conversation(
            customer_id=customer.id,
            channel_id=channel.id,
            subject=(inbound.subject or "").strip()[:998] or None,
            status=ConversationStatus.open,
            priority=Priority.normal,
            last_activity_at=now,
            waiting_since=now,
        )
        session.add(conversation)
        session.flush()
        _record(session, conversation, None, "conversation_opened", channel=channel.kind.value)
        events.emit(session, "conversation.created", conversation_id=conversation.id)
    else:
        if conversation.status is not ConversationStatus.open:
            _record(
                session, conversation, None, "status_changed",
                old=conversation.status.value, new="open", reason="customer wrote again",
            )  # fmt: skip
            conversation.status = ConversationStatus.open
            conversation.resolved_at = None
            conversation.snoozed_until = None
        conversation.last_activity_at = now
        conversation.waiting_since = conversation.waiting_since or now

    message = Message(
        conversation_id=conversation.id,
        customer_id=customer.id,
        channel_id=channel.id,
        direction=MessageDirection.inbound,
        author_type=AuthorType.customer,
        subject=(inbound.subject or "").strip()[:998] or None,
        body_text=inbound.body_text,
        body_html=sanitize_html(inbound.body_html) if inbound.body_html else None,
        external_id=inbound.external_id,
        raw_source_id=raw.id,
        meta=inbound.meta,
        created_at=now,
    )
    session.add(message)
    session.flush()
    for attachment in inbound.attachments:
        session.add(
            Attachment(
                message_id=message.id,
                filename=attachment.filename[:255],
                content_type=attachment.content_type[:255],
                size=attachment.size,
                sha256=attachment.sha256,
                content_id=attachment.content_id,
                is_inline=attachment.is_inline,
                is_stored=attachment.is_stored,
            )
        )
    raw.status = RawStatus.processed
    events.emit(
        session, "message.created",
        conversation_id=conversation.id, message_id=message.id, direction="inbound",
    )  # fmt: skip
    return IngestResult(customer.id, conversation.id, message.id, True, raw.id)


def _conversation_for(session: Session, *, inbound: InboundMessage, customer: Customer) -> Conversation | None:
    if inbound.conversation_id is not None:
        conversation = session.get(Conversation, inbound.conversation_id)
        if conversation is None:
            raise InvalidInput("conversation_id", f"conversation {inbound.conversation_id} does not exist")
        if conversation.customer_id != customer.id:
            raise InvalidInput("conversation_id", "belongs to another customer")
        return conversation
    if inbound.thread_refs:
        conversation_id = session.scalar(
            select(Message.conversation_id)
            .where(Message.channel_id == inbound.channel.id, Message.external_id.in_(inbound.thread_refs))
            .order_by(Message.created_at.desc())
            .limit(1)
        )
        if conversation_id is not None:
            return session.get(Conversation, conversation_id)
    return None


def _record(session: Session, conversation: Conversation, actor: User | None, kind: str, **data: object) -> Activity:
    activity = Activity(
        customer_id=conversation.customer_id,
        conversation_id=conversation.id,
        actor_user_id=actor.id if actor else None,
        kind=kind,
        data=data,
    )
    session.add(activity)
    return activity


def _inbox_options():
    return (
        selectinload(Conversation.customer),
        selectinload(Conversation.channel),
        selectinload(Conversation.assignee),
        selectinload(Conversation.tags),
    )


def list_conversations(
    session: Session,
    *,
    status: ConversationStatus | None = None,
    assignee_id: int | None = None,
    unassigned: bool = False,
    customer_id: int | None = None,
    limit: int = 25,
    cursor: str | None = None,
) -> tuple[list[Conversation], str | None]:
    """One page of conversations, newest activity first, with a cursor for the next page."""
    query = select(Conversation).options(*_inbox_options())
    if status is not None:
        query = query.where(Conversation.status == status)
    if assignee_id is not None:
        query = query.where(Conversation.assignee_id == assignee_id)
    if unassigned:
        query = query.where(Conversation.assignee_id.is_(None))
    if customer_id is not None:
        query = query.where(Conversation.customer_id == customer_id)
    if cursor:
        at, last_id = decode_cursor(cursor)
        query = query.where(
            or_(
                Conversation.last_activity_at < at,
                and_(Conversation.last_activity_at == at, Conversation.id < last_id),
            )
        )
    query = query.order_by(Conversation.last_activity_at.desc(), Conversation.id.desc()).limit(limit + 1)
    rows = list(session.scalars(query))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].last_activity_at, rows[-1].id)
    return rows, next_cursor


def get_conversation(session: Session, conversation_id: int, *, with_messages: bool = True) -> Conversation:
    """A conversation with its customer, channel, assignee, tags and (optionally) messages."""
    options = list(_inbox_options())
    if with_messages:
        messages = selectinload(Conversation.messages)
        options += [messages.selectinload(Message.author_user), messages.selectinload(Message.channel)]
    conversation = session.scalar(select(Conversation).where(Conversation.id == conversation_id).options(*options))
    if conversation is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return conversation


def conversation_activities(session: Session, *, conversation: Conversation) -> list[Activity]:
    return list(
        session.scalars(
            select(Activity)
            .where(Activity.conversation_id == conversation.id)
            .options(selectinload(Activity.actor))
            .order_by(Activity.created_at, Activity.id)
        )
    )


def get_raw_source(session: Session, *, message_id: int) -> RawSource:
    """Exactly what the channel handed us for this message."""
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(f"message {message_id} not found")
    raw = session.get(RawSource, message.raw_source_id) if message.raw_source_id else None
    if raw is None:
        raise NotFound(f"message {message_id} has no stored raw source")
    return raw


# Channels that deliver agent replies register here (kind -> function queueing the send).
OutboundSender = Callable[[Session, Message], None]
outbound_senders: dict[ChannelKind, OutboundSender] = {}


def add_reply(
    session: Session, *, conversation: Conversation, author: User, body: str, internal: bool = False
) -> Message:
    """An agent's reply to the customer, or an internal note only colleagues see."""
    body = body.strip()
    if not body:
        raise InvalidInput("body", "must not be empty")
    now = utcnow()
    message = Message(
        conversation_id=conversation.id,
        customer_id=conversation.customer_id,
        channel=conversation.channel,
        direction=MessageDirection.note if internal else MessageDirection.outbound,
        author_type=AuthorType.user,
        author_user_id=author.id,
        body_text=body,
        created_at=now,
    )
    session.add(message)
    conversation.last_activity_at = now
    if not internal:
        conversation.waiting_since = None
        conversation.first_response_at = conversation.first_response_at or now
        send = outbound_senders.get(conversation.channel.kind)
        if send is not None:
            message.delivery_status = DeliveryStatus.queued
    session.flush()
    if not internal and send is not None:
        send(session, message)
    events.emit(
        session, "message.created",
        conversation_id=conversation.id, message_id=message.id,
        direction=message.direction.value,
    )  # fmt: skip
    return message


_UNSET = object()


def update_conversation(
    session: Session,
    *,
    conversation: Conversation,
    actor: User,
    status: ConversationStatus | object = _UNSET,
    assignee_id: int | object | None = _UNSET,
    priority: Priority | object = _UNSET,
    tags: list[str] | object = _UNSET,
    snoozed_until: datetime | object | None = _UNSET,
) -> Conversation:
    """Change status, assignee, priority or tags; each change is written to the activity log."""
    now = utcnow()
    if status is not _UNSET and status != conversation.status:
        assert isinstance(status, ConversationStatus)
        if status is ConversationStatus.snoozed:
            until = snoozed_until if snoozed_until is not _UNSET else None
            if not isinstance(until, datetime) or until <= now:
                raise InvalidInput("snoozed_until", "a future time is required to snooze")
            conversation.snoozed_until = until
        else:
            conversation.snoozed_until = None
        _record(session, conversation, actor, "status_changed", old=conversation.status.value, new=status.value)
        conversation.status = status
        conversation.resolved_at = now if status is ConversationStatus.resolved else None
    if assignee_id is not _UNSET and assignee_id != conversation.assignee_id:
        assignee = None
        if assignee_id is not None:
            assignee = session.get(User, assignee_id)
            if assignee is None or not assignee.is_active:
                raise InvalidInput("assignee_id", f"no active user {assignee_id}")
        _record(
            session, conversation, actor, "assigned",
            old_assignee_id=conversation.assignee_id, assignee_id=assignee_id,
            assignee_name=assignee.name if assignee else None,
        )  # fmt: skip
        conversation.assignee_id = assignee_id  # type: ignore[assignment]
    if priority is not _UNSET and priority != conversation.priority:
        assert isinstance(priority, Priority)
        _record(
            session,
            conversation,
            actor,
            "priority_changed",
            old=conversation.priority.value,
            new=priority.value,
        )
        conversation.priority = priority
    if tags is not _UNSET:
        _set_tags(session, conversation=conversation, actor=actor, tags=tags)  # type: ignore[arg-type]
    conversation.last_activity_at = now
    session.flush()
    session.refresh(conversation)
    events.emit(session, "conversation.updated", conversation_id=conversation.id)
    return get_conversation(session, conversation.id, with_messages=False)


def _set_tags(session: Session, *, conversation: Conversation, actor: User, tags: list[str]) -> None:
    wanted = []
    for tag in tags:
        tag = tag.strip().lower()
        if not tag or len(tag) > 64:
            raise InvalidInput("tags", "each tag is 1 to 64 characters")
        if tag not in wanted:
            wanted.append(tag)
    current = [t.tag for t in conversation.tags]
    added = [t for t in wanted if t not in current]
    removed = [t for t in current if t not in wanted]
    if not added and not removed:
        return
    conversation.tags = [t for t in conversation.tags if t.tag in wanted] + [ConversationTag(tag=t) for t in added]
    _record(session, conversation, actor, "tags_changed", added=added, removed=removed)
