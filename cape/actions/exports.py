"""Exports for supervisors and finance: the audit log and the built-in ledger as CSV, read in batches."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cape.models import AuditEntry, LedgerEntry

AUDIT_COLUMNS = (
    "id", "created_at", "actor_user_id", "actor_name", "event", "action_id", "customer_id",
    "conversation_id", "reason", "before", "after", "subject_type", "subject_id",
)  # fmt: skip
LEDGER_COLUMNS = ("id", "created_at", "action_id", "customer_id", "kind", "amount", "currency", "code", "memo")


def audit_csv(session: Session) -> Iterator[str]:
    """The whole audit log as CSV, oldest first."""

    def row(entry: AuditEntry) -> list:
        return [
            entry.id, entry.created_at.isoformat(), entry.actor_user_id, entry.actor.name if entry.actor else "",
            entry.event, entry.action_id, entry.customer_id, entry.conversation_id, entry.reason or "",
            json.dumps(entry.before, sort_keys=True) if entry.before is not None else "",
            json.dumps(entry.after, sort_keys=True) if entry.after is not None else "",
            entry.subject_type or "", entry.subject_id,
        ]  # fmt: skip

    query = select(AuditEntry).options(selectinload(AuditEntry.actor))
    return _csv(session, query, AuditEntry, AUDIT_COLUMNS, row)


def ledger_csv(session: Session) -> Iterator[str]:
    """The built-in ledger as CSV for finance, oldest first; amounts in minor units."""

    def row(entry: LedgerEntry) -> list:
        return [
            entry.id, entry.created_at.isoformat(), entry.action_id, entry.customer_id, entry.kind,
            entry.amount, entry.currency, entry.code or "", entry.memo or "",
        ]  # fmt: skip

    return _csv(session, select(LedgerEntry), LedgerEntry, LEDGER_COLUMNS, row)


def _csv(session: Session, query, model, columns: tuple[str, ...], row, *, batch: int = 500) -> Iterator[str]:
    """Rows in id order, read in batches; text that a spreadsheet would run as a formula is defused."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    last_id = 0
    while True:
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        rows = session.scalars(query.where(model.id > last_id).order_by(model.id).limit(batch)).all()
        if not rows:
            return
        for item in rows:
            writer.writerow([_cell(value) for value in row(item)])
        last_id = rows[-1].id


def _cell(value: Any) -> Any:
    # Free text written by people (reasons, notes) must not become a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
