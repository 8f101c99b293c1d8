"""The chat channel's rules: widget settings, visitor tokens, identity verification, the visitor's view.

A visitor is known by a random visitor id in a token signed with the app secret; its customer's
Identity is ``chat_visitor`` with that id. What a visitor types about themselves (a name, an email
in the pre-chat) is kept as contact details only: only a valid identity hash (HMAC-SHA256 of the
email or external id with the channel's secret) joins the chat to a known customer's timeline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from cape import events
from cape.audit.service import record_audit
from cape.channels.base import InboundAttachment, InboundMessage, Sender
from cape.channels.email.service import attachments_by_message
from cape.config import SUPPORTED_LANGUAGES
from cape.kit.clock import utcnow
from cape.kit.crypto import decrypt_secrets, encrypt_secrets
from cape.kit.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from cape.models import (
    Activity,
    Attachment,
    Channel,
    ChannelKind,
    ChatVisitor,
    Conversation,
    DeliveryStatus,
    Identity,
    IdentityKind,
    Message,
    MessageDirection,
    User,
)
from cape.realtime import presence

TOKEN_SALT = "cape.chat.visitor"  # noqa: S105 - a purpose, not a secret
ATTACHMENT_SALT = "cape.chat.attachment"
# A visitor who comes back within this time finds their chat again (the token is renewed on each visit).
TOKEN_MAX_AGE_S = 180 * 24 * 3600
ATTACHMENT_URL_MAX_AGE_S = 30 * 24 * 3600
# The longest message a visitor may send, and the largest websocket frame the server reads.
MAX_BODY_CHARS = 8 * 1024
MAX_FRAME_BYTES = 16 * 1024
# Per connection: a burst of this many frames, refilled at this many per second.
RATE_BURST = 20
RATE_PER_S = 5.0
# A visitor with no open socket for this long is gone: replies go by email when they left one.
VISITOR_GONE_AFTER = timedelta(minutes=3)
# How often an open socket says the visitor is still there.
SEEN_EVERY_S = 30
MAX_CATCH_UP = 200

DEFAULT_UPLOAD_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_UPLOAD_TYPES = [
    "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain",
]  # fmt: skip
DEFAULT_GREETING = {
    "en": "Hi! How can we help?",
    "fr": "Bonjour ! Comment pouvons-nous vous aider ?",
    "da": "Hej! Hvordan kan vi hjælpe?",
}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_HOUR = re.compile(r"([01]\d|2[0-3]):[0-5]\d|24:00")
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")


def default_settings() -> dict:
    return {
        "colour": "#1f6f5c",
        "greeting": dict(DEFAULT_GREETING),
        "position": "right",
        "allowed_origins": [],
        "business_hours": {},
        "prechat": {"ask_name": False, "ask_email": False},
        "upload": {"max_bytes": DEFAULT_UPLOAD_MAX_BYTES, "types": list(DEFAULT_UPLOAD_TYPES)},
    }


def widget_settings(channel: Channel) -> dict:
    """The channel's settings, with defaults for what the admin left unset."""
    stored = channel.settings or {}
    merged = default_settings()
    for key, value in stored.items():
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


# -- channels ---------------------------------------------------------------------------------


def chat_channel(session: Session, *, key: str) -> Channel:
    """The active chat channel ``key`` (``chat:<slug>``); NotFound otherwise."""
    channel = session.scalar(select(Channel).where(Channel.key == key, Channel.kind == ChannelKind.chat))
    if channel is None or not channel.is_active:
        raise NotFound(f"no chat channel {key}")
    return channel


def list_chat_channels(session: Session) -> list[Channel]:
    return list(session.scalars(select(Channel).where(Channel.kind == ChannelKind.chat).order_by(Channel.id)))


