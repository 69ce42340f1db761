"""How values are written to debtors in Mexican Spanish: dates, money, method names.

The one place for it: the actions, the console and the campaigns all write through here.
"""

from __future__ import annotations

from datetime import date, datetime

from bot.domain.money import format_money

MONTHS = (
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
)
WEEKDAYS = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
METHOD_NAMES = {
    "oxxo": "efectivo en OXXO",
    "spei": "transferencia SPEI",
    "bank_ref": "depósito bancario",
    "card": "tarjeta, con enlace de pago",
}


def spoken_date(value: date) -> str:
    """``2026-11-27`` → ``viernes 27 de noviembre de 2026``."""
    return f"{WEEKDAYS[value.weekday()]} {value.day} de {MONTHS[value.month - 1]} de {value.year}"


def written_date(value: date) -> str:
    """``2026-11-24`` → ``24 de noviembre de 2026`` (no weekday, for templates)."""
    return f"{value.day} de {MONTHS[value.month - 1]} de {value.year}"


def spoken_datetime(value: datetime) -> str:
    """A local date and time, e.g. ``jueves 26 de noviembre de 2026, 12:00 h``."""
    return f"{spoken_date(value.date())}, {value:%H:%M} h"


def money(cents: int) -> str:
    return format_money(cents)


def days_past_due_text(days: int) -> str:
    if days <= 0:
        return "al corriente"
    return "1 día de atraso" if days == 1 else f"{days} días de atraso"
