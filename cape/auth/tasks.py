"""Background jobs of auth: forgetting rate-limit counts that have left their window."""

from __future__ import annotations

from huey import crontab

from cape import jobs
from cape.auth import throttle


@jobs.huey.periodic_task(crontab(minute="*/15"))
def prune_rate_limits() -> int:
    with jobs.job_session() as session:
        return throttle.prune(session)
