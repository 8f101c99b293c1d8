"""order delivery: the carrier, tracking number and delivery time a shop reports

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cape.models.base

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("carrier", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("tracking_number", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("delivered_at", cape.models.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("delivered_at")
        batch.drop_column("tracking_number")
        batch.drop_column("carrier")
