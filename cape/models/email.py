"""Attachments of messages, and the sync state of each polled IMAP mailbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cape.models.base import Base, BigId, CreatedMixin, IdMixin


class Attachment(IdMixin, CreatedMixin, Base):
    """A file that came with a message; the bytes live in the data directory, by content hash."""

    __tablename__ = "attachments"

    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    # Referenced from the HTML body as cid:<content_id> (inline images).
    content_id: Mapped[str | None] = mapped_column(String(998))
    is_inline: Mapped[bool] = mapped_column(default=False)
    # False when the file was over the size limit: it stays only in the raw source.
    is_stored: Mapped[bool] = mapped_column(default=True)


class MailboxState(Base):
    """Where polling of one IMAP mailbox stands; UIDs are only meaningful within one UIDVALIDITY."""

    __tablename__ = "mailbox_states"

    channel_id: Mapped[int] = mapped_column(BigId, ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigId)
    last_uid: Mapped[int] = mapped_column(BigId, default=0)
    last_polled_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
