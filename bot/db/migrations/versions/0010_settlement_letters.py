"""settlement letters: the carta finiquito of each paid-off account

One row per account (``account_id`` is unique): issued when the balance reaches zero or a
settlement agreement is completed, with a random verification code anyone can check at
``/constancias/{code}``. ``details`` freezes what the letter says; ``pdf`` holds the
document of record once it has been rendered.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settlement_letters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("verification_code", sa.String(length=16), nullable=False),
        sa.Column("total_paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("paid_off_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("issued_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_settlement_letters_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_letters")),
        sa.UniqueConstraint("account_id", name=op.f("uq_settlement_letters_account_id")),
        sa.UniqueConstraint(
            "verification_code", name=op.f("uq_settlement_letters_verification_code")
        ),
    )


def downgrade() -> None:
    op.drop_table("settlement_letters")
