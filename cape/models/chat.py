"""Chat visitors: who is behind a widget's visitor token, and where their chat stands."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column

from cape.models.base import Base, BigId, CreatedMixin, IdMixin


class ChatVisitor(IdMixin, CreatedMixin, Base):
    """One browser's visitor id on one chat channel (the Identity ``chat_visitor`` once it has written).

    ``email``/``name`` are what the visitor typed in the pre-chat: contact details only, never a
    proof of who they are. ``verified_email``/``external_id`` come from a valid identity hash.
    """

    __tablename__ = "chat_visitors"
    __table_args__ = (Index(None, "channel_id", "external_id"),)

    channel_id: Mapped[int] = mapped_column(BigId, ForeignKey("channels.id"))
    visitor_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("customers.id"))
    conversation_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("conversations.id"))
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    verified_email: Mapped[str | None] = mapped_column(String(320))
    external_id: Mapped[str | None] = mapped_column(String(200))
    # The visitor asked to continue by email (offline): replies go to ``email``.
    replies_by_email: Mapped[bool] = mapped_column(default=False, server_default=false())
    language: Mapped[str | None] = mapped_column(String(8))
    # When a socket of this visitor was last open: replies go by email once it is long gone.
    last_seen_at: Mapped[datetime | None]
