"""Conversations: ingest, the inbox query, replies, notes and changes, each leaving history."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload, with_expression
from sqlalchemy.orm.attributes import set_committed_value

from cape import events
from cape.channels import outbound
from cape.channels.base import InboundMessage
from cape.customers.service import resolve_customer_id
from cape.kit.clock import utcnow
from cape.kit.errors import CapeError, Conflict, InvalidInput, NotFound
from cape.kit.html import sanitize_html
from cape.kit.pagination import newest_first
from cape.kit.rawsql import RawSql, in_list
from cape.models import (
    Activity,
    Attachment,
    AuthorType,
    Conversation,
    ConversationStatus,
    ConversationTag,
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
_EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")

# The ingest path's statements, for the driver directly (see cape.kit.rawsql): a Core statement
# costs more Python than SQLite takes to run it.
_INSERT_RAW = """INSERT INTO raw_sources (channel_id, external_id, content_type, content, received_at, status)
    VALUES (:channel_id, :external_id, :content_type, :content, :received_at, :status) RETURNING id"""
_MARK_RAW = "UPDATE raw_sources SET status = :status WHERE id = :raw_id"
_FAIL_RAW = "UPDATE raw_sources SET status = :status, error = :error WHERE id = :raw_id"
_EXISTING_MESSAGE = """SELECT id, conversation_id, customer_id FROM messages
    WHERE channel_id = :channel_id AND external_id = :external_id"""
_INSERT_CONVERSATION = """INSERT INTO conversations
    (customer_id, channel_id, subject, status, priority, created_at, last_activity_at, waiting_since,
     linked_conversation_id, language)
    VALUES (:customer_id, :channel_id, :subject, :status, :priority, :now, :now, :now, :linked_id, :language)
    RETURNING id"""
_CUSTOMER_LANGUAGE = "UPDATE customers SET language = :language WHERE id = :customer_id AND language IS NULL"
_CONVERSATION_COLUMNS = "conversations.id, conversations.customer_id, conversations.status"
_CONVERSATION_BY_ID = f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = :conversation_id"  # noqa: S608 - constant columns
_TOUCH_CONVERSATION = """UPDATE conversations
    SET last_activity_at = :now, waiting_since = COALESCE(waiting_since, :now) WHERE id = :conversation_id"""
_REOPEN_CONVERSATION = """UPDATE conversations
    SET last_activity_at = :now, waiting_since = COALESCE(waiting_since, :now),
        status = :status, resolved_at = NULL, snoozed_until = NULL
    WHERE id = :conversation_id"""
_INSERT_MESSAGE = """INSERT INTO messages
    (conversation_id, customer_id, channel_id, direction, author_type, subject, body_text, body_html,
     external_id, raw_source_id, meta, created_at)
    VALUES (:conversation_id, :customer_id, :channel_id, :direction, :author_type, :subject, :body_text, :body_html,
     :external_id, :raw_source_id, :meta, :created_at) RETURNING id"""
_INSERT_ACTIVITY = """INSERT INTO activities (customer_id, conversation_id, kind, data, created_at)
    VALUES (:customer_id, :conversation_id, :kind, :data, :created_at)"""


@dataclass(frozen=True)
class IngestResult:
    customer_id: int
    conversation_id: int
    message_id: int
    created: bool
    raw_source_id: int


def ingest(session: Session, *, inbound: InboundMessage) -> IngestResult:
    """Store the raw source, then file the message on the right customer and conversation.

    Commits eagerly, the one service that does, so that the caller may acknowledge the source
    once this returns. When the message cannot be filed, its raw source is still committed,
    marked failed with the reason, and the error is raised. Idempotent on (channel, external_id).

    This is the hottest path in Cape, so it speaks plain SQL to the driver rather than through
    the ORM unit of work or Core (ten times less Python per message).
    """
    outcome = ingest_many(session, inbounds=[inbound])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def ingest_many(session: Session, *, inbounds: list[InboundMessage]) -> list[IngestResult | Exception]:
    """``ingest`` for several messages in one transaction instead of one each (group commit).

    Every raw source is stored first; the messages are then filed together in a savepoint.
    Should any of them fail, that savepoint is rolled back and each message is filed in a
    savepoint of its own, so one bad message costs the others nothing but time, and its raw
    source is kept, marked failed. One commit ends it all. Each entry is a result or the error
    that message met.
    """
    stored = [(inbound, store_raw(session, inbound=inbound)) for inbound in inbounds]
    outcomes: list[IngestResult | Exception] | None = None
    if len(stored) > 1:
        try:
            with _savepoint(session):
                outcomes = [_file_inbound(session, inbound=inbound, raw_id=raw_id) for inbound, raw_id in stored]
        except Exception:
            log.info("a batch of %d inbound messages could not be filed together; filing each alone", len(stored))
    if outcomes is None:
        outcomes = [_file_alone(session, inbound=inbound, raw_id=raw_id) for inbound, raw_id in stored]
    session.commit()
    return outcomes


def store_raw(session: Session, *, inbound: InboundMessage) -> int:
    """Keep exactly what the channel handed us, before anything else is tried with it."""
    raw = RawSql.of(session)
    return raw.scalar(
        _INSERT_RAW,
        {
            "channel_id": inbound.channel.id,
            "external_id": inbound.external_id,
            "content_type": inbound.raw_content_type,
            "content": inbound.raw,
            "received_at": raw.datetime(utcnow()),
            "status": RawStatus.received.value,
        },
    )


def _file_alone(session: Session, *, inbound: InboundMessage, raw_id: int) -> IngestResult | Exception:
    """File one stored raw source in a savepoint; on failure, the raw source is marked failed."""
    for attempt in range(1, _INGEST_ATTEMPTS + 1):
        try:
            with _savepoint(session):
                return _file_inbound(session, inbound=inbound, raw_id=raw_id)
        except IntegrityError as exc:
            # A concurrent ingest created the same identity or message (PostgreSQL, where
            # writers overlap): the next attempt finds it.
            if attempt == _INGEST_ATTEMPTS:
                _mark_raw(session, raw_id, RawStatus.failed, f"gave up after {attempt} concurrent conflicts: {exc}")
                return exc
        except Exception as exc:
            if is_transient(exc):
                # Nothing wrong with the message, only its timing; this transaction keeps the
                # locks of the messages filed before it, so the caller starts a fresh one.
                raise
            _mark_raw(session, raw_id, RawStatus.failed, exc.message if isinstance(exc, CapeError) else repr(exc))
            return exc
    raise AssertionError("unreachable")


# PostgreSQL's deadlock and serialization failures.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def is_transient(exc: BaseException) -> bool:
    """Whether a database error says "try again" (a deadlock, a serialization failure)."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


