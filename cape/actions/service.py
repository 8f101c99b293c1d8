"""Resolution actions: take one within authority, request approval above it, decide, reverse, audit.

Every change writes an Activity on the conversation and an AuditEntry in the same transaction.
Nothing is deleted; a mistake is undone by a counter-action (``reverse_action``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from babel.numbers import is_currency
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, selectinload

from cape import events, jobs
from cape.actions import connectors, policy
from cape.actions.connectors import Outcome
from cape.kit.clock import utcnow
from cape.kit.errors import Conflict, Forbidden, InvalidInput, NotFound
from cape.models import (
    Action,
    ActionStatus,
    ActionType,
    Activity,
    AuditEntry,
    AuthorityPolicy,
    Conversation,
    ConversationStatus,
    Customer,
    FulfilmentStatus,
    HeroMoment,
    LedgerEntry,
    Message,
    Order,
    Role,
    SpendCounter,
    User,
)

CUSTOMER_WINDOW = timedelta(days=30)
MAX_AMOUNT = policy.MAX_AMOUNT

# Reasons offered in the interface; any other text is accepted too and kept as written.
REASONS = (
    "damaged",
    "late_delivery",
    "lost_in_transit",
    "wrong_item",
    "not_as_described",
    "defective",
    "service_failure",
    "changed_mind",
    "loyalty",
    "other",
)

# Types where the amount is money given back, so zero makes no sense.
_MONEY_TYPES = {ActionType.refund, ActionType.store_credit, ActionType.discount_code, ActionType.goodwill}


# --- authority -----------------------------------------------------------------------------------


def authority_for(session: Session, user: User) -> policy.Authority:
    """The limits that apply to ``user`` now: their own policy, else their role's, else the default."""
    rows = session.scalars(
        select(AuthorityPolicy).where((AuthorityPolicy.user_id == user.id) | (AuthorityPolicy.role == user.role))
    ).all()
    user_policy = next((p for p in rows if p.user_id == user.id), None)
    role_policy = next((p for p in rows if p.role == user.role), None)
    return policy.resolve_authority(user.role, user_policy=user_policy, role_policy=role_policy)


def all_policies(session: Session) -> list[AuthorityPolicy]:
    """Every authority policy, for pages that show many users' limits at once (one query)."""
    return list(session.scalars(select(AuthorityPolicy)))


def resolve_authority(role: Role, *, policies: list[AuthorityPolicy], user: User | None = None) -> policy.Authority:
    """The limits for ``user`` (or for ``role`` when no user is given) from already loaded policies."""
    user_policy = next((p for p in policies if user is not None and p.user_id == user.id), None)
    role_policy = next((p for p in policies if p.role == role), None)
    return policy.resolve_authority(role, user_policy=user_policy, role_policy=role_policy)


def role_authority(session: Session, role: Role) -> policy.Authority:
    """The limits for a role: its policy if an admin set one, else the built-in default."""
    row = session.scalar(select(AuthorityPolicy).where(AuthorityPolicy.role == role))
    return policy.resolve_authority(role, user_policy=None, role_policy=row)


