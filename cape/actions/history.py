"""The history every action change leaves: an Activity on the conversation and an AuditEntry.

Both are written in the transaction that makes the change; the audit log is append-only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cape.models import Action, Activity, AuditEntry, User


def snapshot(action: Action) -> dict[str, Any]:
    """The fields of an action the audit log keeps as "before" and "after"."""
    return {
        "type": action.type.value,
        "status": action.status.value,
        "amount": action.amount,
        "currency": action.currency,
        "order_id": action.order_id,
        "requested_by_id": action.requested_by_id,
        "decided_by_id": action.decided_by_id,
        "over_authority": list(action.over_authority or []),
        "fulfilment_status": action.fulfilment_status.value if action.fulfilment_status else None,
        "fulfilment_reference": action.fulfilment_reference,
    }


def record_activity(session: Session, *, action: Action, actor: User | None, kind: str, **extra: Any) -> None:
    """The entry in the conversation's history (and the customer's timeline) for this change."""
    session.add(
        Activity(
            customer_id=action.customer_id,
            conversation_id=action.conversation_id,
            actor_user_id=actor.id if actor else None,
            kind=kind,
            data={
                "action_id": action.id,
                "type": action.type.value,
                "amount": action.amount,
                "currency": action.currency,
                "reason": action.reason,
                **extra,
            },
        )
    )


def write_audit(
    session: Session,
    *,
    actor: User | None,
    event: str,
    action: Action | None = None,
    reason: str | None = None,
    before: dict | None = None,
    after: dict | None = None,
) -> None:
    """One row of the append-only audit log (actions, decisions, failures, authority changes)."""
    session.add(
        AuditEntry(
            actor_user_id=actor.id if actor else None,
            event=event,
            action_id=action.id if action else None,
            customer_id=action.customer_id if action else None,
            conversation_id=action.conversation_id if action else None,
            reason=reason,
            before=before,
            after=after,
        )
    )
