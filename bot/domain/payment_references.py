"""Which reference a person pays with, of a payment code."""

from __future__ import annotations

from bot.db.models import PaymentCode


def shown_reference(code: PaymentCode) -> str:
    """What the debtor pays with: the CLABE of a transfer, a processor's voucher number, or
    the reference itself (a processor's ``reference`` is its own id, not for people)."""
    if code.method == "spei":
        return code.clabe or code.reference
    return code.voucher_number or code.reference