def set_authority(
    session: Session,
    *,
    actor: User,
    user: User | None = None,
    role: Role | None = None,
    currency: str,
    per_action: dict[str, int | None],
    per_customer_30d: int | None,
    daily_budget: int | None,
) -> AuthorityPolicy:
    """Create or replace the policy of one user or one role (admins only); audited."""
    if not actor.role.at_least(Role.admin):
        raise Forbidden("only admins set authority")
    # Neither would match "role IS NULL" and overwrite some user's policy; both is ambiguous.
    if (user is None) == (role is None):
        raise InvalidInput("user_id", "give exactly one of a user or a role")
    currency = _currency(currency)
    for key, limit in per_action.items():
        if key not in ActionType._value2member_map_:
            raise InvalidInput("per_action", f"unknown action type {key!r}")
        if limit is not None and not 0 <= limit <= MAX_AMOUNT:
            raise InvalidInput("per_action", f"limits are from zero to {MAX_AMOUNT} minor units")
    for field, value in (("per_customer_30d", per_customer_30d), ("daily_budget", daily_budget)):
        if value is not None and not 0 <= value <= MAX_AMOUNT:
            raise InvalidInput(field, f"must be from zero to {MAX_AMOUNT} minor units")
    where = AuthorityPolicy.user_id == user.id if user is not None else AuthorityPolicy.role == role
    row = session.scalar(select(AuthorityPolicy).where(where))
    before = _policy_snapshot(row) if row is not None else None
    values = {
        "currency": currency, "per_action": dict(per_action), "per_customer_30d": per_customer_30d,
        "daily_budget": daily_budget, "updated_at": utcnow(), "updated_by_id": actor.id,
    }  # fmt: skip
    if row is None:
        row = AuthorityPolicy(user_id=user.id if user else None, role=None if user else role, **values)
        try:
            # Race: two admins creating the same policy at once; the unique user/role keeps one.
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError as exc:
            raise Conflict("this policy was just created by someone else; reload and try again") from exc
    else:
        for key, value in values.items():
            setattr(row, key, value)
        session.flush()
    subject = f"user {user.id}" if user is not None else f"role {role}"
    _audit(session, actor=actor, event="authority.updated", reason=subject, before=before, after=_policy_snapshot(row))
    return row


def _policy_snapshot(row: AuthorityPolicy) -> dict[str, Any]:
    return {
        "user_id": row.user_id,
        "role": row.role.value if row.role else None,
        "currency": row.currency,
        "per_action": row.per_action,
        "per_customer_30d": row.per_customer_30d,
        "daily_budget": row.daily_budget,
    }


# --- taking an action ----------------------------------------------------------------------------


def take_action(
    session: Session,
    *,
    conversation: Conversation,
    actor: User,
    action_type: ActionType,
    amount: int,
    currency: str,
    reason: str,
    note: str | None = None,
    order_id: int | None = None,
    items: list[dict] | None = None,
    details: dict | None = None,
    now: datetime | None = None,
) -> Action:
    """Execute a resolution for the conversation's customer, or, above authority, ask for approval."""
    now = now or utcnow()
    currency = _currency(currency)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("reason", "say why")
    if amount < 0 or (amount == 0 and action_type in _MONEY_TYPES):
        raise InvalidInput(
            "amount", "must be more than zero" if action_type in _MONEY_TYPES else "must not be negative"
        )
    if amount > MAX_AMOUNT:
        raise InvalidInput("amount", f"must be at most {MAX_AMOUNT} minor units")
    customer = _lock_customer(session, conversation.customer_id)
    order = _order_for(session, customer=customer, order_id=order_id, currency=currency) if order_id else None
    if order is not None and action_type is ActionType.refund:
        # Requests waiting for approval count too, so that queued requests cannot together
        # promise more than the order's total (approval checks again, see approve_action).
        committed = _refunded(session, order_id=order.id, include_pending=True)
        if committed + amount > order.total_amount:
            raise InvalidInput(
                "amount",
                f"only {max(order.total_amount - committed, 0)} of order {order.number} is left to refund "
                "(executed refunds and requests waiting for approval count)",
            )

    authority = authority_for(session, actor)
    counter = _lock_spend_counter(session, user=actor, day=now.date(), currency=currency)
    usage = policy.Usage(
        customer_30d=_customer_window_total(session, customer_id=customer.id, currency=currency, now=now),
        agent_today=counter.spent,
    )
    reasons = policy.over_authority(authority, action_type=action_type, amount=amount, currency=currency, usage=usage)
    action = Action(
        type=action_type,
        status=ActionStatus.pending_approval if reasons else ActionStatus.executed,
        amount=amount,
        currency=currency,
        reason=reason[:200],
        note=(note or "").strip() or None,
        items=list(items or []),
        details=dict(details or {}),
        customer_id=customer.id,
        conversation_id=conversation.id,
        order_id=order.id if order else None,
        requested_by_id=actor.id,
        over_authority=reasons,
        within_authority=not reasons,
        executed_at=None if reasons else now,
        created_at=now,
    )
    session.add(action)
    session.flush()
    if reasons:
        _record(session, action, actor, "action_requested", over=reasons)
        _audit(
            session, actor=actor, event="action.requested", action=action, reason=_why(action), after=_snapshot(action)
        )
        events.emit(session, "action.requested", action_id=action.id, conversation_id=conversation.id)
        return action
    # Within authority: spend the budget in the same transaction that holds its lock.
    counter.spent += amount
    _record(session, action, actor, "action_executed")
    _audit(session, actor=actor, event="action.executed", action=action, reason=_why(action), after=_snapshot(action))
    _carry_out(session, action, actor=actor)
    events.emit(session, "action.executed", action_id=action.id, conversation_id=conversation.id)
    return action


