"""The normalised inbound message every channel adapter produces, and channel lookup."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cape.models import Channel, ChannelKind

_BUILTIN_CHANNELS = "cape.builtin_channels"
_BUILTIN_NAMES = {ChannelKind.web: "Web form", ChannelKind.api: "API"}


@dataclass
class Sender:
    email: str | None = None
    phone: str | None = None
    name: str | None = None
    chat_visitor: str | None = None
    review_handle: str | None = None


@dataclass
class InboundAttachment:
    """A file that came with a message, already saved in the data directory under its sha256."""

    filename: str
    content_type: str
    size: int
    sha256: str
    content_id: str | None = None
    is_inline: bool = False
    # False when over the size limit: only the raw source holds it.
    is_stored: bool = True


@dataclass
class InboundMessage:
    """What a channel hands to ``conversations.ingest``: provider details already stripped."""

    channel: Channel
    sender: Sender
    body_text: str
    raw: bytes
    raw_content_type: str
    subject: str | None = None
    body_html: str | None = None
    external_id: str | None = None
    conversation_id: int | None = None
    # Provider threading hints (e.g. email In-Reply-To / References), most recent first.
    thread_refs: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    # The language the customer wrote in, when the channel knows it (the contact form's page).
    language: str | None = None
    attachments: list[InboundAttachment] = field(default_factory=list)


def builtin_channel(session: Session, *, kind: ChannelKind) -> Channel:
    """The single built-in channel of a kind (web form, API), created on first use."""
    key = kind.value
    known = session.info.setdefault(_BUILTIN_CHANNELS, {})
    if key in known:
        return known[key]
    channel = session.scalar(select(Channel).where(Channel.key == key))
    if channel is not None:
        # Built-in channels are never removed: one lookup serves the session's whole life.
        known[key] = channel
        return channel
    channel = Channel(key=key, kind=kind, name=_BUILTIN_NAMES.get(kind, kind.value.title()))
    try:
        with session.begin_nested():
            session.add(channel)
            session.flush()
    except IntegrityError:  # created concurrently by another request
        channel = session.scalars(select(Channel).where(Channel.key == key)).one()
    return channel
