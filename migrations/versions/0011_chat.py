"""chat: the widget's visitors, and the address a conversation's replies go to when asked by email

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cape.models.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "chat_visitors",
        sa.Column("channel_id", _ID, nullable=False),
        sa.Column("visitor_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", _ID, nullable=True),
        sa.Column("conversation_id", _ID, nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("verified_email", sa.String(length=320), nullable=True),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("replies_by_email", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("last_seen_at", cape.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("created_at", cape.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], name=op.f("fk_chat_visitors_channel_id_channels")),
        sa.ForeignKeyConstraint(
            ["conversation_id"], ["conversations.id"], name=op.f("fk_chat_visitors_conversation_id_conversations")
        ),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_chat_visitors_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_visitors")),
        sa.UniqueConstraint("visitor_id", name=op.f("uq_chat_visitors_visitor_id")),
    )
    op.create_index(op.f("ix_chat_visitors_channel_id"), "chat_visitors", ["channel_id", "external_id"], unique=False)
    # A plain ADD COLUMN on both databases: the table is not copied, its indexes stay as they are.
    op.add_column("conversations", sa.Column("reply_to", sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("reply_to")
    op.drop_index(op.f("ix_chat_visitors_channel_id"), table_name="chat_visitors")
    op.drop_table("chat_visitors")