def refundable_amount(session: Session, *, order_id: int) -> int:
    """What is left to refund on an order: its total less net executed refunds and waiting requests."""
    order = session.get(Order, order_id)
    if order is None:
        raise InvalidInput("order_id", f"order {order_id} not found")
    return max(order.total_amount - _refunded(session, order_id=order.id, include_pending=True), 0)


def _refunded(session: Session, *, order_id: int, include_pending: bool) -> int:
    """Net refunds executed on an order, plus (optionally) refund requests waiting for approval."""
    statuses = [ActionStatus.executed]
    if include_pending:
        statuses.append(ActionStatus.pending_approval)
    total = session.scalar(
        select(func.coalesce(func.sum(Action.amount), 0)).where(
            Action.order_id == order_id, Action.type == ActionType.refund, Action.status.in_(statuses)
        )
    )
    return int(total or 0)


def _customer_window_total(session: Session, *, customer_id: int, currency: str, now: datetime) -> int:
    """What was given to a customer in the 30 days before ``now``, reversals cancelling their originals.

    A reversal and its original cancel each other out whatever window is asked about: both are
    left out of the sum. (Netting the counter-action by its own date instead would subtract it
    from windows the original has already left, and the cap would go negative.)
    """
    counter_action = aliased(Action)
    reversed_ = (
        select(counter_action.id)
        .where(counter_action.reverses_id == Action.id, counter_action.status == ActionStatus.executed)
        .exists()
    )
    total = session.scalar(
        select(func.coalesce(func.sum(Action.amount), 0)).where(
            Action.status == ActionStatus.executed,
            Action.customer_id == customer_id,
            Action.currency == currency,
            Action.executed_at > now - CUSTOMER_WINDOW,
            Action.reverses_id.is_(None),
            ~reversed_,
        )
    )
    return int(total or 0)


def _currency(code: str) -> str:
    code = (code or "").strip().upper()
    if len(code) != 3 or not is_currency(code):
        raise InvalidInput("currency", "an ISO 4217 code such as USD, EUR or DKK")
    return code


