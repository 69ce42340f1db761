"""The sample account every test and benchmark seeds, with only what differs overridden."""

from __future__ import annotations

from datetime import date
from typing import Any

from bot.domain.debtors import AccountData

SAMPLE_ACCOUNT: dict[str, Any] = {
    "birth_date": date(1985, 3, 15),  # the verification answer: "15/03/1985"
    "creditor": "Banco Ejemplo",
    "product": "Tarjeta de crédito",
    "principal_cents": 1_000_000,
    "interest_cents": 150_000,
    "fees_cents": 50_000,
    "due_date": date(2026, 10, 24),
}


def account_data(external_id: str, full_name: str, phone: str, **overrides: Any) -> AccountData:
    """A $12,000.00 credit-card account of ``full_name`` at ``phone``."""
    return AccountData(
        external_id=external_id,
        full_name=full_name,
        phone=phone,
        **{**SAMPLE_ACCOUNT, **overrides},
    )
