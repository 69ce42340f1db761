"""Check digits of Mexican payment references: CLABE (3-7-1), Luhn (base 10), ISO 7064 MOD 97-10.

Pure functions over strings of ASCII digits. A check digit exists so that a debtor who
mistypes one digit of a reference at a bank window or in a banking app is refused on the
spot instead of paying into nowhere: both the CLABE weights (3, 7, 1 are all invertible
modulo 10) and Luhn catch every single-digit error.
"""

from __future__ import annotations

_CLABE_WEIGHTS = (3, 7, 1)


class InvalidDigits(ValueError):
    """The input is not a string of ASCII digits of the expected length."""


def _require_digits(value: str, *, what: str, length: int | None = None) -> None:
    if not isinstance(value, str) or not value or not (value.isascii() and value.isdigit()):
        raise InvalidDigits(f"{what} must be a string of digits 0-9, got {value!r}")
    if length is not None and len(value) != length:
        raise InvalidDigits(f"{what} must have {length} digits, got {len(value)} ({value!r})")


def clabe_check_digit(first17: str) -> int:
    """The control digit of a CLABE from its first 17 digits (weights 3, 7, 1 repeating).

    ``clabe_check_digit("03218000011835971") == 9``.
    """
    _require_digits(first17, what="the first 17 digits of a CLABE", length=17)
    total = sum(
        (int(d) * _CLABE_WEIGHTS[i % 3]) % 10 for i, d in enumerate(first17)
    )  # each product is reduced modulo 10 before adding, as Banxico specifies
    return (10 - total % 10) % 10


def is_valid_clabe(clabe: str) -> bool:
    """True for 18 digits whose last one is the 3-7-1 control digit of the first 17."""
    if not isinstance(clabe, str) or len(clabe) != 18 or not (clabe.isascii() and clabe.isdigit()):
        return False
    return clabe_check_digit(clabe[:17]) == int(clabe[17])


def luhn_check_digit(digits: str) -> int:
    """The Luhn (base 10, BBVA "Algoritmo 00") check digit to append to ``digits``.

    From the right, the payload digits are multiplied by 2, 1, 2, 1…; a product above 9
    has its digits added (same as subtracting 9); the check digit brings the sum to the next
    multiple of 10. ``luhn_check_digit("18000359700002387") == 1``.
    """
    _require_digits(digits, what="a reference")
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:  # the rightmost payload digit is doubled
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def is_valid_luhn(number: str) -> bool:
    """True when the last digit of ``number`` is the Luhn check digit of the rest."""
    if (
        not isinstance(number, str)
        or len(number) < 2
        or not (number.isascii() and number.isdigit())
    ):
        return False
    return luhn_check_digit(number[:-1]) == int(number[-1])


def mod97_check_digits(digits: str) -> str:
    """The two ISO 7064 MOD 97-10 check digits to append (``98 - N·100 mod 97``).

    With them appended the whole number is 1 modulo 97. Not used by the ``local`` provider
    (its references carry one Luhn digit); here for adapters of banks that use base 97.
    """
    _require_digits(digits, what="a reference")
    return f"{98 - (int(digits) * 100) % 97:02d}"


def is_valid_mod97(number: str) -> bool:
    """True when ``number`` (payload + two check digits) is 1 modulo 97."""
    if (
        not isinstance(number, str)
        or len(number) < 3
        or not (number.isascii() and number.isdigit())
    ):
        return False
    return int(number) % 97 == 1
