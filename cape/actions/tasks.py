"""Background jobs for actions: delivering executed actions to a deferred connector (the store).

The lifecycle (``cape.actions.service``) queues ``deliver_action`` after commit; the store's answer is
recorded by ``cape.actions.fulfilment``, which imports neither, so imports run one way only:
service -> tasks -> fulfilment.
"""

from __future__ import annotations

from datetime import timedelta

from huey import crontab

from cape import jobs
from cape.actions import connectors
from cape.actions.connectors import action_payload
from cape.actions.fulfilment import record_fulfilment, stale_deliveries
from cape.kit.clock import utcnow
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


@jobs.huey.periodic_task(crontab(minute="*/5"))
def redeliver_stale_actions() -> int:
    """Send again what a crashed or restarted worker left queued (the store dedups on the key)."""
    with jobs.job_session(read_only=True) as session:
        # Still queued this long (CAPE_ACTIONS_REDELIVER_AFTER_S, 10 minutes by default) after it
        # was executed: lost with a worker stopped mid-way, or the store gave no clear answer.
        older_than = utcnow() - timedelta(seconds=jobs.runtime_settings().actions_redeliver_after_s)
        action_ids = stale_deliveries(session, older_than=older_than)
    for action_id in action_ids:
        deliver_action(action_id)
    return len(action_ids)
