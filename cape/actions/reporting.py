"""After-the-fact review for supervisors: net spend by agent, type and reason, and actions per resolution."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cape.models import Action, ActionStatus, Conversation, ConversationStatus, User


@dataclass(frozen=True)
class SpendRow:
    key: str
    currency: str
    count: int
    total: int


@dataclass(frozen=True)
class Review:
    since: datetime
    by_agent: list[SpendRow]
    by_type: list[SpendRow]
    by_reason: list[SpendRow]
    resolved_conversations: int
    actions_on_resolved: int

    @property
    def actions_per_resolved_conversation(self) -> float:
        return round(self.actions_on_resolved / self.resolved_conversations, 2) if self.resolved_conversations else 0.0


def review(session: Session, *, since: datetime) -> Review:
    """After-the-fact review for supervisors: net spend by agent, type and reason since a time."""
    executed = (Action.status == ActionStatus.executed, Action.executed_at >= since)

    def grouped(key_column) -> list[SpendRow]:
        rows = session.execute(
            select(key_column, Action.currency, func.count(), func.sum(Action.amount))
            .where(*executed)
            .group_by(key_column, Action.currency)
            .order_by(func.sum(Action.amount).desc())
        )
        return [SpendRow(str(k.value if hasattr(k, "value") else k), c, n, int(t or 0)) for k, c, n, t in rows]

    by_agent = session.execute(
        select(User.name, Action.currency, func.count(), func.sum(Action.amount))
        .join(User, User.id == Action.requested_by_id)
        .where(*executed)
        .group_by(User.id, User.name, Action.currency)
        .order_by(func.sum(Action.amount).desc())
    )
    resolved = select(Conversation.id).where(
        Conversation.status == ConversationStatus.resolved, Conversation.resolved_at >= since
    )
    resolved_count = session.scalar(select(func.count()).select_from(resolved.subquery())) or 0
    on_resolved = (
        session.scalar(
            select(func.count()).where(
                Action.status == ActionStatus.executed,
                Action.reverses_id.is_(None),
                Action.conversation_id.in_(resolved),
            )
        )
        or 0
    )
    return Review(
        since=since,
        by_agent=[SpendRow(name, c, n, int(t or 0)) for name, c, n, t in by_agent],
        by_type=grouped(Action.type),
        by_reason=grouped(Action.reason),
        resolved_conversations=resolved_count,
        actions_on_resolved=on_resolved,
    )