def _lock_customer(session: Session, customer_id: int) -> Customer:
    # Race: two agents giving to the same customer at once could each see room under the
    # 30-day cap and together exceed it. Locking the customer row serialises them; FOR NO KEY
    # UPDATE so rows that merely reference the customer (messages, activity) are not blocked.
    customer = session.scalar(
        select(Customer)
        .where(Customer.id == customer_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    return customer


def _lock_spend_counter(session: Session, *, user: User, day: date, currency: str) -> SpendCounter:
    # Race: two requests by the same agent could both read "spent" before either adds to it and
    # together overspend the daily budget. The counter row is created if missing, then locked
    # FOR UPDATE until commit, so the check and the spend below are one atomic step. (SQLite
    # has no row locks; there the app's BEGIN IMMEDIATE already serialises every writer.)
    values = {"user_id": user.id, "day": day, "currency": currency, "spent": 0}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(SpendCounter).values(**values).on_conflict_do_nothing())
    return session.scalars(
        select(SpendCounter)
        .where(SpendCounter.user_id == user.id, SpendCounter.day == day, SpendCounter.currency == currency)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _order_for(session: Session, *, customer: Customer, order_id: int, currency: str) -> Order:
    order = session.get(Order, order_id)
    if order is None or order.customer_id != customer.id:
        raise InvalidInput("order_id", f"order {order_id} is not this customer's")
    if order.currency != currency:
        raise InvalidInput("currency", f"order {order.number} is in {order.currency}")
    return order


def _carry_out(session: Session, action: Action, *, actor: User | None) -> None:
    """Hand an executed action to the connector: now (ledger) or after commit (webhook)."""
    connector = connectors.active()
    action.connector = connector.name
    action.fulfilment_status = FulfilmentStatus.queued
    session.flush()
    if connector.deferred:
        from cape.actions.tasks import deliver_action

        jobs.enqueue_after_commit(session, deliver_action, action.id)
        return
    record_fulfilment(session, action=action, outcome=connector.carry_out(session, action), actor=actor)


def record_fulfilment(session: Session, *, action: Action, outcome: Outcome, actor: User | None = None) -> Action:
    """The connector's answer: done; refused (the action fails and its budget is freed); or no
    clear answer (the action stays queued, with the error noted, and is delivered again later)."""
    if outcome.done:
        new_status = FulfilmentStatus.done
    elif outcome.final:
        new_status = FulfilmentStatus.failed
    else:
        new_status = FulfilmentStatus.queued
    error = None if outcome.done else (outcome.error or "failed")[:2000]
    session.flush()
    # Race: two deliveries of the same action (a slow worker and the stale re-delivery job, or
    # a repeated answer) both read "queued" and would each record the answer, giving a failed
    # action's budget back twice. Only the UPDATE that still finds it queued records anything;
    # the other sees rowcount 0 and is a no-op. (On PostgreSQL the second waits for the first
    # to commit and then re-checks the WHERE; on SQLite writers are serialised.)
    claimed = session.execute(
        update(Action)
        .where(Action.id == action.id, Action.fulfilment_status == FulfilmentStatus.queued)
        .values(
            fulfilment_status=new_status,
            fulfilment_attempts=Action.fulfilment_attempts + outcome.attempts,
            fulfilment_reference=outcome.reference,
            fulfilment_error=error,
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return action  # already answered by another delivery, or never queued
    before = _snapshot(action)
    session.refresh(action)
    if outcome.done:
        if connectors.active().deferred:  # the ledger is done at once; say so only when it took time
            _record(session, action, actor, "action_done", reference=outcome.reference)
        _audit(session, actor=actor, event="action.done", action=action, before=before, after=_snapshot(action))
        return action
    if not outcome.final:
        # The store may or may not have carried it out: keep it queued, so it is sent again
        # with the same idempotency key, and keep its budget spent until the store answers.
        _audit(
            session, actor=actor, event="action.delivery_failed", action=action, reason=error,
            before=before, after=_snapshot(action),
        )  # fmt: skip
        return action
    action.status = ActionStatus.failed
    if action.within_authority and action.executed_at is not None:
        _give_back(session, action.requested_by_id, action.executed_at.date(), action.currency, action.amount)
    if action.reverses_id is not None:  # the reversal did not happen: its budget is spent again
        original = session.get_one(Action, action.reverses_id)
        if original.within_authority and original.executed_at is not None:
            _give_back(session, original.requested_by_id, original.executed_at.date(), original.currency,
                       -original.amount)  # fmt: skip
    _record(session, action, actor, "action_failed", error=action.fulfilment_error)
    _audit(
        session, actor=actor, event="action.failed", action=action, reason=action.fulfilment_error,
        before=before, after=_snapshot(action),
    )  # fmt: skip
    events.emit(session, "action.failed", action_id=action.id, conversation_id=action.conversation_id)
    return action


def stale_deliveries(session: Session, *, older_than: datetime) -> list[int]:
    """Executed actions whose deferred delivery is still queued since before ``older_than``."""
    return list(
        session.scalars(
            select(Action.id)
            .where(Action.fulfilment_status == FulfilmentStatus.queued, Action.executed_at < older_than)
            .order_by(Action.id)
            .limit(500)
        )
    )


def store_credit_balance(session: Session, *, customer_id: int) -> dict[str, int]:
    """The customer's store credit given through Cape, net of reversals, per currency."""
    rows = session.execute(
        select(Action.currency, func.sum(Action.amount))
        .where(
            Action.customer_id == customer_id,
            Action.type == ActionType.store_credit,
            Action.status == ActionStatus.executed,
        )
        .group_by(Action.currency)
    )
    return {currency: int(total) for currency, total in rows if total}


def pending_count(session: Session) -> int:
    return session.scalar(select(func.count()).where(Action.status == ActionStatus.pending_approval)) or 0


def _give_back(session: Session, user_id: int, day: date, currency: str, amount: int) -> None:
    # Computed in the database (spent = spent - amount), not read-modify-write, so a concurrent
    # spend committed in between is kept. A negative amount spends again.
    session.execute(
        update(SpendCounter)
        .where(SpendCounter.user_id == user_id, SpendCounter.day == day, SpendCounter.currency == currency)
        .values(spent=SpendCounter.spent - amount)
    )


# --- approvals -----------------------------------------------------------------------------------


def approve_action(session: Session, *, action: Action, actor: User, note: str | None = None) -> Action:
    """A supervisor approves a request above the agent's authority: it executes now."""
    _check_decider(action=action, actor=actor)
    if action.type is ActionType.refund and action.order_id is not None:
        # Race: two supervisors approving refund requests on the same order at once could each
        # see room left and together refund more than its total. The customer lock (the same
        # one take_action holds) serialises them, and the total is checked again under it.
        _lock_customer(session, action.customer_id)
        order = session.get_one(Order, action.order_id)
        refunded = _refunded(session, order_id=order.id, include_pending=False)
        if refunded + action.amount > order.total_amount:
            raise Conflict(
                f"order {order.number} has {max(order.total_amount - refunded, 0)} left to refund, "
                f"less than the {action.amount} requested; decline this request"
            )
    _decide(session, action=action, actor=actor, status=ActionStatus.executed, note=note)
    _record(session, action, actor, "action_approved", note=note)
    _audit(session, actor=actor, event="action.approved", action=action, reason=note, after=_snapshot(action))
    _carry_out(session, action, actor=actor)
    events.emit(session, "action.approved", action_id=action.id, conversation_id=action.conversation_id)
    return action


def decline_action(session: Session, *, action: Action, actor: User, note: str | None = None) -> Action:
    """A supervisor declines a request; nothing is given."""
    _decide(session, action=action, actor=actor, status=ActionStatus.declined, note=note)
    _record(session, action, actor, "action_declined", note=note)
    _audit(session, actor=actor, event="action.declined", action=action, reason=note, after=_snapshot(action))
    events.emit(session, "action.declined", action_id=action.id, conversation_id=action.conversation_id)
    return action


def _check_decider(*, action: Action, actor: User) -> None:
    if not actor.role.at_least(Role.supervisor):
        raise Forbidden("only supervisors and admins decide on requests")
    if actor.id == action.requested_by_id:
        raise Forbidden("someone else must decide on your own request")


def _decide(session: Session, *, action: Action, actor: User, status: ActionStatus, note: str | None) -> None:
    _check_decider(action=action, actor=actor)
    now = utcnow()
    # Race: two supervisors deciding the same request at once (approve and decline, or a double
    # click). Only the UPDATE that still finds it pending wins; the other sees rowcount 0.
    result = session.execute(
        update(Action)
        .where(Action.id == action.id, Action.status == ActionStatus.pending_approval)
        .values(
            status=status,
            decided_by_id=actor.id,
            decided_at=now,
            decision_note=(note or "").strip() or None,
            executed_at=now if status is ActionStatus.executed else None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict(f"action {action.id} was already decided")
    session.refresh(action)


# --- reversal ------------------------------------------------------------------------------------


def reverse_action(session: Session, *, action: Action, actor: User, reason: str) -> Action:
    """Undo an executed action with a counter-action of the opposite amount; the original stays."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("reason", "say why it is reversed")
    if action.requested_by_id != actor.id and not actor.role.at_least(Role.supervisor):
        raise Forbidden("only the agent who took it, or a supervisor, can reverse an action")
    if action.status is not ActionStatus.executed:
        raise Conflict(f"only executed actions can be reversed (this one is {action.status.value})")
    if action.reverses_id is not None:
        raise Conflict("a counter-action cannot itself be reversed")
    if action.fulfilment_status is FulfilmentStatus.queued:
        raise Conflict("the store has not confirmed this action yet; reverse it once it has")
    # Plain check for a clear message; the partial unique index is what closes the race.
    live = select(Action.id).where(Action.reverses_id == action.id, Action.status != ActionStatus.failed)
    if session.scalar(live) is not None:
        raise Conflict(f"action {action.id} was already reversed")
    _lock_customer(session, action.customer_id)
    now = utcnow()
    counter_action = Action(
        type=action.type,
        status=ActionStatus.executed,
        amount=-action.amount,
        currency=action.currency,
        reason=reason[:200],
        items=action.items,
        details={"reverses": action.id},
        customer_id=action.customer_id,
        conversation_id=action.conversation_id,
        order_id=action.order_id,
        requested_by_id=actor.id,
        over_authority=[],
        within_authority=False,
        executed_at=now,
        reverses_id=action.id,
        created_at=now,
    )
    try:
        # Race: two people reversing the same action at once; the unique reverses_id lets one win.
        with session.begin_nested():
            session.add(counter_action)
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"action {action.id} was already reversed") from exc
    if action.within_authority and action.executed_at is not None:
        _give_back(session, action.requested_by_id, action.executed_at.date(), action.currency, action.amount)
    _record(session, counter_action, actor, "action_reversed", reverses_id=action.id)
    _audit(
        session, actor=actor, event="action.reversed", action=counter_action, reason=reason,
        before=_snapshot(action), after=_snapshot(counter_action),
    )  # fmt: skip
    _carry_out(session, counter_action, actor=actor)
    events.emit(session, "action.reversed", action_id=counter_action.id, conversation_id=action.conversation_id)
    return counter_action


# --- reading -------------------------------------------------------------------------------------


def _action_options():
    return (
        selectinload(Action.requested_by),
        selectinload(Action.decided_by),
        selectinload(Action.customer),
        selectinload(Action.order),
    )


def get_action(session: Session, action_id: int) -> Action:
    action = session.scalar(select(Action).where(Action.id == action_id).options(*_action_options()))
    if action is None:
        raise NotFound(f"action {action_id} not found")
    return action


def list_actions(
    session: Session,
    *,
    status: ActionStatus | None = None,
    customer_id: int | None = None,
    conversation_id: int | None = None,
    limit: int = 100,
) -> list[Action]:
    """Actions, newest first (pending requests oldest first, so the longest waiting comes first)."""
    query = select(Action).options(*_action_options())
    if status is not None:
        query = query.where(Action.status == status)
    if customer_id is not None:
        query = query.where(Action.customer_id == customer_id)
    if conversation_id is not None:
        query = query.where(Action.conversation_id == conversation_id)
    if status is ActionStatus.pending_approval:
        query = query.order_by(Action.created_at, Action.id)
    else:
        query = query.order_by(Action.created_at.desc(), Action.id.desc())
    return list(session.scalars(query.limit(limit)))


AUDIT_COLUMNS = (
    "id", "created_at", "actor_user_id", "actor_name", "event", "action_id", "customer_id",
    "conversation_id", "reason", "before", "after", "subject_type", "subject_id",
)  # fmt: skip
LEDGER_COLUMNS = ("id", "created_at", "action_id", "customer_id", "kind", "amount", "currency", "code", "memo")


def audit_csv(session: Session) -> Iterator[str]:
    """The whole audit log as CSV, oldest first."""

    def row(entry: AuditEntry) -> list:
        return [
            entry.id, entry.created_at.isoformat(), entry.actor_user_id, entry.actor.name if entry.actor else "",
            entry.event, entry.action_id, entry.customer_id, entry.conversation_id, entry.reason or "",
            json.dumps(entry.before, sort_keys=True) if entry.before is not None else "",
            json.dumps(entry.after, sort_keys=True) if entry.after is not None else "",
            entry.subject_type or "", entry.subject_id,
        ]  # fmt: skip

    query = select(AuditEntry).options(selectinload(AuditEntry.actor))
    return _csv(session, query, AuditEntry, AUDIT_COLUMNS, row)


def ledger_csv(session: Session) -> Iterator[str]:
    """The built-in ledger as CSV for finance, oldest first; amounts in minor units."""

    def row(entry: LedgerEntry) -> list:
        return [
            entry.id, entry.created_at.isoformat(), entry.action_id, entry.customer_id, entry.kind,
            entry.amount, entry.currency, entry.code or "", entry.memo or "",
        ]  # fmt: skip

    return _csv(session, select(LedgerEntry), LedgerEntry, LEDGER_COLUMNS, row)


def _csv(session: Session, query, model, columns: tuple[str, ...], row, *, batch: int = 500) -> Iterator[str]:
    """Rows in id order, read in batches; text that a spreadsheet would run as a formula is defused."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    last_id = 0
    while True:
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        rows = session.scalars(query.where(model.id > last_id).order_by(model.id).limit(batch)).all()
        if not rows:
            return
        for item in rows:
            writer.writerow([_cell(value) for value in row(item)])
        last_id = rows[-1].id


def _cell(value: Any) -> Any:
    # Free text written by people (reasons, notes) must not become a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@dataclass(frozen=True)
class SpendRow:
    key: str
    currency: str
    count: int
    total: int


@dataclass(frozen=True)
class Review:
    since: datetime
    by_agent: list[SpendRow]
    by_type: list[SpendRow]
    by_reason: list[SpendRow]
    resolved_conversations: int
    actions_on_resolved: int

    @property
    def actions_per_resolved_conversation(self) -> float:
        return round(self.actions_on_resolved / self.resolved_conversations, 2) if self.resolved_conversations else 0.0


def review(session: Session, *, since: datetime) -> Review:
    """After-the-fact review for supervisors: net spend by agent, type and reason since a time."""
    executed = (Action.status == ActionStatus.executed, Action.executed_at >= since)

    def grouped(key_column) -> list[SpendRow]:
        rows = session.execute(
            select(key_column, Action.currency, func.count(), func.sum(Action.amount))
            .where(*executed)
            .group_by(key_column, Action.currency)
            .order_by(func.sum(Action.amount).desc())
        )
        return [SpendRow(str(k.value if hasattr(k, "value") else k), c, n, int(t or 0)) for k, c, n, t in rows]

    by_agent = session.execute(
        select(User.name, Action.currency, func.count(), func.sum(Action.amount))
        .join(User, User.id == Action.requested_by_id)
        .where(*executed)
        .group_by(User.id, User.name, Action.currency)
        .order_by(func.sum(Action.amount).desc())
    )
    resolved = select(Conversation.id).where(
        Conversation.status == ConversationStatus.resolved, Conversation.resolved_at >= since
    )
    resolved_count = session.scalar(select(func.count()).select_from(resolved.subquery())) or 0
    on_resolved = (
        session.scalar(
            select(func.count()).where(
                Action.status == ActionStatus.executed,
                Action.reverses_id.is_(None),
                Action.conversation_id.in_(resolved),
            )
        )
        or 0
    )
    return Review(
        since=since,
        by_agent=[SpendRow(name, c, n, int(t or 0)) for name, c, n, t in by_agent],
        by_type=grouped(Action.type),
        by_reason=grouped(Action.reason),
        resolved_conversations=resolved_count,
        actions_on_resolved=on_resolved,
    )


# --- hero moments --------------------------------------------------------------------------------


def record_hero_moment(
    session: Session,
    *,
    conversation: Conversation,
    user: User,
    quote: str,
    source: str = "customer_message",
    message_id: int | None = None,
    recorded_by: User | None = None,
) -> HeroMoment:
    """A customer thanked ``user`` (or a survey praised them): keep the moment with what was done."""
    quote = (quote or "").strip()
    if not quote:
        raise InvalidInput("quote", "what did the customer say?")
    if source not in ("customer_message", "survey", "manual"):
        raise InvalidInput("source", "customer_message, survey or manual")
    if message_id is not None:
        message = session.get(Message, message_id)
        if message is None or message.conversation_id != conversation.id:
            raise InvalidInput("message_id", f"message {message_id} is not in conversation {conversation.id}")
    if recorded_by is not None and recorded_by.id == user.id:
        raise Forbidden("praise is recorded by a colleague, not by the person praised")
    action_ids = session.scalars(
        select(Action.id)
        .where(Action.conversation_id == conversation.id, Action.status == ActionStatus.executed)
        .order_by(Action.id)
    ).all()
    moment = HeroMoment(
        user_id=user.id,
        customer_id=conversation.customer_id,
        conversation_id=conversation.id,
        message_id=message_id,
        source=source,
        quote=quote[:5000],
        action_ids=list(action_ids),
        recorded_by_id=recorded_by.id if recorded_by else None,
    )
    session.add(moment)
    session.flush()
    session.add(
        Activity(
            customer_id=conversation.customer_id, conversation_id=conversation.id,
            actor_user_id=recorded_by.id if recorded_by else None, kind="hero_moment",
            data={"hero_moment_id": moment.id, "user_id": user.id, "user_name": user.name},
        )
    )  # fmt: skip
    events.emit(session, "hero_moment.recorded", hero_moment_id=moment.id, user_id=user.id)
    return moment


def hero_feed(
    session: Session, *, limit: int = 50, moment_id: int | None = None
) -> list[tuple[HeroMoment, list[Action]]]:
    """The team feed: newest hero moments with the actions that made them."""
    query = select(HeroMoment).options(selectinload(HeroMoment.user), selectinload(HeroMoment.customer))
    if moment_id is not None:
        query = query.where(HeroMoment.id == moment_id)
    moments = session.scalars(query.order_by(HeroMoment.created_at.desc(), HeroMoment.id.desc()).limit(limit)).all()
    ids = {i for m in moments for i in m.action_ids}
    actions = {}
    if ids:
        actions = {
            a.id: a for a in session.scalars(select(Action).where(Action.id.in_(ids)).options(*_action_options()))
        }
    return [(m, [actions[i] for i in m.action_ids if i in actions]) for m in moments]


# --- history -------------------------------------------------------------------------------------


def _snapshot(action: Action) -> dict[str, Any]:
    return {
        "type": action.type.value,
        "status": action.status.value,
        "amount": action.amount,
        "currency": action.currency,
        "order_id": action.order_id,
        "requested_by_id": action.requested_by_id,
        "decided_by_id": action.decided_by_id,
        "over_authority": list(action.over_authority or []),
        "fulfilment_status": action.fulfilment_status.value if action.fulfilment_status else None,
        "fulfilment_reference": action.fulfilment_reference,
    }


def _why(action: Action) -> str:
    return f"{action.reason}: {action.note}" if action.note else action.reason


def _record(session: Session, action: Action, actor: User | None, kind: str, **extra: Any) -> None:
    session.add(
        Activity(
            customer_id=action.customer_id,
            conversation_id=action.conversation_id,
            actor_user_id=actor.id if actor else None,
            kind=kind,
            data={
                "action_id": action.id,
                "type": action.type.value,
                "amount": action.amount,
                "currency": action.currency,
                "reason": action.reason,
                **extra,
            },
        )
    )


def _audit(
    session: Session,
    *,
    actor: User | None,
    event: str,
    action: Action | None = None,
    reason: str | None = None,
    before: dict | None = None,
    after: dict | None = None,
) -> None:
    session.add(
        AuditEntry(
            actor_user_id=actor.id if actor else None,
            event=event,
            action_id=action.id if action else None,
            customer_id=action.customer_id if action else None,
            conversation_id=action.conversation_id if action else None,
            reason=reason,
            before=before,
            after=after,
        )
    )
