"""Background jobs for actions: delivering executed actions to a deferred connector (the store)."""

from __future__ import annotations

from datetime import timedelta

from huey import crontab

from cape import jobs
from cape.actions import connectors
from cape.actions.connectors import action_payload
from cape.actions.service import record_fulfilment, stale_deliveries
from cape.kit.clock import utcnow
from cape.models import Action, FulfilmentStatus

# A delivery still queued after this long was lost (worker stopped mid-way); it is sent again.
STALE_AFTER = timedelta(minutes=10)


@jobs.huey.task()
def deliver_action(action_id: int) -> None:
    """Send an executed action to the store and record its answer; safe to run twice."""
    # Three short steps, not one transaction: the HTTP call (with its retries) must not hold a
    # database transaction, and on SQLite the write lock, while it waits for the store.
    with jobs.job_session() as session:
        action = session.get(Action, action_id)
        if action is None or action.fulfilment_status is not FulfilmentStatus.queued:
            return
        payload = action_payload(action)
    outcome = connectors.active().deliver(payload, idempotency_key=str(action_id))
    with jobs.job_session() as session:
        action = session.get(Action, action_id)
        if action is not None:
            record_fulfilment(session, action=action, outcome=outcome)


@jobs.huey.periodic_task(crontab(minute="*/5"))
def redeliver_stale_actions() -> int:
    """Send again what a crashed or restarted worker left queued (the store dedups on the key)."""
    with jobs.job_session(read_only=True) as session:
        action_ids = stale_deliveries(session, older_than=utcnow() - STALE_AFTER)
    for action_id in action_ids:
        deliver_action(action_id)
    return len(action_ids)
