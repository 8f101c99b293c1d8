"""The connector interface: how an executed action is carried out in the world.

Two kinds exist. An in-transaction connector (the ledger) does its work in the same database
transaction as the decision, so both commit or neither does. A deferred connector (the store
webhook) is called by a job after the decision commits, with the action id as idempotency key,
and its answer marks the action done or failed; without a clear answer it stays queued and is
sent again. See docs/connectors.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from cape.models import Action


@dataclass(frozen=True)
class Outcome:
    """What the connector reports: done (with the store's reference) or not (with why).

    ``final`` says whether a "not done" is an answer. True: the store refused, nothing was done,
    the action fails. False: no clear answer (timeout, connection error, 5xx after the last
    attempt): the store may have done it, so the action stays queued and is sent again later
    with the same idempotency key.
    """

    done: bool
    reference: str | None = None
    error: str | None = None
    attempts: int = 1
    final: bool = True


class Connector:
    """Subclass and set ``name``; implement ``carry_out`` (in transaction) or ``deliver`` (deferred)."""

    name: str = "connector"
    # True: ``deliver`` runs in a job after commit; False: ``carry_out`` runs in the transaction.
    deferred: bool = False

    def carry_out(self, session: Session, action: Action) -> Outcome:
        """Do the work inside the caller's transaction (never commit here)."""
        raise TypeError(f"connector {self.name!r} is deferred: it delivers after commit, not in the transaction")

    def deliver(self, payload: dict[str, Any], *, idempotency_key: str) -> Outcome:
        """Do the work outside any transaction; may be called again with the same key."""
        raise TypeError(f"connector {self.name!r} carries actions out in the transaction; it has no delivery")


def action_payload(action: Action) -> dict[str, Any]:
    """The JSON description of an action that connectors send to the outside world."""
    return {
        "id": action.id,
        "type": action.type.value,
        "amount": action.amount,
        "currency": action.currency,
        "reason": action.reason,
        "note": action.note,
        "customer_id": action.customer_id,
        "conversation_id": action.conversation_id,
        "order_id": action.order_id,
        "items": action.items,
        "details": action.details,
        "reverses_id": action.reverses_id,
        "requested_by_id": action.requested_by_id,
        "approved_by_id": action.decided_by_id,
        "executed_at": action.executed_at.isoformat() if action.executed_at else None,
    }
