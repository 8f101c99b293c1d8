"""Where jobs wait: the queue named by the settings, on the storage they choose."""

from __future__ import annotations

import uuid

import pytest

from cape import jobs
from cape.config import Settings
from tests.fixtures.databases import REDIS_URL


def test_two_queue_names_on_one_redis_are_two_queues():
    name = f"cape_test_{uuid.uuid4().hex}"
    ours, theirs = (jobs._make_huey(Settings(jobs_backend="redis", redis_url=REDIS_URL, jobs_queue=name + suffix))
                    for suffix in ("_ours", "_theirs"))  # fmt: skip
    try:
        theirs.storage.enqueue(b"another installation's job")
        assert (ours.pending_count(), theirs.pending_count()) == (0, 1)
    finally:
        ours.storage.flush_all()
        theirs.storage.flush_all()


def test_a_queue_name_huey_would_rewrite_is_refused():
    # Huey keeps only letters, digits and "_": "cape-a" and "capea" would be one queue.
    with pytest.raises(ValueError, match="jobs_queue"):
        Settings(jobs_queue="cape-a")


def test_redis_jobs_without_a_redis_url_are_refused_not_kept_in_a_local_file():
    with pytest.raises(ValueError, match="CAPE_REDIS_URL"):
        jobs._make_huey(Settings(jobs_backend="redis", redis_url=""))
