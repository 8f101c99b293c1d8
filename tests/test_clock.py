"""The clock: ``utcnow`` answers the moment a ``clock_set_to`` block set, in that context only."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cape.kit.clock import clock_set_to, utcnow

LAST_MONTH = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


def test_the_clock_is_set_inside_the_block_and_back_after_it():
    with clock_set_to(LAST_MONTH):
        assert utcnow() == LAST_MONTH
        with clock_set_to(LAST_MONTH + timedelta(hours=1)):
            assert utcnow() == LAST_MONTH + timedelta(hours=1)
        assert utcnow() == LAST_MONTH
    assert utcnow() - datetime.now(UTC) < timedelta(seconds=5)
    with pytest.raises(RuntimeError), clock_set_to(LAST_MONTH):
        raise RuntimeError
    assert utcnow() > LAST_MONTH + timedelta(days=1)


def test_the_moment_is_in_utc_and_must_say_its_zone():
    with clock_set_to(datetime(2024, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=1)))):
        assert utcnow() == LAST_MONTH and utcnow().tzinfo is UTC
    with pytest.raises(ValueError, match="naive"), clock_set_to(datetime(2024, 3, 1, 9, 30)):
        pass


def test_other_threads_keep_the_real_time():
    seen = []
    with clock_set_to(LAST_MONTH):
        thread = threading.Thread(target=lambda: seen.append(utcnow()))
        thread.start()
        thread.join()
    assert seen[0] > LAST_MONTH + timedelta(days=1)
