"""Money: integer centavos inside, formatted only at the edges."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain.money import (
    InvalidAmount,
    cents_to_pesos,
    format_money,
    pesos_to_cents,
    round_up_to_peso,
)


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("1234.50", 123_450),
        ("$1,234.50", 123_450),
        ("1,234.5", 123_450),
        (" 1234.50 ", 123_450),
        ("0", 0),
        ("0.01", 1),
        ("200", 20_000),
        ("1,000,000.00", 100_000_000),
    ],
)
def test_pesos_as_people_write_them_become_centavos(text: str, cents: int) -> None:
    assert pesos_to_cents(text) == cents


def test_decimals_and_integers_become_centavos() -> None:
    assert pesos_to_cents(Decimal("99.99")) == 9_999
    assert pesos_to_cents(15) == 1_500


def test_a_float_is_read_through_its_shortest_text_not_its_binary_value() -> None:
    # 0.3 is 0.2999999999999999888... in binary; its shortest text is "0.3".
    assert pesos_to_cents(0.3) == 30
    assert pesos_to_cents(1234.5) == 123_450


@pytest.mark.parametrize("garbage", ["-", "", "$", "abc", "12a", "1.2.3", "NaN", "nan", "Infinity"])
def test_text_that_is_no_amount_is_refused(garbage: str) -> None:
    with pytest.raises(InvalidAmount):
        pesos_to_cents(garbage)


@pytest.mark.parametrize("value", ["1234.505", "0.001", Decimal("1.999")])
def test_more_than_two_decimals_is_refused_not_rounded(value: str | Decimal) -> None:
    with pytest.raises(InvalidAmount, match="two decimals"):
        pesos_to_cents(value)


def test_invalid_amount_is_a_value_error() -> None:
    assert issubclass(InvalidAmount, ValueError)


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (0, "$0.00"),
        (5, "$0.05"),
        (125_000, "$1,250.00"),
        (123_450, "$1,234.50"),
        (100_000_000, "$1,000,000.00"),
        (-1_234, "-$12.34"),
    ],
)
def test_format_money_in_pesos(cents: int, text: str) -> None:
    assert format_money(cents) == text


def test_format_money_in_another_currency_carries_its_code() -> None:
    assert format_money(125_000, "USD") == "$1,250.00 USD"


def test_cents_to_pesos_is_exact() -> None:
    assert cents_to_pesos(123_450) == Decimal("1234.50")
    assert cents_to_pesos(1) == Decimal("0.01")


@pytest.mark.parametrize(
    ("cents", "rounded"),
    [(0, 0), (1, 100), (99, 100), (100, 100), (101, 200), (1_049_381, 1_049_400)],
)
def test_round_up_to_peso_never_rounds_down(cents: int, rounded: int) -> None:
    assert round_up_to_peso(cents) == rounded


def test_formatting_and_parsing_round_trip() -> None:
    for cents in (0, 1, 99, 100, 123_456, 987_654_321):
        assert pesos_to_cents(format_money(cents)) == cents
