"""Side effects after commit: never for what a rollback, or a savepoint's rollback, undid."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cape import events
from cape.kit.clock import utcnow
from cape.kit.rawsql import RawSql
from cape.models import Customer, Identity, IdentityKind


@pytest.fixture
def announced():
    seen: list[str] = []
    unsubscribe = events.subscribe(lambda event: seen.append(event.payload["n"]))
    yield seen
    unsubscribe()


@pytest.mark.parametrize("end", ["rollback", "close"])
def test_events_wait_for_the_commit_and_a_transaction_ended_otherwise_drops_them(db, announced, end):
    db.connection()  # events follow a change, inside a transaction
    events.emit(db, "test.happened", n=1)
    assert announced == []
    getattr(db, end)()  # a closed session announces nothing of its unfinished transaction either
    db.connection()
    events.emit(db, "test.happened", n=2)
    db.commit()
    assert announced == [2]


def test_a_rolled_back_savepoint_drops_what_was_announced_inside_it(db, announced):
    db.connection()
    events.emit(db, "test.happened", n=1)
    with db.begin_nested():
        events.emit(db, "test.happened", n=2)  # released with its savepoint: kept
    assert announced == []  # a savepoint's release commits nothing
    with pytest.raises(ValueError), db.begin_nested():
        events.emit(db, "test.happened", n=3)
        with db.begin_nested():
            events.emit(db, "test.happened", n=4)  # released, but inside one rolled back
        raise ValueError
    events.emit(db, "test.happened", n=5)
    db.commit()
    assert announced == [1, 2, 5]


def test_driver_statements_inside_a_savepoint_are_undone_with_it(db):
    insert = "INSERT INTO customers (name, created_at) VALUES (:name, :now)"
    raw = RawSql.of(db)
    raw.execute(insert, {"name": "Kept", "now": raw.datetime(utcnow())})
    with pytest.raises(ValueError), db.begin_nested():
        raw = RawSql.of(db)  # the savepoint begins here: these statements bypass the session
        raw.execute(insert, {"name": "Undone", "now": raw.datetime(utcnow())})
        raise ValueError
    db.commit()
    assert list(db.scalars(select(Customer.name).where(Customer.name.in_(["Kept", "Undone"])))) == ["Kept"]


def test_a_savepoint_rolled_back_by_a_failed_flush_drops_its_announcements(db, announced):
    customer = Customer(name="Twice")
    db.add(customer)
    db.flush()
    with pytest.raises(IntegrityError), db.begin_nested():
        events.emit(db, "test.happened", n=1)
        for _ in range(2):  # the same identity twice: the flush fails inside the savepoint
            db.add(Identity(customer_id=customer.id, kind=IdentityKind.email, value="twice@example.org"))
        db.flush()
    events.emit(db, "test.happened", n=2)
    db.commit()
    assert announced == [2]
