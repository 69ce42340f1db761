"""payment codes issued by a processor: voucher number, hosted page, processor customers

A processor's code (Stripe's OXXO voucher, its SPEI bank-transfer instructions) is named in
its webhooks by the processor's own id (the PaymentIntent), which is ``reference``; what the
debtor shows at the OXXO cashier is a different number (``voucher_number``), and the
processor hosts a printable voucher or instructions page (``hosted_url``). Stripe gives a
customer one CLABE for good, so the customer made for a debtor is kept
(``processor_customers``).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payment_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voucher_number", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hosted_url", sa.String(length=500), nullable=True))
    op.create_table(
        "processor_customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("debtor_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["debtor_id"], ["debtors.id"], name=op.f("fk_processor_customers_debtor_id_debtors")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_processor_customers")),
        sa.UniqueConstraint("provider", "debtor_id", name="uq_processor_customers_debtor"),
    )


def downgrade() -> None:
    op.drop_table("processor_customers")
    with op.batch_alter_table("payment_codes", schema=None) as batch_op:
        batch_op.drop_column("hosted_url")
        batch_op.drop_column("voucher_number")
