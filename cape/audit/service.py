"""Writing the append-only audit log.

Every admin change (users, teams, channels, customer merges) and every money-moving action
leaves one entry, written in the transaction that makes the change, so the change and its
record commit or roll back together. ``before`` and ``after`` hold plain snapshots of the
subject; secrets (passwords, hashes, channel credentials) never go in them.
"""

from __future__ import annotations

import getpass
import socket
from typing import Any

from sqlalchemy.orm import Session

from cape.models import AuditEntry, User


def record_audit(
    session: Session,
    *,
    actor: User | None,
    event: str,
    subject_type: str | None = None,
    subject_id: int | None = None,
    customer_id: int | None = None,
    conversation_id: int | None = None,
    reason: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry: ``actor`` (None: Cape itself or the command line) did ``event`` to a subject."""
    entry = AuditEntry(
        actor_user_id=actor.id if actor is not None else None,
        event=event,
        subject_type=subject_type,
        subject_id=subject_id,
        customer_id=customer_id,
        conversation_id=conversation_id,
        reason=reason,
        before=before,
        after=after,
    )
    session.add(entry)
    return entry


def change_event(kind: str, before: dict[str, Any], after: dict[str, Any]) -> str:
    """``user.deactivated``, ``user.reactivated`` or ``user.updated`` (likewise for teams and channels),
    from snapshots with an ``is_active`` key."""
    if before["is_active"] and not after["is_active"]:
        return f"{kind}.deactivated"
    if not before["is_active"] and after["is_active"]:
        return f"{kind}.reactivated"
    return f"{kind}.updated"


def command_line_reason(command: str) -> str:
    """Who ran a command-line change, as far as the machine knows (no Cape user signs in there)."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        who = "unknown user"
    return f"command line: cape {command} (by {who} on {socket.gethostname()})"