@contextmanager
def _savepoint(session: Session) -> Iterator[None]:
    """A savepoint for filing, sent straight to the driver: SQLAlchemy's ``begin_nested`` costs as
    much Python as a commit. Filing changes nothing through the ORM, so the session need not
    know of it; its announcements are rewound with it."""
    session.flush()  # what the ORM holds is written before, not inside, the savepoint
    raw = RawSql.of(session)
    point = events.checkpoint(session)
    raw.execute("SAVEPOINT cape_filing", {})
    try:
        yield
    except BaseException:
        raw.execute("ROLLBACK TO SAVEPOINT cape_filing", {})
        raw.execute("RELEASE SAVEPOINT cape_filing", {})
        events.rewind(session, point)
        raise
    raw.execute("RELEASE SAVEPOINT cape_filing", {})


def _mark_raw(session: Session, raw_id: int, status: RawStatus, error: str | None = None) -> None:
    raw = RawSql.of(session)
    if error is None:
        raw.execute(_MARK_RAW, {"raw_id": raw_id, "status": status.value})
    else:
        raw.execute(_FAIL_RAW, {"raw_id": raw_id, "status": status.value, "error": error[:2000]})


def _file_inbound(session: Session, *, inbound: InboundMessage, raw_id: int) -> IngestResult:
    raw = RawSql.of(session)
    channel = inbound.channel
    if inbound.external_id:
        existing = raw.first(_EXISTING_MESSAGE, {"channel_id": channel.id, "external_id": inbound.external_id})
        if existing is not None:
            _mark_raw(session, raw_id, RawStatus.duplicate)
            message_id, conversation_id, customer_id = existing
            return IngestResult(customer_id, conversation_id, message_id, False, raw_id)

    customer_id = resolve_customer_id(session, sender=inbound.sender)
    if inbound.language:
        raw.execute(_CUSTOMER_LANGUAGE, {"language": inbound.language, "customer_id": customer_id})
    at = utcnow()
    now = raw.datetime(at)
    subject = _storable(inbound.subject or "").strip()[:998] or None
    conversation, linked_id = _conversation_for(raw, inbound=inbound, customer_id=customer_id)
    if conversation is None:
        conversation_id = raw.scalar(
            _INSERT_CONVERSATION,
            {
                "customer_id": customer_id, "channel_id": channel.id, "subject": subject,
                "status": ConversationStatus.open.value, "priority": Priority.normal.value, "now": now,
                "linked_id": linked_id, "language": inbound.language,
            },
        )  # fmt: skip
        _log(raw, customer_id, conversation_id, "conversation_opened", now, channel=channel.kind.value,
             **({"linked_conversation_id": linked_id} if linked_id else {}))  # fmt: skip
        if linked_id is not None:
            _log_linked(raw, linked_id, conversation_id, now)
        events.emit(session, "conversation.created", conversation_id=conversation_id)
    else:
        conversation_id, conversation_customer_id, status = conversation
        if status == ConversationStatus.open.value:
            raw.execute(_TOUCH_CONVERSATION, {"now": now, "conversation_id": conversation_id})
        else:
            raw.execute(
                _REOPEN_CONVERSATION,
                {"now": now, "conversation_id": conversation_id, "status": ConversationStatus.open.value},
            )
            _log(raw, conversation_customer_id, conversation_id, "status_changed", now,
                 old=status, new="open", reason="customer wrote again")  # fmt: skip

    message_id = raw.scalar(
        _INSERT_MESSAGE,
        {
            "conversation_id": conversation_id, "customer_id": customer_id, "channel_id": channel.id,
            "direction": MessageDirection.inbound.value, "author_type": AuthorType.customer.value,
            "subject": subject, "body_text": _storable(inbound.body_text),
            "body_html": sanitize_html(_storable(inbound.body_html)) if inbound.body_html else None,
            "external_id": inbound.external_id, "raw_source_id": raw_id, "meta": raw.json(inbound.meta),
            "created_at": now,
        },
    )  # fmt: skip
    if inbound.attachments:
        session.execute(
            insert(Attachment.__table__),
            [
                {
                    "message_id": message_id, "filename": a.filename[:255], "content_type": a.content_type[:255],
                    "size": a.size, "sha256": a.sha256, "content_id": a.content_id, "is_inline": a.is_inline,
                    "is_stored": a.is_stored, "created_at": at,
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


def _log(raw: RawSql, customer_id: int, conversation_id: int, kind: str, now: object, **data: object) -> None:
    raw.execute(
        _INSERT_ACTIVITY,
        {
            "customer_id": customer_id, "conversation_id": conversation_id,
            "kind": kind, "data": raw.json(data), "created_at": now,
        },
    )  # fmt: skip


# Only the most recent ids a message refers to are looked at: a thread's References can be long,
# and a hostile one could be made endless.
MAX_THREAD_REFS = 50


def _log_linked(raw: RawSql, linked_id: int, conversation_id: int, now: object) -> None:
    """On the referred-to conversation: someone who is not a participant wrote about it elsewhere."""
    row = raw.first(_CONVERSATION_BY_ID, {"conversation_id": linked_id})
    if row is not None:
        _log(raw, row[1], linked_id, "linked_conversation_opened", now, new_conversation_id=conversation_id)


def _conversation_for(raw: RawSql, *, inbound: InboundMessage, customer_id: int) -> tuple[tuple | None, int | None]:
    """((id, customer_id, status) of the conversation a message continues, or None for a new one;
    the id of the conversation it referred to, when it starts a new one linked to it).

    The rule for threads: a message that refers to a conversation (In-Reply-To, References, a
    reply address) continues it when it comes from that conversation's customer or from an
    address kept in copy there (a participant). Anyone else starts a conversation of their own,
    linked to the one they referred to, and never sees its history.
    """
    if inbound.conversation_id is not None:
        row = raw.first(_CONVERSATION_BY_ID, {"conversation_id": inbound.conversation_id})
        if row is None:
            raise InvalidInput("conversation_id", f"conversation {inbound.conversation_id} does not exist")
        if row[1] != customer_id:
            raise InvalidInput("conversation_id", "belongs to another customer")
        return row[:3], None
    if not inbound.thread_refs:
        return None, None
    refs_sql, refs = in_list("ref", inbound.thread_refs[:MAX_THREAD_REFS])
    row = raw.first(
        # Reviewed: only constant columns and generated placeholders (in_list) are interpolated.
        f"""SELECT {_CONVERSATION_COLUMNS}, conversations.cc_addresses FROM conversations
            JOIN messages ON messages.conversation_id = conversations.id
            WHERE messages.channel_id = :channel_id AND messages.external_id IN {refs_sql}
            ORDER BY messages.created_at DESC LIMIT 1""",  # noqa: S608
        {"channel_id": inbound.channel.id, **refs},
    )
    if row is None:
        return None, None
    cc = row[3]
    cc = json.loads(cc) if isinstance(cc, str) else cc
    sender = (inbound.sender.email or "").lower()
    if row[1] == customer_id or (sender and sender in (cc or [])):
        return row[:3], None
    return None, row[0]


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
    # Joined in the same statement (each is one row): a statement of its own costs more Python.
    return (
        joinedload(Conversation.customer, innerjoin=True),
        joinedload(Conversation.channel, innerjoin=True),
        joinedload(Conversation.assignee),
        selectinload(Conversation.tags),
    )


PREVIEW_CHARS = 200


def _latest_inbound_text():
    # In the page's own statement, not one per row: for each of its rows, the messages'
    # (conversation_id, created_at, id) index is read from its newest end to the first message
    # from the customer, and only the start of its text is taken.
    return (
        select(func.substr(Message.body_text, 1, PREVIEW_CHARS))
        .where(Message.conversation_id == Conversation.id, Message.direction == MessageDirection.inbound)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
        .correlate(Conversation)
        .scalar_subquery()
    )


def list_conversations(
    session: Session,
    *,
    status: ConversationStatus | None = None,
    assignee_id: int | None = None,
    unassigned: bool = False,
    team_id: int | None = None,
    customer_id: int | None = None,
    limit: int = 25,
    cursor: str | None = None,
    preview: bool = False,
) -> tuple[list[Conversation], str | None]:
    """One page of conversations, newest activity first, with a cursor for the next page; with
    ``preview``, each with the start of the customer's latest message (``Conversation.preview``).

    Each filter, with or without a status, has an index that yields the rows in this order
    (the models' ``Conversation.__table_args__``), so a page reads only its own rows.
    """
    query = select(Conversation).options(*_inbox_options())
    if preview:
        query = query.options(with_expression(Conversation.preview, _latest_inbound_text()))
    if status is not None:
        query = query.where(Conversation.status == status)
    if assignee_id is not None:
        query = query.where(Conversation.assignee_id == assignee_id)
    if unassigned:
        query = query.where(Conversation.assignee_id.is_(None))
    if team_id is not None:
        query = query.where(Conversation.team_id == team_id)
    if customer_id is not None:
        query = query.where(Conversation.customer_id == customer_id)
    page = newest_first(
        session, query, at=Conversation.last_activity_at, row_id=Conversation.id, limit=limit, cursor=cursor
    )
    return page.rows, page.next_cursor


def recent_conversations(session: Session, *, customer_id: int, limit: int) -> list:
    """(id, subject, status) of a customer's latest conversations, newest activity first: for a
    list of links, without loading the conversations themselves."""
    query = (
        select(Conversation.id, Conversation.subject, Conversation.status)
        .where(Conversation.customer_id == customer_id)
        .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
        .limit(limit)
    )
    return list(session.execute(query))


def get_conversation(session: Session, *, conversation_id: int, with_messages: bool = True) -> Conversation:
    """A conversation with its customer, channel, assignee, tags and (optionally) every message."""
    options = list(_inbox_options())
    if with_messages:
        messages = selectinload(Conversation.messages)
        options += [messages.joinedload(Message.author_user), messages.joinedload(Message.channel, innerjoin=True)]
    conversation = session.scalar(select(Conversation).where(Conversation.id == conversation_id).options(*options))
    if conversation is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return conversation


def get_message(session: Session, *, message_id: int) -> tuple[Message, Conversation]:
    """A message (with its channel and author) and its conversation (with its channel)."""
    message = session.scalar(
        select(Message)
        .where(Message.id == message_id)
        .options(joinedload(Message.channel, innerjoin=True), joinedload(Message.author_user))
    )
    if message is None:
        raise NotFound(f"message {message_id} not found")
    return message, get_conversation(session, conversation_id=message.conversation_id, with_messages=False)


def conversation_messages(
    session: Session, *, conversation_id: int, limit: int, before: str | None = None
) -> tuple[list[Message], str | None]:
    """The latest ``limit`` messages of a conversation (before the cursor ``before``), oldest first,
    and the cursor of the earlier ones (None when there are none)."""
    query = (
        select(Message)
        .where(Message.conversation_id == conversation_id)
        .options(joinedload(Message.author_user), joinedload(Message.channel, innerjoin=True))
    )
    page = newest_first(session, query, at=Message.created_at, row_id=Message.id, limit=limit, cursor=before)
    return page.rows[::-1], page.next_cursor


def last_inbound_message(session: Session, *, conversation_id: int) -> Message | None:
    """The customer's latest message in a conversation."""
    query = select(Message).where(
        Message.conversation_id == conversation_id, Message.direction == MessageDirection.inbound
    )
    return session.scalars(query.order_by(Message.created_at.desc(), Message.id.desc()).limit(1)).first()


def conversation_activities(
    session: Session, *, conversation_id: int, limit: int, before: str | None = None
) -> tuple[list[Activity], str | None]:
    """The latest ``limit`` history entries of a conversation, as ``conversation_messages``."""
    query = select(Activity).where(Activity.conversation_id == conversation_id).options(joinedload(Activity.actor))
    page = newest_first(session, query, at=Activity.created_at, row_id=Activity.id, limit=limit, cursor=before)
    return page.rows[::-1], page.next_cursor


def get_raw_source(session: Session, *, message_id: int) -> RawSource:
    """Exactly what the channel handed us for this message."""
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(f"message {message_id} not found")
    raw = session.get(RawSource, message.raw_source_id) if message.raw_source_id else None
    if raw is None:
        raise NotFound(f"message {message_id} has no stored raw source")
    return raw


MAX_CC = 20


def add_reply(
    session: Session,
    *,
    conversation: Conversation,
    author: User,
    body: str,
    internal: bool = False,
    cc: list[str] | None = None,
) -> Message:
    """An agent's reply to the customer, or an internal note only colleagues see.

    A reply goes out through the send service (``cape.channels.outbound``) to the customer and
    the addresses kept in copy: ``cc`` replaces the conversation's copy list (None keeps it).
    """
    body = body.strip()
    if not body:
        raise InvalidInput("body", "must not be empty")
    now = utcnow()
    if cc is not None and not internal:
        set_cc(session, conversation=conversation, addresses=cc, actor=author)
    message = Message(
        conversation_id=conversation.id,
        customer_id=conversation.customer_id,
        channel=conversation.channel,
        direction=MessageDirection.note if internal else MessageDirection.outbound,
        author_type=AuthorType.user,
        author_user_id=author.id,
        body_text=body,
        created_at=now,
        meta={} if internal else {"cc": list(conversation.cc_addresses or [])},
    )
    session.add(message)
    conversation.last_activity_at = now
    if not internal:
        conversation.waiting_since = None
        conversation.first_response_at = conversation.first_response_at or now
    session.flush()
    if not internal:
        outbound.queue_outbound(session, message=message, conversation=conversation)
    events.emit(
        session, "message.created",
        conversation_id=conversation.id, message_id=message.id,
        direction=message.direction.value,
    )  # fmt: skip
    return message


def set_cc(session: Session, *, conversation: Conversation, addresses: list[str], actor: User) -> list[str]:
    """Set who is kept in copy of the replies; with the customer, they are the participants."""
    wanted: list[str] = []
    for address in addresses:
        address = address.strip().strip("<>").lower()
        if not address:
            continue
        if not _EMAIL.fullmatch(address) or len(address) > 320:
            raise InvalidInput("cc", f"not an email address: {address[:80]}")
        if address not in wanted:
            wanted.append(address)
    if len(wanted) > MAX_CC:
        raise InvalidInput("cc", f"at most {MAX_CC} addresses")
    current = list(conversation.cc_addresses or [])
    if wanted != current:
        added, removed = [a for a in wanted if a not in current], [a for a in current if a not in wanted]
        _record(session, conversation, actor, "cc_changed", added=added, removed=removed)
        conversation.cc_addresses = wanted
    return wanted


def is_participant(conversation: Conversation, *, address: str | None) -> bool:
    """Whether mail from ``address`` belongs in this conversation: an address kept in copy."""
    return bool(address) and address.lower() in (conversation.cc_addresses or [])


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
    expected_assignee_id: int | object | None = _UNSET,
) -> Conversation:
    """Change status, assignee, team, priority or tags; each change is written to the activity log.

    ``expected_assignee_id`` is the assignee the caller saw (None: nobody); when someone else has
    changed it since, the assignment is refused with ``Conflict``. Left out, it is the assignee
    loaded in this transaction. A refused request changes nothing once the caller rolls back.
    """
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
        expected = conversation.assignee_id if expected_assignee_id is _UNSET else expected_assignee_id
        _assign(session, conversation=conversation, actor=actor, assignee_id=assignee_id, expected=expected)  # type: ignore[arg-type]
    if team_id is not _UNSET and team_id != conversation.team_id:
        team = session.get(Team, team_id) if team_id is not None else None
        if team_id is not None and (team is None or not team.is_active):
            raise InvalidInput("team_id", f"no active team {team_id}")
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
    return get_conversation(session, conversation_id=conversation.id, with_messages=False)


def _assign(
    session: Session, *, conversation: Conversation, actor: User, assignee_id: int | None, expected: int | None
) -> None:
    """Give the conversation to ``assignee_id`` (None: nobody) if its assignee is still ``expected``."""
    assignee = None
    if assignee_id is not None:
        assignee = session.get(User, assignee_id)
        if assignee is None or not assignee.is_active:
            raise InvalidInput("assignee_id", f"no active user {assignee_id}")
    # Race: two agents assigning the same conversation at once, each having seen the same
    # assignee (often nobody), would both succeed and the first would never learn it lost.
    # The UPDATE applies only while the assignee is still the one the caller saw: on PostgreSQL
    # the second waits for the first's row lock, then re-checks the committed row and matches
    # nothing; on SQLite writers take turns, so the second finds the first's assignee. Either
    # way one wins and the other gets a Conflict.
    changed = session.execute(
        update(Conversation)
        .where(Conversation.id == conversation.id, Conversation.assignee_id.is_not_distinct_from(expected))
        .values(assignee_id=assignee_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        now_with = session.scalar(
            select(User.name).join(Conversation, Conversation.assignee_id == User.id)
            .where(Conversation.id == conversation.id)
        )  # fmt: skip
        raise Conflict(
            f"someone else changed the assignee of conversation {conversation.id} meanwhile "
            f"(now {now_with or 'nobody'}); nothing was changed"
        )
    _record(session, conversation, actor, "assigned", old_assignee_id=conversation.assignee_id,
            assignee_id=assignee_id, assignee_name=assignee.name if assignee else None)  # fmt: skip
    set_committed_value(conversation, "assignee_id", assignee_id)


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