def create_chat_channel(
    session: Session, *, name: str, slug: str, app_secret: str, actor: User | None = None
) -> tuple[Channel, str]:
    """A new chat widget ``chat:<slug>`` and its identity secret (returned once, stored encrypted)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("name", "a name of 1 to 200 characters is required")
    slug = slug.strip().lower()
    if not _SLUG.fullmatch(slug):
        raise InvalidInput("slug", "lower-case letters, digits and dashes")
    key = f"chat:{slug}"
    if session.scalar(select(Channel.id).where(Channel.key == key)) is not None:
        raise Conflict(f"a channel {key} exists already")
    secret = new_identity_secret()
    channel = Channel(
        key=key, kind=ChannelKind.chat, name=name, settings=default_settings(),
        secrets_encrypted=encrypt_secrets(app_secret, {"identity_secret": secret}),
    )  # fmt: skip
    session.add(channel)
    session.flush()
    record_audit(session, actor=actor, event="channel.created", subject_type="channel", subject_id=channel.id,
                 after={"key": key, "kind": "chat", "name": name})  # fmt: skip
    return channel, secret


def new_identity_secret() -> str:
    return secrets.token_hex(32)


def regenerate_identity_secret(session: Session, *, channel: Channel, app_secret: str, actor: User) -> str:
    """A new identity secret for the channel (the old one stops verifying at once); shown once."""
    secret = new_identity_secret()
    stored = decrypt_secrets(app_secret, channel.secrets_encrypted)
    channel.secrets_encrypted = encrypt_secrets(app_secret, {**stored, "identity_secret": secret})
    record_audit(session, actor=actor, event="channel.secret_regenerated", subject_type="channel",
                 subject_id=channel.id, after={"key": channel.key})  # fmt: skip
    return secret


def identity_secret(channel: Channel, app_secret: str) -> str | None:
    return decrypt_secrets(app_secret, channel.secrets_encrypted).get("identity_secret") or None


def identity_hash(secret: str, value: str) -> str:
    """What the site computes for a signed-in customer: hex HMAC-SHA256 of the email or id."""
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SettingsForm:
    colour: str = "#1f6f5c"
    greeting_en: str = ""
    greeting_fr: str = ""
    greeting_da: str = ""
    position: str = "right"
    allowed_origins: str = ""
    business_hours: str = ""
    ask_name: bool = False
    ask_email: bool = False
    upload_max_mb: int = 10


def settings_errors(form: SettingsForm) -> tuple[dict, dict[str, str]]:
    """The settings a form gives, and what is wrong with it by field (a code per field)."""
    errors: dict[str, str] = {}
    if not _COLOUR.fullmatch(form.colour.strip()):
        errors["colour"] = "colour"
    if form.position not in ("right", "left"):
        errors["position"] = "position"
    origins = [o.strip().rstrip("/") for o in re.split(r"[\s,]+", form.allowed_origins) if o.strip()]
    if any(not re.fullmatch(r"https?://[^/\s]+", o) for o in origins):
        errors["allowed_origins"] = "origins"
    hours = parse_business_hours(form.business_hours)
    if hours is None:
        errors["business_hours"] = "hours"
    greeting = {"en": form.greeting_en.strip(), "fr": form.greeting_fr.strip(), "da": form.greeting_da.strip()}
    for language, text in greeting.items():
        if len(text) > 300:
            errors[f"greeting_{language}"] = "too_long"
    if not 1 <= form.upload_max_mb <= 50:
        errors["upload_max_mb"] = "upload"
    values = {
        "colour": form.colour.strip().lower(),
        "greeting": {k: v or DEFAULT_GREETING[k] for k, v in greeting.items()},
        "position": form.position,
        "allowed_origins": origins,
        "business_hours": hours or {},
        "prechat": {"ask_name": form.ask_name, "ask_email": form.ask_email},
        "upload": {"max_bytes": form.upload_max_mb * 1024 * 1024, "types": list(DEFAULT_UPLOAD_TYPES)},
    }
    return values, errors


def parse_business_hours(text: str) -> dict[str, list[str]] | None:
    """``mon-fri 09:00-17:00, sat 10:00-14:00`` as {weekday: [open, close]}; None when malformed."""
    hours: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in re.split(r"[,;\n]+", text.lower()))):
        match = re.fullmatch(r"([a-z]{3})(?:\s*-\s*([a-z]{3}))?\s+(\S+)\s*-\s*(\S+)", part)
        if not match or match.group(1) not in WEEKDAYS or (match.group(2) and match.group(2) not in WEEKDAYS):
            return None
        first, last, opens, closes = match.groups()
        if not _HOUR.fullmatch(opens) or not _HOUR.fullmatch(closes) or opens >= closes:
            return None
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if end < start:
            return None
        for day in WEEKDAYS[start : end + 1]:
            hours[day] = [opens, closes]
    return hours


def format_business_hours(hours: dict[str, list[str]]) -> str:
    return ", ".join(f"{day} {hours[day][0]}-{hours[day][1]}" for day in WEEKDAYS if day in hours)


def update_widget_settings(session: Session, *, channel: Channel, values: dict, actor: User) -> Channel:
    """Store the widget's settings (an admin's change, audited)."""
    before = {k: (channel.settings or {}).get(k) for k in values}
    channel.settings = {**(channel.settings or {}), **values}
    record_audit(session, actor=actor, event="channel.updated", subject_type="channel", subject_id=channel.id,
                 before=before, after=values)  # fmt: skip
    return channel


# -- online -----------------------------------------------------------------------------------


def within_business_hours(hours: dict, *, time_zone: str, now: datetime | None = None) -> bool:
    """Whether ``now`` falls within the hours (in the installation's time zone); no hours: always."""
    if not hours:
        return True
    local = (now or utcnow()).astimezone(ZoneInfo(time_zone))
    day = hours.get(WEEKDAYS[local.weekday()])
    if not day:
        return False
    return day[0] <= local.strftime("%H:%M") < day[1]


def is_online(session: Session, *, channel: Channel, time_zone: str, now: datetime | None = None) -> bool:
    """Someone can answer now: within business hours and an agent online."""
    hours = widget_settings(channel)["business_hours"]
    return within_business_hours(hours, time_zone=time_zone, now=now) and presence.available_agents(session) > 0


def widget_config(session: Session, *, channel: Channel, language: str | None, time_zone: str) -> dict:
    """What the widget needs before the visitor writes (``GET /widget/api/config``)."""
    values = widget_settings(channel)
    language = language if language in SUPPORTED_LANGUAGES else "en"
    return {
        "channel": channel.key,
        "name": channel.name,
        "colour": values["colour"],
        "greeting": values["greeting"].get(language) or DEFAULT_GREETING[language],
        "position": values["position"],
        "online": is_online(session, channel=channel, time_zone=time_zone),
        "prechat": values["prechat"],
        "upload": {"max_bytes": values["upload"]["max_bytes"], "types": values["upload"]["types"]},
    }


# -- visitor tokens ---------------------------------------------------------------------------


def _serializer(app_secret: str, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(app_secret, salt=salt)


def sign_token(app_secret: str, *, channel_id: int, visitor_id: str, language: str | None = None) -> str:
    data: dict = {"c": channel_id, "v": visitor_id}
    if language:
        data["l"] = language
    return _serializer(app_secret, TOKEN_SALT).dumps(data)


def read_token(app_secret: str, token: str | None) -> tuple[int, str, str | None] | None:
    """(channel id, visitor id, language) of a valid token; None when it is missing, tampered with or expired."""
    if not token:
        return None
    try:
        data = _serializer(app_secret, TOKEN_SALT).loads(token, max_age=TOKEN_MAX_AGE_S)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("c"), int) or not isinstance(data.get("v"), str):
        return None
    language = data.get("l") if data.get("l") in SUPPORTED_LANGUAGES else None
    return data["c"], data["v"], language


def visitor_for_token(session: Session, *, token: str | None, app_secret: str, create: bool = False) -> ChatVisitor:
    """The visitor a token names; NotAuthenticated when it is not valid.

    A visitor who has not written yet has no row (a page view writes nothing): it is then a
    transient ``ChatVisitor`` (no id), made a row with ``create`` or by ``visitor_row``.
    """
    found = read_token(app_secret, token)
    if found is None:
        raise NotAuthenticated("a valid visitor token is required")
    channel_id, visitor_id, language = found
    if create:
        return visitor_row(session, channel_id=channel_id, visitor_id=visitor_id, language=language)
    visitor = session.scalar(select(ChatVisitor).where(ChatVisitor.visitor_id == visitor_id))
    if visitor is None:
        return ChatVisitor(channel_id=channel_id, visitor_id=visitor_id, language=language)
    if visitor.channel_id != channel_id:
        raise NotAuthenticated("this visitor token is not known")
    return visitor


def visitor_row(session: Session, *, channel_id: int, visitor_id: str, language: str | None = None) -> ChatVisitor:
    """The visitor's row, made when it first writes (two tabs at once: one makes it, the other finds it)."""
    visitor = session.scalar(select(ChatVisitor).where(ChatVisitor.visitor_id == visitor_id))
    if visitor is None:
        try:
            with session.begin_nested():
                visitor = ChatVisitor(channel_id=channel_id, visitor_id=visitor_id, language=language)
                session.add(visitor)
                session.flush()
        except IntegrityError:
            visitor = session.scalars(select(ChatVisitor).where(ChatVisitor.visitor_id == visitor_id)).one()
    if visitor.channel_id != channel_id:
        raise NotAuthenticated("this visitor token is not known")
    return visitor


@dataclass(frozen=True)
class IdentityClaim:
    """What a site vouches for, with the hash that proves it."""

    hash: str
    email: str | None = None
    id: str | None = None
    name: str | None = None


@dataclass
class StartedSession:
    token: str
    visitor: ChatVisitor
    online: bool


def start_session(
    session: Session,
    *,
    channel: Channel,
    token: str | None,
    app_secret: str,
    time_zone: str,
    identity: IdentityClaim | None = None,
    name: str | None = None,
    email: str | None = None,
    language: str | None = None,
) -> StartedSession:
    """The visitor behind ``token`` (a new one when it is invalid, expired or of another channel).

    A valid identity hash joins the visitor to the known customer (by email identity, or by the
    external id an earlier verified visitor had); a wrong one is refused. Name and email are contact
    details only.
    """
    verified_email, external_id, known_customer_id = _verify(session, channel=channel, claim=identity,
                                                             app_secret=app_secret)  # fmt: skip
    found = read_token(app_secret, token)
    visitor_id = found[1] if found is not None and found[0] == channel.id else None
    language = language if language in SUPPORTED_LANGUAGES else (found[2] if found else None)
    visitor = session.scalar(select(ChatVisitor).where(ChatVisitor.visitor_id == visitor_id)) if visitor_id else None
    if visitor is not None and visitor.channel_id != channel.id:
        visitor, visitor_id = None, None
    if visitor is not None and known_customer_id is not None and visitor.customer_id not in (None, known_customer_id):
        # The browser's earlier anonymous chat belongs to someone else's customer record: the
        # signed-in customer gets a visitor of their own, and that history stays where it is.
        visitor, visitor_id = None, None
    visitor_id = visitor_id or secrets.token_urlsafe(24)
    contact_name = ((identity.name if identity and identity.name else name) or "").strip()[:200]
    address = (email or "").strip().lower()
    if address and (not _EMAIL.fullmatch(address) or len(address) > 320):
        raise InvalidInput("email", "not an email address")
    if visitor is None and (verified_email or external_id or contact_name or address):
        visitor = visitor_row(session, channel_id=channel.id, visitor_id=visitor_id, language=language)
    if visitor is not None:  # else nothing is written: a page view is no visitor yet
        if verified_email or external_id:
            visitor.verified_email = verified_email or visitor.verified_email
            visitor.external_id = external_id or visitor.external_id
        if known_customer_id is not None and visitor.customer_id is None:
            visitor.customer_id = known_customer_id
            visitor.conversation_id = visitor.conversation_id or _latest_chat_conversation(
                session, channel=channel, customer_id=known_customer_id
            )
        visitor.name = contact_name or visitor.name
        visitor.email = address or visitor.email
        visitor.language = language or visitor.language
        session.flush()
        if visitor.customer_id is not None:
            _ensure_visitor_identity(session, visitor=visitor)
    else:
        visitor = ChatVisitor(channel_id=channel.id, visitor_id=visitor_id, language=language)
    return StartedSession(
        token=sign_token(app_secret, channel_id=channel.id, visitor_id=visitor_id, language=language),
        visitor=visitor,
        online=is_online(session, channel=channel, time_zone=time_zone),
    )


def _verify(
    session: Session, *, channel: Channel, claim: IdentityClaim | None, app_secret: str
) -> tuple[str | None, str | None, int | None]:
    """(verified email, verified external id, known customer id) of a claim; InvalidInput when its hash is wrong."""
    if claim is None:
        return None, None, None
    secret = identity_secret(channel, app_secret)
    value = (claim.email or "").strip().lower() if claim.email else (claim.id or "").strip()
    if not secret or not value or not hmac.compare_digest(identity_hash(secret, value), (claim.hash or "").lower()):
        raise InvalidInput("identity", "the identity hash does not match")
    if claim.email:
        if not _EMAIL.fullmatch(value):
            raise InvalidInput("identity", "not an email address")
        customer_id = session.scalar(
            select(Identity.customer_id).where(Identity.kind == IdentityKind.email, Identity.value == value)
        )
        return value, (claim.id or "").strip()[:200] or None, customer_id
    customer_id = session.scalar(
        select(ChatVisitor.customer_id)
        .where(
            ChatVisitor.channel_id == channel.id, ChatVisitor.external_id == value, ChatVisitor.customer_id.is_not(None)
        )
        .order_by(ChatVisitor.id.desc())
        .limit(1)
    )
    return None, value[:200], customer_id


def _latest_chat_conversation(session: Session, *, channel: Channel, customer_id: int) -> int | None:
    return session.scalar(
        select(Conversation.id)
        .where(Conversation.customer_id == customer_id, Conversation.channel_id == channel.id)
        .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
        .limit(1)
    )


def _ensure_visitor_identity(session: Session, *, visitor: ChatVisitor) -> None:
    """The customer's ``chat_visitor`` identity for this visitor, so ingest files on that customer."""
    exists = session.scalar(
        select(Identity.id).where(Identity.kind == IdentityKind.chat_visitor, Identity.value == visitor.visitor_id)
    )
    if exists is None:
        # Suppressed: the visitor's first message filed it meanwhile.
        with suppress(IntegrityError), session.begin_nested():
            session.add(Identity(customer_id=visitor.customer_id, kind=IdentityKind.chat_visitor,
                                 value=visitor.visitor_id))  # fmt: skip


# -- the visitor's messages -------------------------------------------------------------------


def inbound_text(
    *, channel: Channel, visitor: ChatVisitor, client_id: str, body: str, raw: bytes, conversation_id: int | None
) -> InboundMessage:
    """The visitor's message as the ingest pipeline takes it (idempotent on visitor and client id)."""
    body = body.strip()
    if not body:
        raise InvalidInput("body", "must not be empty")
    if len(body) > MAX_BODY_CHARS:
        raise InvalidInput("body", f"at most {MAX_BODY_CHARS} characters")
    return InboundMessage(
        channel=channel, sender=_sender(visitor), body_text=body, raw=raw, raw_content_type="application/json",
        external_id=external_id(visitor, client_id), conversation_id=conversation_id,
        meta=_meta(visitor, client_id), language=visitor.language,
    )  # fmt: skip


def inbound_upload(
    *,
    channel: Channel,
    visitor: ChatVisitor,
    client_id: str,
    filename: str,
    content_type: str,
    content: bytes,
    sha256: str,
    conversation_id: int | None,
) -> InboundMessage:
    """An uploaded file as a message of its own; the raw source is the file as it came."""
    attachment = InboundAttachment(filename=filename, content_type=content_type, size=len(content), sha256=sha256)
    return InboundMessage(
        channel=channel, sender=_sender(visitor), body_text="", raw=content, raw_content_type=content_type,
        external_id=external_id(visitor, client_id), conversation_id=conversation_id,
        meta={**_meta(visitor, client_id), "filename": filename}, language=visitor.language, attachments=[attachment],
    )  # fmt: skip


def check_upload(channel: Channel, *, content_type: str, size: int) -> str | None:
    """Why a file is refused ("too_large", "unsupported_type"), or None."""
    limits = widget_settings(channel)["upload"]
    if size > int(limits["max_bytes"]):
        return "too_large"
    if content_type not in limits["types"]:
        return "unsupported_type"
    return None


def external_id(visitor: ChatVisitor, client_id: str) -> str:
    return f"{visitor.visitor_id}:{client_id}"


def valid_client_id(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise InvalidInput("client_id", "1 to 64 letters, digits, dashes or underscores")
    return value


def _sender(visitor: ChatVisitor) -> Sender:
    # Only what was proven joins a customer: a typed email is contact detail, never an identity.
    return Sender(chat_visitor=visitor.visitor_id, email=visitor.verified_email, name=visitor.name)


def _meta(visitor: ChatVisitor, client_id: str) -> dict:
    meta: dict = {"client_id": client_id, "chat_visitor": visitor.visitor_id}
    if visitor.email:
        meta["contact_email"] = visitor.email  # unverified, for agents to read
    if visitor.verified_email or visitor.external_id:
        meta["verified"] = True
    return meta


def conversation_for_visitor(session: Session, *, visitor: ChatVisitor) -> int | None:
    """The conversation the visitor's next message continues (None: a new one)."""
    if visitor.conversation_id is not None:
        return visitor.conversation_id
    if visitor.customer_id is None:
        customer_id = session.scalar(
            select(Identity.customer_id).where(
                Identity.kind == IdentityKind.chat_visitor, Identity.value == visitor.visitor_id
            )
        )
        if customer_id is None:
            return None
    else:
        customer_id = visitor.customer_id
    channel = session.get_one(Channel, visitor.channel_id)
    return _latest_chat_conversation(session, channel=channel, customer_id=customer_id)


def note_filed(session: Session, *, visitor_id: str, customer_id: int, conversation_id: int) -> None:
    """After ingest: remember the visitor's customer and conversation (and where replies go, when
    the visitor asked for email before writing)."""
    visitor = session.scalars(select(ChatVisitor).where(ChatVisitor.visitor_id == visitor_id)).one()
    if visitor.conversation_id == conversation_id and visitor.customer_id == customer_id:
        return
    visitor.customer_id, visitor.conversation_id = customer_id, conversation_id
    conversation = session.get_one(Conversation, conversation_id)
    if visitor.email and conversation.reply_to is None:
        conversation.reply_to = visitor.email  # the pre-chat's address: where replies go once the visitor left
    if visitor.replies_by_email and visitor.email:
        continue_by_email(session, visitor=visitor, email=visitor.email)


def visitor_messages(session: Session, *, visitor: ChatVisitor, after: int = 0) -> list[Message]:
    """The visitor's conversation as they may read it (never internal notes), oldest first."""
    if visitor.conversation_id is None:
        return []
    query = (
        select(Message)
        .where(
            Message.conversation_id == visitor.conversation_id,
            Message.direction.in_([MessageDirection.inbound, MessageDirection.outbound]),
            Message.id > after,
        )
        .options(joinedload(Message.author_user))
        .order_by(Message.id.desc())
        .limit(MAX_CATCH_UP)
    )
    return list(session.scalars(query))[::-1]


def public_messages(session: Session, *, messages: list[Message], app_secret: str) -> list[dict]:
    """Messages as the widget shows them (``Msg``)."""
    attachments = attachments_by_message(session, message_ids=[m.id for m in messages])
    return [
        message_payload(m, author=m.author_user, attachments=attachments.get(m.id, []), app_secret=app_secret)
        for m in messages
    ]


def message_payload(message: Message, *, author: User | None, attachments: list[Attachment], app_secret: str) -> dict:
    outbound = message.direction is MessageDirection.outbound
    return {
        "id": message.id,
        "client_id": (message.meta or {}).get("client_id"),
        "direction": "outbound" if outbound else "inbound",
        "body": message.body_text,
        "created_at": message.created_at.isoformat(),
        "author": agent_payload(author) if outbound else None,
        "attachments": [
            {"filename": a.filename, "size": a.size, "url": attachment_url(app_secret, a.id)}
            for a in attachments
            if a.is_stored
        ],
    }


def agent_payload(user: User | None) -> dict | None:
    if user is None:
        return None
    # The first name is what a visitor reads in the widget.
    return {"name": user.name.split(" ")[0] if user.name else "", "avatar_url": None}


def conversation_agent(session: Session, *, conversation_id: int | None) -> dict | None:
    """The agent the visitor is talking to: the assignee, else whoever answered last."""
    if conversation_id is None:
        return None
    conversation = session.get(Conversation, conversation_id)
    user_id = conversation.assignee_id if conversation else None
    if user_id is None:
        user_id = session.scalar(
            select(Message.author_user_id)
            .where(Message.conversation_id == conversation_id, Message.direction == MessageDirection.outbound)
            .order_by(Message.id.desc())
            .limit(1)
        )
    return agent_payload(session.get(User, user_id)) if user_id else None


def attachment_url(app_secret: str, attachment_id: int) -> str:
    return "/widget/api/files/" + _serializer(app_secret, ATTACHMENT_SALT).dumps(attachment_id)


def attachment_for_url(session: Session, *, signed: str, app_secret: str) -> Attachment:
    try:
        attachment_id = _serializer(app_secret, ATTACHMENT_SALT).loads(signed, max_age=ATTACHMENT_URL_MAX_AGE_S)
    except BadSignature as exc:
        raise NotFound("no such file") from exc
    attachment = session.get(Attachment, attachment_id) if isinstance(attachment_id, int) else None
    if attachment is None:
        raise NotFound("no such file")
    return attachment


# -- receipts, presence, email ----------------------------------------------------------------


def mark_seen(session: Session, *, visitor: ChatVisitor, message_id: int) -> list[int]:
    """The visitor saw the agent's replies up to ``message_id``: those sent are now delivered."""
    if visitor.conversation_id is None:
        return []
    ids = list(
        session.scalars(
            select(Message.id).where(
                Message.conversation_id == visitor.conversation_id,
                Message.direction == MessageDirection.outbound,
                Message.delivery_status == DeliveryStatus.sent,
                Message.channel_id == visitor.channel_id,
                Message.id <= message_id,
            )
        )
    )
    if ids:
        session.execute(update(Message).where(Message.id.in_(ids)).values(delivery_status=DeliveryStatus.delivered))
        for id_ in ids:
            events.emit(session, "message.delivery_changed", conversation_id=visitor.conversation_id,
                        message_id=id_, delivery_status=DeliveryStatus.delivered.value)  # fmt: skip
    return ids


def touch_visitor(session: Session, *, visitor_id: str) -> None:
    """A socket of this visitor is open now (a visitor who has not written yet has nothing to note)."""
    session.execute(update(ChatVisitor).where(ChatVisitor.visitor_id == visitor_id).values(last_seen_at=utcnow()))


def visitor_gone(session: Session, *, conversation_id: int, now: datetime | None = None) -> bool:
    """No socket of the conversation's visitors was seen lately."""
    seen = session.scalar(
        select(func.max(ChatVisitor.last_seen_at)).where(ChatVisitor.conversation_id == conversation_id)
    )
    return seen is None or seen < (now or utcnow()) - VISITOR_GONE_AFTER


def continue_by_email(session: Session, *, visitor: ChatVisitor, email: str) -> Conversation | None:
    """The visitor wants replies by email: the address becomes the customer's identity when nobody
    else has it, and the conversation's replies go to it from now on."""
    address = (email or "").strip().lower()
    if not _EMAIL.fullmatch(address) or len(address) > 320:
        raise InvalidInput("email", "not an email address")
    visitor.email = address
    visitor.replies_by_email = True
    conversation = session.get(Conversation, visitor.conversation_id) if visitor.conversation_id else None
    if visitor.customer_id is not None:
        owner = session.scalar(
            select(Identity.customer_id).where(Identity.kind == IdentityKind.email, Identity.value == address)
        )
        if owner is None:
            session.add(Identity(customer_id=visitor.customer_id, kind=IdentityKind.email, value=address))
    if conversation is not None and conversation.reply_to != address:
        # Typed, not proven: an address for this conversation only, never a merge into whoever owns it.
        conversation.reply_to = address
        session.add(_activity(conversation, "reply_by_email", address=address))
    session.flush()
    return conversation


def _activity(conversation: Conversation, kind: str, **data) -> Activity:
    return Activity(customer_id=conversation.customer_id, conversation_id=conversation.id, kind=kind, data=data)


def raw_frame(frame: dict) -> bytes:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode()
