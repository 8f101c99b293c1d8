"""Conversations: ingest, the inbox query, replies, notes and changes, each leaving history."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from cape import events
from cape.channels.base import InboundMessage
from cape.customers.service import resolve_customer_id
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
    DeliveryStatus,
    Message,
    MessageDirection,
    Priority,
    RawSource,
    RawStatus,
    Team,
    User,
)

log = logging.getLogger(__name__)

_INGEST_ATTEMPTS = 3

# The ingest path's statements, built once: building a statement per call costs more Python
# than running it on SQLite.
_raw_t = RawSource.__table__
_message_t = Message.__table__
_conversation_t = Conversation.__table__
_activity_t = Activity.__table__
_INSERT_RAW = insert(_raw_t).returning(_raw_t.c.id)
_MARK_RAW = update(_raw_t).where(_raw_t.c.id == bindparam("raw_id")).values(status=bindparam("new_status"))
_EXISTING_MESSAGE = select(_message_t.c.id, _message_t.c.conversation_id, _message_t.c.customer_id).where(
    _message_t.c.channel_id == bindparam("channel_id"), _message_t.c.external_id == bindparam("external_id")
)
_INSERT_CONVERSATION = insert(_conversation_t).returning(_conversation_t.c.id)
_INSERT_MESSAGE = insert(_message_t).returning(_message_t.c.id)
_INSERT_ACTIVITY = insert(_activity_t)


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

    This is the hottest path in Cape, so it speaks SQL through Core statements rather than
    the ORM unit of work (about three times less Python per message).
    """
    raw_id = session.execute(
        _INSERT_RAW,
        {
            "channel_id": inbound.channel.id,
            "external_id": inbound.external_id,
            "content_type": inbound.raw_content_type,
            "content": inbound.raw,
            "received_at": utcnow(),
            "status": RawStatus.received,
        },
    ).scalar_one()
    session.commit()
    for attempt in range(1, _INGEST_ATTEMPTS + 1):
        try:
            result = _file_inbound(session, inbound=inbound, raw_id=raw_id)
            session.commit()
            return result
        except IntegrityError as exc:
            # A concurrent ingest created the same identity or message: the retry finds it.
            session.rollback()
            if attempt == _INGEST_ATTEMPTS:
                _mark_raw(session, raw_id, RawStatus.failed, f"gave up after {attempt} concurrent conflicts: {exc}")
                session.commit()
                raise
        except Exception as exc:
            session.rollback()
            _mark_raw(session, raw_id, RawStatus.failed, exc.message if isinstance(exc, CapeError) else repr(exc))
            session.commit()
            raise
    raise AssertionError("unreachable")


def _mark_raw(session: Session, raw_id: int, status: RawStatus, error: str | None = None) -> None:
    if error is None:
        session.execute(_MARK_RAW, {"raw_id": raw_id, "new_status": status})
    else:
        session.execute(update(_raw_t).where(_raw_t.c.id == raw_id).values(status=status, error=error[:2000]))


def _file_inbound(session: Session, *, inbound: InboundMessage, raw_id: int) -> IngestResult:
    channel = inbound.channel
    if inbound.external_id:
        existing = session.execute(
            _EXISTING_MESSAGE, {"channel_id": channel.id, "external_id": inbound.external_id}
        ).first()
        if existing is not None:
            _mark_raw(session, raw_id, RawStatus.duplicate)
            return IngestResult(existing.customer_id, existing.conversation_id, existing.id, False, raw_id)

    customer_id = resolve_customer_id(session, sender=inbound.sender)
    now = utcnow()
    subject = _storable(inbound.subject or "").strip()[:998] or None
    conversation = _conversation_for(session, inbound=inbound, customer_id=customer_id)
    if conversation is None:
        conversation_id = session.execute(
            _INSERT_CONVERSATION,
            {
                "customer_id": customer_id, "channel_id": channel.id, "subject": subject,
                "status": ConversationStatus.open, "priority": Priority.normal,
                "created_at": now, "last_activity_at": now, "waiting_since": now,
            },
        ).scalar_one()  # fmt: skip
        _log(session, customer_id, conversation_id, "conversation_opened", now, channel=channel.kind.value)
        events.emit(session, "conversation.created", conversation_id=conversation_id)
    else:
        conversation_id = conversation.id
        changes: dict = {"last_activity_at": now, "waiting_since": conversation.waiting_since or now}
        if conversation.status is not ConversationStatus.open:
            changes |= {"status": ConversationStatus.open, "resolved_at": None, "snoozed_until": None}
            _log(session, customer_id, conversation_id, "status_changed", now,
                 old=conversation.status.value, new="open", reason="customer wrote again")  # fmt: skip
        session.execute(update(_conversation_t).where(_conversation_t.c.id == conversation_id).values(**changes))

    message_id = session.execute(
        _INSERT_MESSAGE,
        {
            "conversation_id": conversation_id, "customer_id": customer_id, "channel_id": channel.id,
            "direction": MessageDirection.inbound, "author_type": AuthorType.customer, "subject": subject,
            "body_text": _storable(inbound.body_text),
            "body_html": sanitize_html(_storable(inbound.body_html)) if inbound.body_html else None,
            "external_id": inbound.external_id, "raw_source_id": raw_id, "meta": inbound.meta,
            "created_at": now, "author_user_id": None, "delivery_status": None, "delivery_error": None,
        },
    ).scalar_one()  # fmt: skip
    if inbound.attachments:
        session.execute(
            insert(Attachment.__table__),
            [
                {
                    "message_id": message_id, "filename": a.filename[:255], "content_type": a.content_type[:255],
                    "size": a.size, "sha256": a.sha256, "content_id": a.content_id, "is_inline": a.is_inline,
                    "is_stored": a.is_stored, "created_at": now,
                }
                for a in inbound.attachments
            ],
        )  # fmt: skip
    _mark_raw(session, raw_id, RawStatus.processed)
    events.emit(
        session, "message.created",
        conversation_id=conversation_id, message_id=message_id, direction="inbound",
    )  # fmt: skip
    return IngestResult(customer_id, conversation_id, message_id, True, raw_id)


