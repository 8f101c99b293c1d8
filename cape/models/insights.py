"""Insights about conversations: hero moments (a customer's thanks, linked to what the agent did)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cape.models.base import Base, BigId, CreatedMixin, IdMixin, JsonType
from cape.models.conversations import Conversation
from cape.models.customers import Customer
from cape.models.users import User


class HeroMoment(IdMixin, CreatedMixin, Base):
    """A customer thanked an agent (or a survey praised them), linked to what the agent did."""

    __tablename__ = "hero_moments"
    __table_args__ = (Index(None, "created_at", "id"), Index(None, "user_id", "created_at"))

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id"))
    conversation_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("conversations.id"))
    message_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("messages.id"))
    source: Mapped[str] = mapped_column(String(32))
    quote: Mapped[str] = mapped_column(Text)
    action_ids: Mapped[list[int]] = mapped_column(JsonType, default=list)
    recorded_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))

    user: Mapped[User] = relationship(lazy="raise", foreign_keys=[user_id])
    customer: Mapped[Customer] = relationship(lazy="raise")
    conversation: Mapped[Conversation | None] = relationship(lazy="raise")
