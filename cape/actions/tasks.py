"""Background jobs for actions: delivering executed actions to a deferred connector (the store)."""

from __future__ import annotations

from cape import jobs
from cape.actions import connectors
from cape.actions.connectors import action_payload
from cape.actions.service import record_fulfilment
from cape.models import Action, FulfilmentStatus


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
