"""Time: timezone-aware UTC everywhere; a clock is passed in where tests must control it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_set_to: ContextVar[datetime | None] = ContextVar("cape_clock_set_to", default=None)


def utcnow() -> datetime:
    """Now, in UTC; inside a ``clock_set_to`` block, the moment it set."""
    moment = _set_to.get()
    return datetime.now(UTC) if moment is None else moment


@contextmanager
def clock_set_to(moment: datetime) -> Iterator[None]:
    """Within the block (this thread or task only), ``utcnow()`` answers ``moment``.

    For writing history that happened in the past through the ordinary services, each stamping
    its rows as it always does (the demo's month of conversations). Nothing else should need it.
    """
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the clock")
    token = _set_to.set(moment.astimezone(UTC))
    try:
        yield
    finally:
        _set_to.reset(token)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
