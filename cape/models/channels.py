"""Channels (configured entry points) and the raw source of everything that came in."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from cape.models.base import Base, BigId, CreatedMixin, IdMixin, JsonType
from cape.models.users import enum_column


class ChannelKind(enum.StrEnum):
    web = "web"
    api = "api"
    email = "email"
    chat = "chat"
    sms = "sms"
    whatsapp = "whatsapp"
    call = "call"
    review = "review"


class Channel(IdMixin, CreatedMixin, Base):
    __tablename__ = "channels"
    __table_args__ = (
        Index(
            "uq_channels_default_outbound", "is_default_outbound", unique=True,
            sqlite_where=text("is_default_outbound"), postgresql_where=text("is_default_outbound"),
        ),
    )  # fmt: skip

    # "web", "api", "email:support@example.com": one row per configured entry point.
    key: Mapped[str] = mapped_column(String(320), unique=True)
    kind: Mapped[ChannelKind] = mapped_column(enum_column(ChannelKind, "channel_kind"))
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(320))
    settings: Mapped[dict] = mapped_column(JsonType, default=dict)
    # Credentials encrypted with the app secret; never logged, never returned by the API.
    secrets_encrypted: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(default=True)
    # The mailbox that answers conversations which came in without one (contact form, API). At
    # most one: the partial unique index lets the database refuse a second.
    is_default_outbound: Mapped[bool] = mapped_column(default=False, server_default=false())


class RawStatus(enum.StrEnum):
    received = "received"
    processed = "processed"
    duplicate = "duplicate"
    failed = "failed"


class RawSource(IdMixin, Base):
    """Exactly what a channel handed us, stored before anything else is attempted."""

    __tablename__ = "raw_sources"
    __table_args__ = (Index(None, "status", "received_at"),)

    channel_id: Mapped[int] = mapped_column(BigId, ForeignKey("channels.id"))
    external_id: Mapped[str | None] = mapped_column(String(998))
    content_type: Mapped[str] = mapped_column(String(100))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime]
    status: Mapped[RawStatus] = mapped_column(enum_column(RawStatus, "raw_status"), default=RawStatus.received)
    error: Mapped[str | None] = mapped_column(Text)
