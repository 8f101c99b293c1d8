"""presence: whether an agent is online, away or (not seen lately) offline

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cape.models.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column(
                "presence_status",
                sa.Enum("online", "away", name="presence_status", native_enum=False, create_constraint=True, length=32),
                server_default="online",
                nullable=False,
            )
        )
        batch.add_column(sa.Column("seen_at", cape.models.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("seen_at")
        batch.drop_column("presence_status")
