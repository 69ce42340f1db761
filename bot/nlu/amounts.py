"""Spanish (Mexico) money amounts, installment counts and payment methods.

:func:`parse_amount` reads pesos the way people type them: ``$1,200``, ``1.200,50``, ``1.5k``,
``2mil``, ``mil quinientos``, ``4 mil quinientos``, ``medio millón``, ``500 varos``. Spelled
numbers go through ``text_to_num.alpha2digit(..., "es", threshold=0)``, whose gotchas are fixed
around it: "unos" read as 1 (dropped first), "medio millón" (rewritten first), "mil 500" →
``1000 500`` and "4 mil quinientos" → ``4 1500`` (merged by :func:`_merge_run`), "centavos" →
``1/100`` (read before it).

Separators: with both ``,`` and ``.`` present the last one is the decimal point (``1,200.50``,
``1.200,50``); with one kind, repeated or followed by exactly three digits it groups thousands
(``1,200``, ``1.200``), otherwise it is the decimal point (``1.5``, ``99,50``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from text_to_num import alpha2digit

from bot.nlu import fold

__all__ = [
    "AmountMention",
    "PAYMENT_METHODS",
    "find_amounts",
    "parse_amount",
    "parse_installments",
    "parse_payment_method",
]

CURRENCY_WORDS = r"(?:pesos?|pesitos|varos|baros|bolas|mxn|m\.?n\.?|mn)"
# Words after a number that make it something other than money.
NOT_MONEY_AFTER = (
    r"\s*(?:%|por ciento|dias?|semanas?|mes(?:es)?|quincenas?|anos?|pagos?|mensualidades|"
    r"parcialidades|abonos|plazos|cuotas|horas?|hrs?|am|pm|de (?:ene|feb|mar|abr|may|jun|jul|ago"
    r"|sep|oct|nov|dic)\w*|gracias|disculpas|perdon\w*)\b|\s*[/:-]\d"
)

# Folded text → text alpha2digit reads right. Applied in order.
REWRITES: tuple[tuple[str, str], ...] = (
    (r"\$\s+(?=\d)", "$"),  # "$ 750" → "$750"
    (r"(?<=\d)(?=mil\b|millon|lucas?\b)", " "),  # "2mil" → "2 mil"
    (r"\b(?:unos|unas|como|aprox\w*|alrededor de|mas o menos)\b", " "),  # "unos" is not 1
    (r"\b(?:1|un|uno) millon(?:es)? y medio\b", "1500000"),
    (r"\bmedio millon\b", "500000"),
    (r"\bveintiun\b", "veintiún"),  # alpha2digit needs these three accents
    (r"\bveintidos\b", "veintidós"),
    (r"\bveintitres\b", "veintitrés"),
    (r"\bcentavos?\b", "ctvs"),  # alpha2digit turns "centavos" into "1/100"
)
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A number, a multiplier word or digits that alpha2digit left apart ("3 1000", "1000 500").
RUN = re.compile(r"\d+(?:\.\d+)?(?:\s+(?:y\s+)?\d+(?:\.\d+)?)*")
THOUSANDS_SUFFIX = re.compile(r"(\d+(?:\.\d+)?)\s*(?:k|lucas?)\b")
CENTS = re.compile(r"(\d+)\s+(?:pesos?\s+)?con\s+(\d{1,2})\s+ctvs")


class AmountMention(NamedTuple):
    """An amount found in a longer text: character offsets into it, and its value in pesos."""

    start: int
    end: int
    value: Decimal


def _canonical_number(token: str) -> str:
    """``1,200.50``/``1.200,50``/``1,200``/``1.5`` → ``1200.50``/``1200.50``/``1200``/``1.5``."""
    commas, dots = token.count(","), token.count(".")
    if commas and dots:
        decimal_mark = "," if token.rfind(",") > token.rfind(".") else "."
        thousands = "." if decimal_mark == "," else ","
        return token.replace(thousands, "").replace(decimal_mark, ".")
    mark = "," if commas else "." if dots else ""
    if not mark:
        return token
    groups = token.split(mark)
    if len(groups) > 2 or len(groups[-1]) == 3:
        return "".join(groups)
    return ".".join(groups)


def _merge_run(numbers: list[Decimal]) -> list[Decimal]:
    """Join what alpha2digit left apart: ``3 1000`` → 3000, ``4 1500`` → 4500, ``1000 500`` → 1500.

    A number followed by one of at least a thousand that it can multiply ("4 mil…") is
    multiplied by that power of a thousand; a round thousand followed by less than a thousand
    ("mil 500") is added to. Anything else ("500 300") stays apart.
    """
    merged: list[Decimal] = []
    for number in numbers:
        if merged:
            previous = merged[-1]
            scale = next((s for s in (Decimal(10**6), Decimal(1000)) if number >= s), None)
            if scale is not None and previous < scale:
                merged[-1] = previous * scale + (number - scale)
                continue
            if previous >= 1000 and previous % 1000 == 0 and number < 1000:
                merged[-1] = previous + number
                continue
        merged.append(number)
    return merged


class _Candidate(NamedTuple):
    value: Decimal
    is_money: bool


def _candidates(text: str) -> list[_Candidate]:
    folded = fold(text)
    for pattern, replacement in REWRITES:
        folded = re.sub(pattern, replacement, folded)
    folded = NUMBER.sub(lambda m: _canonical_number(m.group()), folded)
    folded = THOUSANDS_SUFFIX.sub(lambda m: f"{Decimal(m[1]) * 1000:f} pesos", folded)
    folded = alpha2digit(folded, "es", threshold=0)
    folded = CENTS.sub(lambda m: f"{m[1]}.{int(m[2]):02d} pesos", folded)
    found: list[_Candidate] = []
    for run in RUN.finditer(folded):
        before, after = folded[: run.start()], folded[run.end() :]
        tokens = [Decimal(n) for n in re.findall(r"\d+(?:\.\d+)?", run.group())]
        day_of_month = re.search(r"\b(?:el|dia)\s+$", before) and tokens[0] <= 31
        if day_of_month or re.match(NOT_MONEY_AFTER, after) or re.search(r"[/:-]$", before):
            continue
        is_money = bool(
            before.endswith("$")
            or re.match(rf"\s*{CURRENCY_WORDS}\b", after)
            or len(tokens) > 1
            or any(token >= 1000 for token in tokens)
        )
        if len(tokens) > 1 and "y" in run.group().split() and len(_merge_run(tokens)) > 1:
            continue  # "5 y 6" is two numbers, not one amount
        found.extend(_Candidate(value, is_money) for value in _merge_run(tokens))
    return found


def _as_pesos(value: Decimal) -> Decimal | None:
    if value <= 0:
        return None
    if value == value.to_integral_value():
        return Decimal(int(value))
    return value.quantize(Decimal("0.01"))


def parse_amount(text: str) -> Decimal | None:
    """The amount in pesos a Spanish phrase names (``"mil quinientos"`` → 1500), else ``None``.

    In a longer text the first number marked as money ("$", "pesos", "mil", "k") wins, else the
    first number that is not a count of days, payments or a day of the month.
    """
    try:
        candidates = _candidates(text)
    except InvalidOperation:
        return None
    money = [c for c in candidates if c.is_money] or candidates
    return _as_pesos(money[0].value) if money else None


_MONEY_WORD = (
    r"(?:\d+(?:[.,]\d+)*|(?:un|uno|una|dos|tres|cuatro|cinco|seis|siete|ocho|nueve|diez|once|doce|trece"
    r"|catorce|quince|dieci\w+|veinte|veinti\w+|treinta|cuarenta|cincuenta|sesenta|setenta"
    r"|ochenta|noventa|cien|ciento|doscientos|trescientos|cuatrocientos|quinientos|seiscientos"
    r"|setecientos|ochocientos|novecientos|mil|millon|millones|medio)\b)"
)
AMOUNT_SPOTTER = re.compile(
    rf"(?P<dollar>\$\s*)?\b{_MONEY_WORD}(?:\s*(?:y\s+)?{_MONEY_WORD})*"
    rf"(?:\s*(?P<k>k|lucas?)\b)?(?:\s+(?P<currency>{CURRENCY_WORDS})\b)?"
)


def find_amounts(text: str) -> list[AmountMention]:
    """Unmistakable amounts in a whole message: ``$…``, ``…k``, ``… pesos``, ``mil…``, ``1,200``."""
    folded = fold(text)
    mentions: list[AmountMention] = []
    for match in AMOUNT_SPOTTER.finditer(folded):
        span = match.group()
        unmistakable = (
            match["dollar"]
            or match["k"]
            or match["currency"]
            or re.search(r"\b(?:mil|millon|millones)\b|\d,\d{3}\b", span)
        )
        if not unmistakable or re.match(NOT_MONEY_AFTER, folded[match.end() :]):
            continue
        value = parse_amount(text[match.start() : match.end()])
        if value is not None:
            mentions.append(AmountMention(match.start(), match.end(), value))
    return mentions


# ---------------------------------------------------------------------------------------------
# Installments and payment methods

INSTALLMENT_UNITS = (
    r"(?:pagos?|meses|mensualidades|quincenas|semanas|parcialidades|partes|abonos|cuotas|plazos"
    r"|exhibiciones|letras)"
)
SINGLE_PAYMENT = re.compile(
    r"\b(?:1 solo pago|(?:1|un) pago unico|de contado|1 sola exhibicion|en 1 exhibicion"
    r"|1 solo abono|todo junto|1 sola vez)\b"
)
MAX_INSTALLMENTS = 72


def parse_installments(text: str) -> int | None:
    """How many payments a phrase asks for ("en 6 meses", "seis mensualidades"), else ``None``."""
    folded = fold(text)
    for pattern, replacement in REWRITES:
        folded = re.sub(pattern, replacement, folded)
    folded = alpha2digit(folded, "es", threshold=0)
    if SINGLE_PAYMENT.search(folded):
        return 1
    match = re.search(rf"(?<![$\d.,])(\d+)\s*{INSTALLMENT_UNITS}\b", folded) or re.fullmatch(
        r"\s*(?:en|a)?\s*(\d+)\s*", folded
    )
    if not match:
        return None
    count = int(match[1])
    return count if 1 <= count <= MAX_INSTALLMENTS else None


PAYMENT_METHODS = ("oxxo", "spei", "card", "bank_deposit")
# Checked in this order, so "depósito en Oxxo" is oxxo and "transferencia bancaria" is spei.
PAYMENT_METHOD_WORDS: tuple[tuple[str, str], ...] = (
    ("oxxo", r"\b(?:o+x+o+|ocso|tiendas? de conveniencia|tiendita|7 ?eleven|seven eleven)\b"),
    ("spei", r"\b(?:spei|tra[n]?s?f[ei]r\w*|clabe|banca (?:en linea|movil)|app del banco)\b"),
    ("card", r"\b(?:tarjeta|tdc|tdd|debito|credito|card|visa|master ?card|amex)\b"),
    ("bank_deposit", r"\b(?:deposit\w*|ventanilla|bancos?|bancaria|practicaja|cajero)\b"),
)


def parse_payment_method(text: str) -> str | None:
    """``oxxo``, ``spei``, ``card`` or ``bank_deposit`` for a phrase naming one, else ``None``."""
    folded = fold(text)
    if folded.strip() in PAYMENT_METHODS:  # already canonical (e.g. from a synonym or button)
        return folded.strip()
    return next((m for m, words in PAYMENT_METHOD_WORDS if re.search(words, folded)), None)
