"""rcs: schema for RCS Business Messaging and channel fallback (issue 5)

A contact point can be marked unreachable by its channel (RBM 404: the number is not
RCS-capable; WhatsApp 131026): company-started messages then fall back to the next channel.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact_points", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unreachable_at", bot.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("unreachable_reason", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contact_points", schema=None) as batch_op:
        batch_op.drop_column("unreachable_reason")
        batch_op.drop_column("unreachable_at")
