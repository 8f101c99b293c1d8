"""query indexes: the inbox's views (mine, unassigned, a team's, by status; partial, so that ingest
updates only those a conversation appears in), and the periodic scans (stalled email sends, stale
action deliveries, rate-limit pruning)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, index, columns, partial index condition)
INDEXES = [
    ("conversations", "ix_conversations_assigned", ["assignee_id", "last_activity_at", "id"], "assignee_id IS NOT NULL"),
    ("conversations", "ix_conversations_unassigned", ["last_activity_at", "id"], "assignee_id IS NULL"),
    ("conversations", "ix_conversations_assigned_status", ["assignee_id", "status", "last_activity_at", "id"],
     "assignee_id IS NOT NULL"),
    ("conversations", "ix_conversations_unassigned_status", ["status", "last_activity_at", "id"], "assignee_id IS NULL"),
    # The same for SQLite, which would otherwise tie it with ix_conversations_status (see the model).
    ("conversations", "ix_conversations_status_unassigned", ["status", "assignee_id", "last_activity_at", "id"],
     "assignee_id IS NULL"),
    ("conversations", "ix_conversations_team", ["team_id", "last_activity_at", "id"], "team_id IS NOT NULL"),
    ("conversations", "ix_conversations_team_status", ["team_id", "status", "last_activity_at", "id"],
     "team_id IS NOT NULL"),
    ("messages", "ix_messages_queued", ["created_at", "id"], "delivery_status = 'queued'"),
    ("actions", "ix_actions_fulfilment_status", ["fulfilment_status", "executed_at"], None),
    ("rate_limit_hits", "ix_rate_limit_hits_scope_created", ["scope", "created_at"], None),
]  # fmt: skip


def upgrade() -> None:
    for table, name, columns, where in INDEXES:
        partial = {} if where is None else {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)}
        op.create_index(name, table, columns, unique=False, **partial)
    # Replaced by ix_conversations_assigned and ix_conversations_unassigned, which split it in two.
    op.drop_index("ix_conversations_assignee_id", table_name="conversations")


def downgrade() -> None:
    op.create_index("ix_conversations_assignee_id", "conversations", ["assignee_id", "last_activity_at", "id"])
    for table, name, _columns, _where in reversed(INDEXES):
        op.drop_index(name, table_name=table)
