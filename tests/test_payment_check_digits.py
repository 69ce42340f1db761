"""Check digits of CLABEs and payment references."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.payments.check_digits import (
    InvalidDigits,
    clabe_check_digit,
    is_valid_clabe,
    is_valid_luhn,
    is_valid_mod97,
    luhn_check_digit,
    mod97_check_digits,
)
from bot.payments.local import bank_reference, oxxo_reference, spei_clabe


def test_clabe_control_digit_of_the_banxico_example_is_9() -> None:
    assert clabe_check_digit("03218000011835971") == 9
    assert is_valid_clabe("032180000118359719")


@pytest.mark.parametrize(
    "clabe",
    [
        "002010077777777771",  # the Banamex sample CLABE of many guides and libraries
        "012320029937286769",  # a BBVA CLABE used as a fixture in public bank directories
    ],
)
def test_known_clabes_validate(clabe: str) -> None:
    assert clabe_check_digit(clabe[:17]) == int(clabe[17])
    assert is_valid_clabe(clabe)


def test_clabe_with_a_wrong_digit_or_length_is_invalid() -> None:
    assert not is_valid_clabe("032180000118359718")
    assert not is_valid_clabe("03218000011835971")
    assert not is_valid_clabe("0321800001183597190")
    assert not is_valid_clabe("03218000011835971X")
    assert not is_valid_clabe("")


def test_luhn_check_digit_of_the_bbva_algoritmo_00_example_is_1() -> None:
    assert luhn_check_digit("18000359700002387") == 1
    assert is_valid_luhn("180003597000023871")


def test_luhn_matches_the_classic_card_example() -> None:
    assert luhn_check_digit("7992739871") == 3
    assert is_valid_luhn("79927398713")
    assert not is_valid_luhn("79927398714")


def test_mod97_makes_the_whole_number_one_modulo_97() -> None:
    digits = "1234567890"
    number = digits + mod97_check_digits(digits)
    assert int(number) % 97 == 1
    assert is_valid_mod97(number)
    assert not is_valid_mod97(digits + "00")


@pytest.mark.parametrize("bad", ["", "12a4", "１２３", "12 34", "-123"])
def test_non_digit_input_raises_a_named_error(bad: str) -> None:
    with pytest.raises(InvalidDigits):
        luhn_check_digit(bad)
    with pytest.raises(InvalidDigits):
        mod97_check_digits(bad)
    assert not is_valid_luhn(bad)


def test_clabe_check_digit_needs_exactly_17_digits() -> None:
    with pytest.raises(InvalidDigits, match="17 digits"):
        clabe_check_digit("0321800001183597")
    with pytest.raises(InvalidDigits):
        clabe_check_digit("0321800001183597A")


def _single_digit_changes(number: str) -> list[str]:
    return [
        number[:i] + other + number[i + 1 :]
        for i, digit in enumerate(number)
        for other in "0123456789"
        if other != digit
    ]


@given(
    prefix=st.from_regex(r"\A[0-9]{6}\Z"),
    code_id=st.integers(min_value=1, max_value=10**11 - 1),
)
def test_any_single_digit_change_of_a_generated_clabe_is_detected(
    prefix: str, code_id: int
) -> None:
    clabe = spei_clabe(prefix, code_id)
    assert len(clabe) == 18 and is_valid_clabe(clabe)
    assert not any(is_valid_clabe(changed) for changed in _single_digit_changes(clabe))


@given(
    account_id=st.integers(min_value=1, max_value=10**8 - 1),
    code_id=st.integers(min_value=1, max_value=10**8 - 1),
)
def test_any_single_digit_change_of_a_bank_reference_is_detected(
    account_id: int, code_id: int
) -> None:
    reference = bank_reference(account_id, code_id)
    assert len(reference) == 17 and is_valid_luhn(reference)
    assert not any(is_valid_luhn(changed) for changed in _single_digit_changes(reference))


@given(code_id=st.integers(min_value=1, max_value=10**11 - 1))
def test_any_single_digit_change_of_an_oxxo_reference_is_detected(code_id: int) -> None:
    reference = oxxo_reference(code_id)
    assert len(reference) == 14 and is_valid_luhn(reference)
    assert not any(is_valid_luhn(changed) for changed in _single_digit_changes(reference))


@given(digits=st.from_regex(r"\A[0-9]{1,30}\Z"))
def test_any_single_digit_change_of_a_luhn_number_is_detected(digits: str) -> None:
    number = digits + str(luhn_check_digit(digits))
    assert is_valid_luhn(number)
    assert not any(is_valid_luhn(changed) for changed in _single_digit_changes(number))
