"""Customers, the identities by which they reach us on each channel, and their orders."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cape.models.base import Base, BigId, CreatedMixin, IdMixin, JsonType
from cape.models.users import enum_column


class IdentityKind(enum.StrEnum):
    email = "email"
    phone = "phone"
    chat_visitor = "chat_visitor"
    review_handle = "review_handle"


class Customer(IdMixin, CreatedMixin, Base):
    __tablename__ = "customers"

    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(8))
    notes: Mapped[str | None] = mapped_column(Text)
    # A merged customer is kept (its id may be in links elsewhere) and points at the survivor.
    merged_into_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("customers.id"))
    merged_at: Mapped[datetime | None]

    identities: Mapped[list[Identity]] = relationship(back_populates="customer", lazy="raise", order_by="Identity.id")
    orders: Mapped[list[Order]] = relationship(back_populates="customer", lazy="raise", order_by="Order.id")


class Identity(IdMixin, CreatedMixin, Base):
    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id"), index=True)
    kind: Mapped[IdentityKind] = mapped_column(enum_column(IdentityKind, "identity_kind"))
    value: Mapped[str] = mapped_column(String(320))
    # Set when a delivery to this address failed (bounce), with the reason.
    failing_reason: Mapped[str | None] = mapped_column(String(500))

    customer: Mapped[Customer] = relationship(back_populates="identities", lazy="raise")


class Order(IdMixin, CreatedMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("number"), Index(None, "customer_id", "placed_at"))

    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id"))
    number: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default="placed")
    currency: Mapped[str] = mapped_column(String(3))
    total_amount: Mapped[int]
    items: Mapped[list[dict]] = mapped_column(JsonType, default=list)
    placed_at: Mapped[datetime]
    # Delivery as the shop reports it; all optional (a shop may send none of it).
    carrier: Mapped[str | None] = mapped_column(String(100))
    tracking_number: Mapped[str | None] = mapped_column(String(100))
    delivered_at: Mapped[datetime | None]

    customer: Mapped[Customer] = relationship(back_populates="orders", lazy="raise")

    @property
    def delivery(self) -> dict | None:
        """What the shop said about delivery, or None when it said nothing."""
        if not (self.carrier or self.tracking_number or self.delivered_at):
            return None
        return {"carrier": self.carrier, "tracking_number": self.tracking_number, "delivered_at": self.delivered_at}
