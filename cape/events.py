"""Domain events and other side effects: collected during a transaction, run after it commits.

A rollback drops them, so nothing is ever announced that did not happen; so does the rollback of
a savepoint, for what was collected inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

_PENDING = "cape.after_commit"


@dataclass(frozen=True)
class DomainEvent:
    name: str
    payload: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[DomainEvent], None]
_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> Callable[[], None]:
    """Call ``subscriber`` for every committed event; returns a function that unsubscribes."""
    _subscribers.append(subscriber)
    return lambda: _subscribers.remove(subscriber)


def on_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's transaction has committed; never on rollback."""
    # Tagged with the innermost savepoint, if any: rolling that back drops the callback.
    session.info.setdefault(_PENDING, []).append((session.get_nested_transaction(), callback))


def checkpoint(session: Session) -> int:
    """A point to ``rewind`` to, for a savepoint the session does not know of (driver level)."""
    return len(session.info.get(_PENDING, ()))


def rewind(session: Session, point: int) -> None:
    """Drop what was collected since ``checkpoint``: that savepoint was rolled back."""
    if pending := session.info.get(_PENDING):
        del pending[point:]


def emit(session: Session, name: str, **payload: Any) -> None:
    """Announce a domain event to subscribers (realtime, webhooks, jobs) after commit."""
    domain_event = DomainEvent(name, payload)
    on_commit(session, lambda: _dispatch(domain_event))


def _dispatch(domain_event: DomainEvent) -> None:
    for subscriber in list(_subscribers):
        try:
            subscriber(domain_event)
        except Exception:  # a subscriber's failure must not undo or hide a committed change
            log.exception("event subscriber failed", extra={"event": domain_event.name})


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # SQLAlchemy says "commit" for a savepoint's release too: nothing is committed yet
    pending = session.info.pop(_PENDING, [])
    for _, callback in pending:
        try:
            callback()
        except Exception:
            log.exception("after-commit callback failed")


@event.listens_for(Session, "after_soft_rollback")
def _drop_on_rollback(session: Session, previous_transaction) -> None:
    # What a rollback undoes reaches up to the nearest savepoint, or the whole transaction: a
    # flush that fails inside a savepoint rolls back through a sub-transaction of its own.
    undone = previous_transaction
    while undone.parent is not None and not undone.nested:
        undone = undone.parent
    if undone.parent is None:
        session.info.pop(_PENDING, None)
    elif pending := session.info.get(_PENDING):
        pending[:] = [entry for entry in pending if not _inside(entry[0], undone)]


@event.listens_for(Session, "after_transaction_end")
def _drop_on_close(session: Session, transaction) -> None:
    # A transaction closed with neither commit nor rollback (Session.close) announces nothing;
    # after a commit the list is gone already.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def _inside(savepoint, rolled_back) -> bool:
    """Whether ``savepoint`` (None: none) is ``rolled_back`` or nested within it."""
    while savepoint is not None:
        if savepoint is rolled_back:
            return True
        savepoint = savepoint.parent
    return False
