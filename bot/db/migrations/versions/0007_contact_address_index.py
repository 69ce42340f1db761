"""contact points: an index on the address alone

A first contact looks up which debtor a number belongs to whatever the channel, inside the
webhook's store: without this index that was a scan of every contact point (EXPLAIN QUERY
PLAN: SCAN contact_points), which grows with the portfolio (docs/performance.md, part 5).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact_points", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contact_points_address"), ["address"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("contact_points", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_points_address"))
