"""Daily spend counters: what each agent gave within authority per day and currency.

The counter is locked while an action spends from it, and given back when an action fails or
is reversed.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cape.models import SpendCounter, User


def lock_spend_counter(session: Session, *, user: User, day: date, currency: str) -> SpendCounter:
    """The agent's counter for the day, created if missing and locked until the transaction ends."""
    # Race: two requests by the same agent could both read "spent" before either adds to it and
    # together overspend the daily budget. The counter row is created if missing, then locked
    # FOR UPDATE until commit, so the check and the spend below are one atomic step. (SQLite
    # has no row locks; there the app's BEGIN IMMEDIATE already serialises every writer.)
    values = {"user_id": user.id, "day": day, "currency": currency, "spent": 0}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(SpendCounter).values(**values).on_conflict_do_nothing())
    return session.scalars(
        select(SpendCounter)
        .where(SpendCounter.user_id == user.id, SpendCounter.day == day, SpendCounter.currency == currency)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def give_back_spend(session: Session, *, user_id: int, day: date, currency: str, amount: int) -> None:
    """Return ``amount`` to the agent's counter for ``day``; a negative amount spends it again."""
    # Computed in the database (spent = spent - amount), not read-modify-write, so a concurrent
    # spend committed in between is kept.
    session.execute(
        update(SpendCounter)
        .where(SpendCounter.user_id == user_id, SpendCounter.day == day, SpendCounter.currency == currency)
        .values(spent=SpendCounter.spent - amount)
    )


def spent_on(session: Session, *, user_id: int, day: date, currency: str) -> int:
    """What the agent gave within authority on ``day`` in ``currency`` (read only, nothing locked)."""
    spent = session.scalar(
        select(SpendCounter.spent).where(
            SpendCounter.user_id == user_id, SpendCounter.day == day, SpendCounter.currency == currency
        )
    )
    return int(spent or 0)
