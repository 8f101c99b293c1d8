"""Inserts that a unique constraint guards against a concurrent twin."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cape.kit.errors import Conflict


def flush_or_conflict(session: Session, message: str) -> None:
    """Flush in a savepoint; a row that a concurrent request inserted first (a unique constraint
    broken after our check found nothing) becomes ``Conflict(message)``, not a server error."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(message) from exc
