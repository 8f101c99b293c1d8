"""The built-in connector: a book of refunds, credits, codes and gestures for finance to settle."""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from cape.actions.connectors.base import Connector, Outcome
from cape.models import Action, ActionType, LedgerEntry

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread over the phone


def new_discount_code() -> str:
    part = lambda: "".join(secrets.choice(_CODE_ALPHABET) for _ in range(4))  # noqa: E731
    return f"CAPE-{part()}-{part()}"


class LedgerConnector(Connector):
    name = "ledger"
    deferred = False

    def carry_out(self, session: Session, action: Action) -> Outcome:
        """Write one ledger entry; a discount code is minted here and returned as the reference."""
        code = new_discount_code() if action.type is ActionType.discount_code and action.reverses_id is None else None
        entry = LedgerEntry(
            action_id=action.id,
            customer_id=action.customer_id,
            kind="reversal" if action.reverses_id else action.type.value,
            amount=action.amount,
            currency=action.currency,
            code=code,
            memo=action.reason,
        )
        session.add(entry)
        session.flush()
        return Outcome(done=True, reference=code or f"ledger:{entry.id}")
