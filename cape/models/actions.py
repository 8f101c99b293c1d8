"""Resolution actions, the authority that lets agents take them, the spend counters, the audit log and the ledger."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cape.kit.clock import utcnow
from cape.models.base import Base, BigId, CreatedMixin, IdMixin, JsonType
from cape.models.conversations import Conversation
from cape.models.customers import Customer, Order
from cape.models.users import Role, User, enum_column


class ActionType(enum.StrEnum):
    refund = "refund"
    return_ = "return"
    store_credit = "store_credit"
    discount_code = "discount_code"
    reship = "reship"
    service = "service"
    goodwill = "goodwill"


class ActionStatus(enum.StrEnum):
    pending_approval = "pending_approval"
    executed = "executed"
    declined = "declined"
    failed = "failed"


class FulfilmentStatus(enum.StrEnum):
    """How far the connector (ledger, store webhook) has carried out an executed action."""

    queued = "queued"
    done = "done"
    failed = "failed"


class Action(IdMixin, CreatedMixin, Base):
    """One resolution for one customer. Never deleted: a mistake is undone by a counter-action."""

    __tablename__ = "actions"
    __table_args__ = (
        Index(None, "status", "created_at", "id"),
        Index(None, "customer_id", "created_at"),
        Index(None, "conversation_id", "created_at"),
        Index(None, "requested_by_id", "created_at"),
        Index(None, "fulfilment_status", "executed_at"),  # the scan of stale deliveries to the store
        # One live counter-action per action: two people reversing the same mistake at once cannot
        # both win. A counter-action the store refused (failed) does not count, so it can be retried.
        Index(
            "uq_actions_reverses_id",
            "reverses_id",
            unique=True,
            sqlite_where=text("status != 'failed'"),
            postgresql_where=text("status != 'failed'"),
        ),
        CheckConstraint("length(currency) = 3", name="currency_code"),
    )

    type: Mapped[ActionType] = mapped_column(enum_column(ActionType, "action_type"))
    status: Mapped[ActionStatus] = mapped_column(enum_column(ActionStatus, "action_status"))
    # Integer minor units. A counter-action carries the negated amount of what it reverses.
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    items: Mapped[list[dict]] = mapped_column(JsonType, default=list)
    details: Mapped[dict] = mapped_column(JsonType, default=dict)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id"))
    conversation_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("conversations.id"))
    order_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("orders.id"))
    requested_by_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    # Why the request exceeded the requester's authority (empty when it was within it).
    over_authority: Mapped[list[str]] = mapped_column(JsonType, default=list)
    decided_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(Text)
    executed_at: Mapped[datetime | None]
    # True when it was executed on the requester's own authority, and so counts against their budget.
    within_authority: Mapped[bool] = mapped_column(default=False)
    reverses_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("actions.id"))
    connector: Mapped[str | None] = mapped_column(String(64))
    fulfilment_status: Mapped[FulfilmentStatus | None] = mapped_column(
        enum_column(FulfilmentStatus, "fulfilment_status")
    )
    fulfilment_reference: Mapped[str | None] = mapped_column(String(200))
    fulfilment_error: Mapped[str | None] = mapped_column(Text)
    fulfilment_attempts: Mapped[int] = mapped_column(default=0)

    customer: Mapped[Customer] = relationship(lazy="raise")
    conversation: Mapped[Conversation | None] = relationship(lazy="raise")
    order: Mapped[Order | None] = relationship(lazy="raise")
    requested_by: Mapped[User] = relationship(lazy="raise", foreign_keys=[requested_by_id])
    decided_by: Mapped[User | None] = relationship(lazy="raise", foreign_keys=[decided_by_id])


class AuthorityPolicy(IdMixin, CreatedMixin, Base):
    """Limits for a role, or for one user (which replaces the role's). Amounts in minor units."""

    __tablename__ = "authority_policies"
    __table_args__ = (
        UniqueConstraint("role"),
        UniqueConstraint("user_id"),
        CheckConstraint("(role IS NULL) <> (user_id IS NULL)", name="role_or_user"),
    )

    role: Mapped[Role | None] = mapped_column(enum_column(Role, "authority_role"))
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    currency: Mapped[str] = mapped_column(String(3))
    # {"refund": 50000, ...}: null means no cap for that type; a missing type means 0 (always ask).
    per_action: Mapped[dict] = mapped_column(JsonType, default=dict)
    per_customer_30d: Mapped[int | None] = mapped_column(BigInteger)
    daily_budget: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))


class SpendCounter(Base):
    """What an agent spent on their own authority on one UTC day, in one currency.

    The row is the lock: budget checks take it ``FOR UPDATE`` so concurrent spending serialises.
    """

    __tablename__ = "spend_counters"

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    spent: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditEntry(IdMixin, CreatedMixin, Base):
    """Append-only (the database refuses updates and deletes): who did what, when, why.

    Written through ``cape.audit.service.record_audit`` (and the actions service for actions).
    """

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index(None, "created_at", "id"),
        Index(None, "action_id"),
        Index(None, "subject_type", "subject_id", "id"),
    )

    actor_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    event: Mapped[str] = mapped_column(String(64))
    # What changed, when it is not an action: "user", "team", "channel" or "customer", and its id.
    # No foreign key: subjects of several kinds share the column.
    subject_type: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[int | None] = mapped_column(BigId)
    action_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("actions.id"))
    customer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("customers.id"))
    conversation_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("conversations.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict | None] = mapped_column(JsonType)
    after: Mapped[dict | None] = mapped_column(JsonType)

    actor: Mapped[User | None] = relationship(lazy="raise")


class LedgerEntry(IdMixin, CreatedMixin, Base):
    """The built-in connector's book: refunds, credits, codes and gestures, for finance."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index(None, "customer_id", "created_at"), UniqueConstraint("action_id"))

    action_id: Mapped[int] = mapped_column(BigId, ForeignKey("actions.id"))
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    code: Mapped[str | None] = mapped_column(String(64), unique=True)
    memo: Mapped[str | None] = mapped_column(Text)
