"""The action lifecycle: take one within authority, request approval above it, decide, reverse, read.

Every change writes an Activity on the conversation and an AuditEntry in the same transaction
(``cape.actions.history``). Nothing is deleted; a mistake is undone by a counter-action
(``reverse_action``). An executed action is handed to the connector: the ledger at once, a store
after commit (``cape.actions.tasks.deliver_action``), whose answer ``cape.actions.fulfilment`` records.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, selectinload

from cape import events, jobs
from cape.actions import connectors, policy
from cape.actions.authority import authority_for
from cape.actions.fulfilment import record_fulfilment
from cape.actions.history import record_activity, snapshot, write_audit
from cape.actions.policy import MAX_AMOUNT
from cape.actions.spend import give_back_spend, lock_spend_counter, spent_on
from cape.actions.tasks import deliver_action
from cape.kit.clock import utcnow
from cape.kit.errors import Conflict, Forbidden, InvalidInput, NotFound
from cape.kit.money import parse_currency
from cape.models import (
    Action,
    ActionStatus,
    ActionType,
    Conversation,
    Customer,
    FulfilmentStatus,
    Order,
    Role,
    User,
)

CUSTOMER_WINDOW = timedelta(days=30)


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
# What a reversal records when the person reversing it gave no reason on the conversation page.
NO_REASON_GIVEN = "no_reason_given"

# Types where the amount is money given back, so zero makes no sense.
_MONEY_TYPES = {ActionType.refund, ActionType.store_credit, ActionType.discount_code, ActionType.goodwill}


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
    currency = parse_currency(currency)
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

    authority = authority_for(session, user=actor)
    counter = lock_spend_counter(session, user=actor, day=now.date(), currency=currency)
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
        record_activity(session, action=action, actor=actor, kind="action_requested", over=reasons)
        write_audit(
            session, actor=actor, event="action.requested", action=action, reason=_why(action), after=snapshot(action)
        )
        events.emit(session, "action.requested", action_id=action.id, conversation_id=conversation.id)
        return action
    # Within authority: spend the budget in the same transaction that holds its lock.
    counter.spent += amount
    record_activity(session, action=action, actor=actor, kind="action_executed")
    write_audit(
        session, actor=actor, event="action.executed", action=action, reason=_why(action), after=snapshot(action)
    )
    _carry_out(session, action, actor=actor)
    events.emit(session, "action.executed", action_id=action.id, conversation_id=conversation.id)
    return action


def refundable_amount(session: Session, *, order_id: int) -> int:
    """What is left to refund on an order: its total less net executed refunds and waiting requests."""
    order = session.get(Order, order_id)
    if order is None:
        raise InvalidInput("order_id", f"order {order_id} not found")
    return refundable_amounts(session, orders=[order])[order.id]


def refundable_amounts(session: Session, *, orders: Iterable[Order]) -> dict[int, int]:
    """What is left to refund on each order, by order id: its total less net executed refunds and
    refund requests waiting for approval (one query for them all)."""
    totals = {order.id: order.total_amount for order in orders}
    if not totals:
        return {}
    committed = dict(
        session.execute(
            select(Action.order_id, func.sum(Action.amount))
            .where(
                Action.order_id.in_(totals),
                Action.type == ActionType.refund,
                Action.status.in_([ActionStatus.executed, ActionStatus.pending_approval]),
            )
            .group_by(Action.order_id)
        ).all()
    )
    return {order_id: max(total - int(committed.get(order_id) or 0), 0) for order_id, total in totals.items()}


def authority_headroom(
    session: Session, *, user: User, customer_id: int, now: datetime | None = None
) -> policy.Headroom:
    """What ``user`` may still give this customer now without approval, in their authority's currency.

    Read only: nothing is locked, so it is a guide for the page; ``take_action`` decides under its locks.
    """
    now = now or utcnow()
    authority = authority_for(session, user=user)
    usage = policy.Usage(
        customer_30d=_customer_window_total(session, customer_id=customer_id, currency=authority.currency, now=now),
        agent_today=spent_on(session, user_id=user.id, day=now.date(), currency=authority.currency),
    )
    return policy.headroom(authority, usage=usage)


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
        jobs.enqueue_after_commit(session, deliver_action, action.id)
        return
    record_fulfilment(session, action=action, outcome=connector.carry_out(session, action), actor=actor)


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
    """How many requests wait for a supervisor's decision."""
    return session.scalar(select(func.count()).where(Action.status == ActionStatus.pending_approval)) or 0


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
    record_activity(session, action=action, actor=actor, kind="action_approved", note=note)
    write_audit(session, actor=actor, event="action.approved", action=action, reason=note, after=snapshot(action))
    _carry_out(session, action, actor=actor)
    events.emit(session, "action.approved", action_id=action.id, conversation_id=action.conversation_id)
    return action


def decline_action(session: Session, *, action: Action, actor: User, note: str | None = None) -> Action:
    """A supervisor declines a request; nothing is given."""
    _decide(session, action=action, actor=actor, status=ActionStatus.declined, note=note)
    record_activity(session, action=action, actor=actor, kind="action_declined", note=note)
    write_audit(session, actor=actor, event="action.declined", action=action, reason=note, after=snapshot(action))
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
        give_back_spend(
            session, user_id=action.requested_by_id, day=action.executed_at.date(), currency=action.currency,
            amount=action.amount,
        )  # fmt: skip
    record_activity(session, action=counter_action, actor=actor, kind="action_reversed", reverses_id=action.id)
    write_audit(
        session, actor=actor, event="action.reversed", action=counter_action, reason=reason,
        before=snapshot(action), after=snapshot(counter_action),
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


def get_action(session: Session, *, action_id: int) -> Action:
    """One action with who asked, who decided, the customer and the order."""
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


def get_actions(session: Session, *, action_ids: Iterable[int]) -> dict[int, Action]:
    """The actions with these ids (those that exist), by id, loaded as ``get_action`` loads one."""
    ids = set(action_ids)
    if not ids:
        return {}
    return {a.id: a for a in session.scalars(select(Action).where(Action.id.in_(ids)).options(*_action_options()))}


def _why(action: Action) -> str:
    return f"{action.reason}: {action.note}" if action.note else action.reason
