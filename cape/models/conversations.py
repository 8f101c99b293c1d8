"""Conversations, their messages, tags, and the append-only activity log."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, query_expression, relationship

from cape.kit.clock import utcnow
from cape.models.base import Base, BigId, CreatedMixin, IdMixin, JsonType
from cape.models.channels import Channel
from cape.models.customers import Customer
from cape.models.users import Team, User, enum_column


class ConversationStatus(enum.StrEnum):
    open = "open"
    pending = "pending"
    snoozed = "snoozed"
    resolved = "resolved"


class Priority(enum.StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class Conversation(IdMixin, CreatedMixin, Base):
    __tablename__ = "conversations"
    # The inbox's views (all, mine, unassigned, a team's; each with or without a status) and the
    # customer's conversations, newest activity first, each read from an index in that order.
    # Ingest moves last_activity_at of every conversation it touches, so the views' indexes are
    # partial: a new, unassigned conversation without a team updates only the ones it appears in.
    # The unassigned views by status have two: PostgreSQL orders by the next column only after an
    # equality, not after IS NULL (ix_conversations_unassigned_status), and SQLite, with no
    # statistics, ties that index with ix_conversations_status and takes whichever was created
    # last; with assignee_id among its keys (ix_conversations_status_unassigned) it wins outright.
    __table_args__ = (
        Index(None, "last_activity_at", "id"),
        Index(None, "status", "last_activity_at", "id"),
        Index(None, "customer_id", "last_activity_at", "id"),
        Index(
            "ix_conversations_assigned", "assignee_id", "last_activity_at", "id",
            sqlite_where=text("assignee_id IS NOT NULL"), postgresql_where=text("assignee_id IS NOT NULL"),
        ),
        Index(
            "ix_conversations_unassigned", "last_activity_at", "id",
            sqlite_where=text("assignee_id IS NULL"), postgresql_where=text("assignee_id IS NULL"),
        ),
        Index(
            "ix_conversations_assigned_status", "assignee_id", "status", "last_activity_at", "id",
            sqlite_where=text("assignee_id IS NOT NULL"), postgresql_where=text("assignee_id IS NOT NULL"),
        ),
        Index(
            "ix_conversations_unassigned_status", "status", "last_activity_at", "id",
            sqlite_where=text("assignee_id IS NULL"), postgresql_where=text("assignee_id IS NULL"),
        ),
        Index(
            "ix_conversations_status_unassigned", "status", "assignee_id", "last_activity_at", "id",
            sqlite_where=text("assignee_id IS NULL"), postgresql_where=text("assignee_id IS NULL"),
        ),
        Index(
            "ix_conversations_team", "team_id", "last_activity_at", "id",
            sqlite_where=text("team_id IS NOT NULL"), postgresql_where=text("team_id IS NOT NULL"),
        ),
        Index(
            "ix_conversations_team_status", "team_id", "status", "last_activity_at", "id",
            sqlite_where=text("team_id IS NOT NULL"), postgresql_where=text("team_id IS NOT NULL"),
        ),
    )  # fmt: skip

    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id"))
    channel_id: Mapped[int] = mapped_column(BigId, ForeignKey("channels.id"))
    subject: Mapped[str | None] = mapped_column(String(998))
    status: Mapped[ConversationStatus] = mapped_column(
        enum_column(ConversationStatus, "conversation_status"), default=ConversationStatus.open
    )
    priority: Mapped[Priority] = mapped_column(enum_column(Priority, "priority"), default=Priority.normal)
    assignee_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    team_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("teams.id"))
    language: Mapped[str | None] = mapped_column(String(8))
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Since when the customer has been waiting for us; cleared by our reply.
    waiting_since: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    snoozed_until: Mapped[datetime | None]
    # Addresses the agent keeps in copy of replies; with the customer, the conversation's participants.
    cc_addresses: Mapped[list[str] | None] = mapped_column(JsonType)
    # The conversation a message referred to when it started this one (a reply by someone who is
    # not a participant there starts a conversation of its own, linked to it).
    linked_conversation_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("conversations.id"))
    # Where the customer asked replies to go by email (a chat visitor who left, offline): typed by
    # them, so an address for this conversation only, never an identity of another customer.
    reply_to: Mapped[str | None] = mapped_column(String(320))

    customer: Mapped[Customer] = relationship(lazy="raise")
    channel: Mapped[Channel] = relationship(lazy="raise")
    assignee: Mapped[User | None] = relationship(lazy="raise")
    team: Mapped[Team | None] = relationship(lazy="raise")
    tags: Mapped[list[ConversationTag]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="ConversationTag.tag"
    )
    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", lazy="raise", order_by="(Message.created_at, Message.id)"
    )
    # The start of the customer's latest message, where a query asks for it (the inbox); else None.
    preview: Mapped[str | None] = query_expression()


class ConversationTag(Base):
    __tablename__ = "conversation_tags"

    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class MessageDirection(enum.StrEnum):
    inbound = "inbound"
    outbound = "outbound"
    note = "note"


class AuthorType(enum.StrEnum):
    customer = "customer"
    user = "user"
    system = "system"


class DeliveryStatus(enum.StrEnum):
    queued = "queued"
    sent = "sent"  # handed over: the relay accepted it, the integration answered 2xx
    delivered = "delivered"  # the recipient's side confirmed it arrived
    failed = "failed"  # tried and refused, or given up on; an agent may try again
    undeliverable = "undeliverable"  # nothing can carry it (no address, no mailbox, no webhook)


class Message(IdMixin, CreatedMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        # Idempotent ingestion: a provider's id is unique per channel.
        UniqueConstraint("channel_id", "external_id"),
        Index(None, "conversation_id", "created_at", "id"),
        Index(None, "customer_id", "created_at"),
        # Replies waiting to be sent, for the scan of stalled sends; inbound messages skip it.
        Index(
            "ix_messages_queued", "created_at", "id",
            sqlite_where=text("delivery_status = 'queued'"), postgresql_where=text("delivery_status = 'queued'"),
        ),
    )  # fmt: skip

    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id"))
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id"))
    channel_id: Mapped[int] = mapped_column(BigId, ForeignKey("channels.id"))
    direction: Mapped[MessageDirection] = mapped_column(enum_column(MessageDirection, "message_direction"))
    author_type: Mapped[AuthorType] = mapped_column(enum_column(AuthorType, "author_type"))
    author_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    subject: Mapped[str | None] = mapped_column(String(998))
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(998))
    raw_source_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("raw_sources.id"))
    delivery_status: Mapped[DeliveryStatus | None] = mapped_column(enum_column(DeliveryStatus, "delivery_status"))
    delivery_error: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict] = mapped_column(JsonType, default=dict)

    conversation: Mapped[Conversation] = relationship(back_populates="messages", lazy="raise")
    channel: Mapped[Channel] = relationship(lazy="raise")
    author_user: Mapped[User | None] = relationship(lazy="raise")


class Activity(IdMixin, CreatedMixin, Base):
    """Append-only: who did what, when; written in the transaction of the change it records."""

    __tablename__ = "activities"
    __table_args__ = (
        Index(None, "conversation_id", "created_at", "id"),
        Index(None, "customer_id", "created_at", "id"),
    )

    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id"))
    conversation_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("conversations.id"))
    actor_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JsonType, default=dict)

    actor: Mapped[User | None] = relationship(lazy="raise")
