"""Money: integer centavos inside, formatted only at the edges."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation


class InvalidAmount(ValueError):
    pass


def pesos_to_cents(value: str | Decimal | int | float) -> int:
    """``"1234.50"`` → ``123450``. Raises :class:`InvalidAmount` on anything else."""
    try:
        amount = Decimal(str(value).strip().replace(",", "").removeprefix("$"))
    except InvalidOperation as exc:
        raise InvalidAmount(f"'{value}' is not an amount in pesos (use 1234.50)") from exc
    if not amount.is_finite():
        raise InvalidAmount(f"'{value}' is not an amount in pesos (use 1234.50)")
    if amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise InvalidAmount(f"'{value}' has more than two decimals")
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def cents_to_pesos(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def format_money(cents: int, currency: str = "MXN") -> str:
    """``125000`` → ``$1,250.00`` (other currencies carry their code)."""
    sign = "-" if cents < 0 else ""
    text = f"{sign}${abs(cents) // 100:,}.{abs(cents) % 100:02d}"
    return text if currency == "MXN" else f"{text} {currency}"


def round_up_to_peso(cents: int) -> int:
    """Offers are quoted in whole pesos, rounded up so the floor is never crossed."""
    return -(-cents // 100) * 100
