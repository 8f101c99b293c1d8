"""Fulfilment: the connector's answer to an executed action, and the deliveries still waiting for one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cape import events
from cape.actions import connectors
from cape.actions.connectors import Outcome
from cape.actions.history import record_activity, snapshot, write_audit
from cape.actions.spend import give_back_spend
from cape.models import Action, ActionStatus, FulfilmentStatus, User


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
    before = snapshot(action)
    session.refresh(action)
    if outcome.done:
        if connectors.active().deferred:  # the ledger is done at once; say so only when it took time
            record_activity(session, action=action, actor=actor, kind="action_done", reference=outcome.reference)
        write_audit(session, actor=actor, event="action.done", action=action, before=before, after=snapshot(action))
        return action
    if not outcome.final:
        # The store may or may not have carried it out: keep it queued, so it is sent again
        # with the same idempotency key, and keep its budget spent until the store answers.
        write_audit(
            session, actor=actor, event="action.delivery_failed", action=action, reason=error,
            before=before, after=snapshot(action),
        )  # fmt: skip
        return action
    action.status = ActionStatus.failed
    if action.within_authority and action.executed_at is not None:
        give_back_spend(
            session, user_id=action.requested_by_id, day=action.executed_at.date(), currency=action.currency,
            amount=action.amount,
        )  # fmt: skip
    if action.reverses_id is not None:  # the reversal did not happen: its budget is spent again
        original = session.get_one(Action, action.reverses_id)
        if original.within_authority and original.executed_at is not None:
            give_back_spend(
                session, user_id=original.requested_by_id, day=original.executed_at.date(),
                currency=original.currency, amount=-original.amount,
            )  # fmt: skip
    record_activity(session, action=action, actor=actor, kind="action_failed", error=action.fulfilment_error)
    write_audit(
        session, actor=actor, event="action.failed", action=action, reason=action.fulfilment_error,
        before=before, after=snapshot(action),
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
