"""Phone numbers: E.164 inside, masked in logs (CONTRACT section 4, STYLE habits)."""

from __future__ import annotations

import re

import pytest

from bot.domain.errors import InvalidPhone
from bot.domain.phones import is_mexican, mask_phone, normalize_phone, whatsapp_id


@pytest.mark.parametrize(
    "raw",
    [
        "+5215512345678",  # the "+52 1" mobile form
        "5215512345678",  # WhatsApp's wa_id for a Mexican mobile
        "525512345678",  # wa_id without the 1
        "+52 55 1234 5678",
        "+52 1 55 1234 5678",
        "5512345678",  # 10-digit national number
        "55-1234-5678",
        "  +52 (55) 1234-5678 ",
    ],
)
def test_every_way_of_writing_a_mexican_number_is_the_same_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+525512345678"


def test_a_foreign_number_keeps_its_country_code() -> None:
    assert normalize_phone("+1 415 555 0123") == "+14155550123"


@pytest.mark.parametrize("raw", ["", "   ", "hola", "sin número", "+", "---"])
def test_text_without_digits_is_not_a_phone_number(raw: str) -> None:
    with pytest.raises(InvalidPhone, match="not a phone number"):
        normalize_phone(raw)


@pytest.mark.parametrize("raw", ["12345", "+52 123", "+52 55 1234 567", "0000000000", "+999 1234"])
def test_digits_that_are_no_valid_number_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone(raw)


def test_whatsapp_id_uses_the_521_form_for_mexican_mobiles() -> None:
    assert whatsapp_id("+525512345678") == "5215512345678"


def test_whatsapp_id_of_a_foreign_number_is_its_digits() -> None:
    assert whatsapp_id("+14155550123") == "14155550123"


def test_the_whatsapp_id_reads_back_as_the_same_number() -> None:
    assert normalize_phone(whatsapp_id("+525512345678")) == "+525512345678"


def test_is_mexican() -> None:
    assert is_mexican("+525512345678")
    assert not is_mexican("+14155550123")


@pytest.mark.parametrize(
    "raw", ["+525512345678", "5215512345678", "+52 1 55 1234 5678", "5512345678"]
)
def test_a_mexican_number_is_masked_as_country_area_and_last_four(raw: str) -> None:
    assert mask_phone(raw) == "+52 55 **** 5678"


@pytest.mark.parametrize(
    "raw",
    [
        "+525512345678",
        "5215512345678",
        "5512345678",
        "+14155550123",
        "12345678",
        "123456789",
        "012180000012345678",  # a CLABE caught by the log scrubber
        "4152 3136 0000 1234",  # a card number
    ],
)
def test_a_mask_never_shows_the_middle_of_the_number(raw: str) -> None:
    masked = mask_phone(raw)
    digits = re.sub(r"\D", "", raw)
    after_stars = masked.split("****")[-1]

    assert "****" in masked
    # What follows the stars is at most the last 4 digits.
    assert re.sub(r"\D", "", after_stars) == digits[-4:]
    # What precedes them is a country code and an area, never the line's own digits.
    before_stars = re.sub(r"\D", "", masked.split("****")[0])
    assert len(before_stars) <= 5
    assert digits[-8:-4] not in re.sub(r"\D", "", masked)


@pytest.mark.parametrize("raw", ["123", "1234567", "abc"])
def test_a_short_value_is_masked_entirely(raw: str) -> None:
    assert mask_phone(raw) == "****"


@pytest.mark.parametrize("raw", [None, ""])
def test_no_number_is_shown_as_a_question_mark(raw: str | None) -> None:
    assert mask_phone(raw) == "?"


def test_a_number_seen_before_gives_the_same_answer_and_a_bad_one_still_fails() -> None:
    # normalize_phone and mask_phone remember recent numbers (docs/performance.md, part 6):
    # a remembered answer is the first one, and an invalid number is refused every time.
    first = normalize_phone("5215512345678")
    assert normalize_phone("5215512345678") == first == "+525512345678"
    assert mask_phone("+525512345678") == mask_phone("+525512345678") == "+52 55 **** 5678"
    for _ in range(2):
        with pytest.raises(InvalidPhone):
            normalize_phone("+52 55 1234")
