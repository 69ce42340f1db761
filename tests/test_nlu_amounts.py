"""Spanish money, installment and payment-method phrases (bot.nlu.amounts)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.nlu.amounts import find_amounts, parse_amount, parse_installments, parse_payment_method

AMOUNTS = [
    ("500", "500"),
    ("$500", "500"),
    ("$1,200", "1200"),
    ("1,200.50", "1200.50"),
    ("1200.50", "1200.50"),
    ("1.200,50", "1200.50"),
    ("1.200", "1200"),
    ("99,50", "99.50"),
    ("mil quinientos", "1500"),
    ("dos mil", "2000"),
    ("4 mil quinientos", "4500"),
    ("3 mil", "3000"),
    ("mil 500", "1500"),
    ("2 mil 500", "2500"),
    ("1.5k", "1500"),
    ("2k", "2000"),
    ("2 K", "2000"),
    ("500 varos", "500"),
    ("500 pesos", "500"),
    ("quinientos pesitos", "500"),
    ("medio millón", "500000"),
    ("medio millon", "500000"),
    ("un millón y medio", "1500000"),
    ("3 millones quinientos mil", "3500000"),
    ("$ 750", "750"),
    ("2mil", "2000"),
    ("unos quinientos", "500"),
    ("veintidos mil", "22000"),
    ("mil quinientos cincuenta y cinco pesos con cincuenta centavos", "1555.50"),
    ("te puedo dar 800 el viernes", "800"),
    ("en 3 pagos de 500", "500"),
    ("el 15 te pago 500", "500"),
    ("$1,200.", "1200"),
]


@pytest.mark.parametrize(("phrase", "expected"), AMOUNTS)
def test_parse_amount_reads_pesos(phrase: str, expected: str) -> None:
    assert parse_amount(phrase) == Decimal(expected)


@pytest.mark.parametrize("phrase", ["", "nada", "cero", "mil gracias", "15/12", "el 15", "hola"])
def test_parse_amount_gives_none_without_an_amount(phrase: str) -> None:
    assert parse_amount(phrase) is None


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("en 6 meses", 6),
        ("3 pagos", 3),
        ("seis mensualidades", 6),
        ("6", 6),
        ("a 12 quincenas", 12),
        ("a doce quincenas", 12),
        ("3 pagos de 500", 3),
        ("un solo pago", 1),
        ("de contado", 1),
        ("en 4 parcialidades", 4),
    ],
)
def test_parse_installments(phrase: str, expected: int) -> None:
    assert parse_installments(phrase) == expected


@pytest.mark.parametrize("phrase", ["$500", "en 100 meses", "0", "mensualidades", "hola"])
def test_parse_installments_gives_none_without_a_count(phrase: str) -> None:
    assert parse_installments(phrase) is None


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("oxxo", "oxxo"),
        ("OXXO", "oxxo"),
        ("oxo", "oxxo"),
        ("tienda de conveniencia", "oxxo"),
        ("spei", "spei"),
        ("transferencia", "spei"),
        ("trasferencia", "spei"),
        ("transfer", "spei"),
        ("clabe", "spei"),
        ("tarjeta", "card"),
        ("debito", "card"),
        ("débito", "card"),
        ("crédito", "card"),
        ("card", "card"),
        ("depósito", "bank_deposit"),
        ("deposito", "bank_deposit"),
        ("ventanilla", "bank_deposit"),
        ("banco", "bank_deposit"),
        ("practicaja", "bank_deposit"),
        ("depósito en oxxo", "oxxo"),
        ("transferencia bancaria", "spei"),
    ],
)
def test_parse_payment_method(phrase: str, expected: str) -> None:
    assert parse_payment_method(phrase) == expected


def test_parse_payment_method_gives_none_without_one() -> None:
    assert parse_payment_method("no sé todavía") is None


def test_find_amounts_gives_offsets_into_the_original_text() -> None:
    text = "te puedo dar $1,200 el viernes y 1.5k el 15, mil gracias"
    assert [(text[m.start : m.end], m.value) for m in find_amounts(text)] == [
        ("$1,200", Decimal(1200)),
        ("1.5k", Decimal(1500)),
    ]


def test_find_amounts_reads_spelled_amounts() -> None:
    text = "ok 500 pesos mañana y dos mil quinientos el lunes"
    assert [(text[m.start : m.end], m.value) for m in find_amounts(text)] == [
        ("500 pesos", Decimal(500)),
        ("dos mil quinientos", Decimal(2500)),
    ]


@pytest.mark.parametrize("text", ["te pago 500 el 15", "en 3 pagos", "el 20 de diciembre", "hola"])
def test_find_amounts_skips_numbers_that_are_not_clearly_money(text: str) -> None:
    assert find_amounts(text) == []


# ---------------------------------------------------------------------------------------------
# Blind set: written after the implementation was finished and never tuned for. Failures are
# marked xfail(strict=True) so the suite stays honest about what the wrapper cannot read yet.

BLIND_AMOUNTS = [
    ("$2,500.00", "2500"),
    ("dos mil quinientos pesos", "2500"),
    ("3,000 pesos", "3000"),
    ("ochocientos", "800"),
    ("mil doscientos cincuenta", "1250"),
    pytest.param(
        "1 500",
        "1500",
        marks=pytest.mark.xfail(strict=True, reason="a space as thousands separator reads as 1"),
    ),
    ("$300 semanales", "300"),
    ("500 x quincena", "500"),
    ("unos 2 mil", "2000"),
    ("como 800 varos", "800"),
    ("10 mil", "10000"),
    ("diez mil pesos", "10000"),
    ("1500 mxn", "1500"),
    ("2.5 mil", "2500"),
    pytest.param(
        "cinco lucas",
        "5000",
        marks=pytest.mark.xfail(
            strict=True, reason="'lucas' is multiplied before spelled numbers become digits"
        ),
    ),
    ("trescientos cincuenta", "350"),
    ("$12,345.67", "12345.67"),
    ("mil", "1000"),
    ("nomas tengo 200", "200"),
    ("le abono 1000 cada mes", "1000"),
]
BLIND_INSTALLMENTS = [
    ("en 4 pagos", 4),
    ("a doce meses", 12),
    ("dos quincenas", 2),
    ("en 3 mensualidades de 500", 3),
    ("18 meses", 18),
    ("un pago", 1),
    ("en parcialidades", None),
]
BLIND_PAYMENT_METHODS = [
    ("x transferencia", "spei"),
    ("en el oxxo de la esquina", "oxxo"),
    ("con mi tarjeta de débito", "card"),
    ("deposito bancario", "bank_deposit"),
    ("por spei", "spei"),
    ("en efectivo en el banco", "bank_deposit"),
    ("tarjeta de crédito", "card"),
    pytest.param(
        "te transfiero",
        "spei",
        marks=pytest.mark.xfail(
            strict=True, reason="the transfer pattern wants 'fer'/'fir', not 'fier'"
        ),
    ),
]


@pytest.mark.parametrize(("phrase", "expected"), BLIND_AMOUNTS)
def test_blind_amounts(phrase: str, expected: str) -> None:
    assert parse_amount(phrase) == Decimal(expected)


@pytest.mark.parametrize(("phrase", "expected"), BLIND_INSTALLMENTS)
def test_blind_installments(phrase: str, expected: int | None) -> None:
    assert parse_installments(phrase) == expected


@pytest.mark.parametrize(("phrase", "expected"), BLIND_PAYMENT_METHODS)
def test_blind_payment_methods(phrase: str, expected: str) -> None:
    assert parse_payment_method(phrase) == expected
