"""Who is there: an agent is online or away as they say, and offline when no workspace of theirs was seen lately.

Open workspaces say they are there (``touch``) when they connect and every ``HEARTBEAT_S``; kept
in the database, so every server process and the chat widget see the same answer, with or
without Redis.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cape import events
from cape.kit.clock import utcnow
from cape.models import PresenceStatus, Role, User

HEARTBEAT_S = 30
# Not heard from for this long (two missed heartbeats and some): offline.
SEEN_FOR = timedelta(seconds=HEARTBEAT_S * 3)


def touch(session: Session, *, user_id: int, status: PresenceStatus | None = None) -> None:
    """An open workspace of ``user_id`` is there (and, when given, its owner's chosen status)."""
    values: dict = {"seen_at": utcnow()}
    if status is not None:
        values["presence_status"] = status
    session.execute(update(User).where(User.id == user_id).values(**values))


def change(session: Session, *, user_id: int, status: PresenceStatus | None = None) -> str:
    """``touch``, and tell colleagues' screens (event ``presence.changed``) when what they see changes.

    Returns the user's presence now.
    """
    user = session.get_one(User, user_id)
    before = presence_of(user)
    touch(session, user_id=user_id, status=status)
    session.flush()
    session.refresh(user)
    now = presence_of(user)
    if now != before:
        events.emit(session, "presence.changed", user_id=user.id, user_name=user.name, status=now)
    return now


def presence_of(user: User) -> str:
    """``online``, ``away`` or ``offline`` for ``user`` now."""
    if user.seen_at is None or user.seen_at < utcnow() - SEEN_FOR:
        return "offline"
    return user.presence_status.value


def available_agents(session: Session) -> int:
    """How many people who answer customers are online now (the chat widget's "we're here")."""
    return session.scalar(
        select(func.count())
        .select_from(User)
        .where(
            User.is_active,
            User.role.in_([Role.agent, Role.supervisor, Role.admin]),
            User.presence_status == PresenceStatus.online,
            User.seen_at >= utcnow() - SEEN_FOR,
        )
    )
