"""Phone numbers: E.164 inside, masked in logs.

Mexican mobile numbers arrive as ``+52 1 55…`` (WhatsApp's ``521…`` form) or
``+52 55…``; both are the same line. We keep the modern form without the ``1``.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import timezone as phone_zones

from bot.domain.errors import InvalidPhone

# Numbers seen recently, normalised and masked once each: a stored message normalises its
# sender several times and every log line masks it, 0.1-0.2 ms of phonenumbers' parsing a
# time (docs/performance.md, part 6). Both are pure functions of their arguments.
PHONE_CACHE_SIZE = 16_384


@lru_cache(maxsize=PHONE_CACHE_SIZE)
def normalize_phone(raw: str, default_region: str = "MX") -> str:
    """Return the canonical E.164 form of ``raw`` or raise :class:`InvalidPhone`."""
    text = raw.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits:
        raise InvalidPhone(f"'{raw}' is not a phone number")
    # WhatsApp ids come without '+': 5215512345678 / 525512345678.
    if not text.startswith("+") and digits.startswith("52") and len(digits) in (12, 13):
        text = "+" + digits
    if text.startswith("+521") and len(digits) == 13:
        text = "+52" + digits[3:]
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"'{raw}' is not a phone number ({exc})") from exc
    if number.country_code == 52:
        national = str(number.national_number)
        if len(national) == 11 and national.startswith("1"):
            number = phonenumbers.parse("+52" + national[1:], None)
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"'{raw}' is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=4096)
def time_zones_of_number(e164: str) -> tuple[str, ...]:
    """The IANA zones the number's prefix is used in (empty when unknown or not a number)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    names = phone_zones.time_zones_for_number(number)
    return tuple(name for name in names if name != phone_zones.UNKNOWN_TIMEZONE)


def is_mexican(e164: str) -> bool:
    return e164.startswith("+52")


def whatsapp_id(e164: str) -> str:
    """The ``wa_id`` form WhatsApp uses for a number (digits, Mexican mobiles with ``521``)."""
    digits = e164.lstrip("+")
    return "521" + digits[2:] if digits.startswith("52") and len(digits) == 12 else digits


@lru_cache(maxsize=PHONE_CACHE_SIZE)
def mask_phone(value: str | None) -> str:
    """``+525512345678`` → ``+52 55 **** 5678`` (for logs).

    Only the country code, the first two national digits (the area) and the last 4
    digits show; anything that is not a valid number shows its last 4 digits at most.
    """
    if not value:
        return "?"
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) < 8:
        return "****"
    try:
        number = phonenumbers.parse(normalize_phone(value), None)
    except (InvalidPhone, phonenumbers.NumberParseException):
        return f"**** {digits[-4:]}"
    national = str(number.national_number)
    area = f" {national[:2]}" if len(national) >= 10 else ""
    return f"+{number.country_code}{area} **** {national[-4:]}"