def _storable(text: str) -> str:
    """Text as the database can keep it (PostgreSQL refuses NUL); the raw source keeps the original."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _log(session: Session, customer_id: int, conversation_id: int, kind: str, at: datetime, **data: object) -> None:
    session.execute(
        _INSERT_ACTIVITY,
        {
            "customer_id": customer_id, "conversation_id": conversation_id, "actor_user_id": None,
            "kind": kind, "data": data, "created_at": at,
        },
    )  # fmt: skip


def _conversation_for(session: Session, *, inbound: InboundMessage, customer_id: int):
    table = Conversation.__table__
    columns = (table.c.id, table.c.customer_id, table.c.status, table.c.waiting_since)
    if inbound.conversation_id is not None:
        row = session.execute(select(*columns).where(table.c.id == inbound.conversation_id)).first()
        if row is None:
            raise InvalidInput("conversation_id", f"conversation {inbound.conversation_id} does not exist")
        if row.customer_id != customer_id:
            raise InvalidInput("conversation_id", "belongs to another customer")
        return row
    if inbound.thread_refs:
        messages = Message.__table__
        return session.execute(
            select(*columns)
            .join(messages, messages.c.conversation_id == table.c.id)
            .where(messages.c.channel_id == inbound.channel.id, messages.c.external_id.in_(inbound.thread_refs))
            .order_by(messages.c.created_at.desc())
            .limit(1)
        ).first()
    return None


def _record(
    session: Session,
    conversation: Conversation,
    actor: User | None,
    kind: str,
    *,
    at: datetime | None = None,
    **data: object,
) -> Activity:
    activity = Activity(
        customer_id=conversation.customer_id,
        conversation_id=conversation.id,
        actor_user_id=actor.id if actor else None,
        kind=kind,
        data=data,
        created_at=at or utcnow(),
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
    team_id: int | object | None = _UNSET,
    priority: Priority | object = _UNSET,
    tags: list[str] | object = _UNSET,
    snoozed_until: datetime | object | None = _UNSET,
) -> Conversation:
    """Change status, assignee, team, priority or tags; each change is written to the activity log."""
    now = utcnow()
    before = _state(conversation)
    if (
        snoozed_until is not _UNSET
        and status in (_UNSET, ConversationStatus.snoozed)
        and conversation.status is ConversationStatus.snoozed
        and snoozed_until != conversation.snoozed_until
    ):
        if not isinstance(snoozed_until, datetime) or snoozed_until <= now:
            raise InvalidInput("snoozed_until", "a future time is required to snooze")
        _record(session, conversation, actor, "snooze_changed",
                old=conversation.snoozed_until.isoformat() if conversation.snoozed_until else None,
                new=snoozed_until.isoformat())  # fmt: skip
        conversation.snoozed_until = snoozed_until
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
    if team_id is not _UNSET and team_id != conversation.team_id:
        team = session.get(Team, team_id) if team_id is not None else None
        if team_id is not None and team is None:
            raise InvalidInput("team_id", f"no team {team_id}")
        _record(session, conversation, actor, "team_changed", old_team_id=conversation.team_id, team_id=team_id,
                team_name=team.name if team else None)  # fmt: skip
        conversation.team_id = team_id  # type: ignore[assignment]
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
    if _state(conversation) != before:  # a request that changes nothing leaves the inbox order alone
        conversation.last_activity_at = now
        session.flush()
        events.emit(session, "conversation.updated", conversation_id=conversation.id)
    session.flush()
    session.refresh(conversation)
    return get_conversation(session, conversation.id, with_messages=False)


def _state(conversation: Conversation) -> tuple:
    return (
        conversation.status, conversation.assignee_id, conversation.team_id, conversation.priority,
        conversation.snoozed_until, tuple(sorted(t.tag for t in conversation.tags)),
    )  # fmt: skip


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
