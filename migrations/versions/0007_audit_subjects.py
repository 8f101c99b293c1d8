"""audit subjects: audit entries name what they changed (user, team, channel, customer); teams can be deactivated

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, not batch mode: on SQLite a batch operation may copy the table, which would
# drop the triggers that keep audit_entries append-only.


def upgrade() -> None:
    op.add_column("audit_entries", sa.Column("subject_type", sa.String(length=32), nullable=True))
    op.add_column(
        "audit_entries", sa.Column("subject_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
    )
    op.create_index(
        op.f("ix_audit_entries_subject_type"), "audit_entries", ["subject_type", "subject_id", "id"], unique=False
    )
    op.add_column("teams", sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    op.drop_column("teams", "is_active")
    op.drop_index(op.f("ix_audit_entries_subject_type"), table_name="audit_entries")
    op.drop_column("audit_entries", "subject_id")
    op.drop_column("audit_entries", "subject_type")
