"""The one clock: ``ACUERDO_NOW`` pins it (CONTRACT section 2)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.clock import Clock, ClockError, parse_pinned_now

MEXICO_CITY = ZoneInfo("America/Mexico_City")


def test_an_iso_date_pins_the_clock_to_noon_in_the_default_zone() -> None:
    clock = Clock.from_setting("2026-11-23", "America/Mexico_City")

    assert clock.now() == datetime(2026, 11, 23, 12, 0, tzinfo=MEXICO_CITY)
    assert clock.today() == date(2026, 11, 23)
    # Mexico City has had no daylight saving time since 2022: UTC-6 all year.
    assert clock.now_utc() == datetime(2026, 11, 23, 18, 0, tzinfo=timezone.utc)


def test_noon_depends_on_the_zone_named_in_the_setting() -> None:
    clock = Clock.from_setting("2026-11-23", "America/Tijuana")

    # Tijuana is on Pacific standard time (UTC-8) in November.
    assert clock.now_utc() == datetime(2026, 11, 23, 20, 0, tzinfo=timezone.utc)


def test_a_date_time_with_offset_pins_that_exact_instant() -> None:
    clock = Clock.from_setting("2026-11-23T21:30:00-06:00", "America/Mexico_City")

    assert clock.now() == datetime(2026, 11, 23, 21, 30, tzinfo=MEXICO_CITY)
    assert clock.now_utc() == datetime(2026, 11, 24, 3, 30, tzinfo=timezone.utc)
    assert clock.today() == date(2026, 11, 23)


def test_an_instant_given_in_utc_is_shown_in_the_default_zone() -> None:
    clock = Clock.from_setting("2026-11-24T03:30:00Z", "America/Mexico_City")

    assert clock.now().utcoffset() == timedelta(hours=-6)
    assert (clock.now().hour, clock.now().minute) == (21, 30)
    # Still Monday the 23rd in Mexico City although it is already Tuesday in UTC.
    assert clock.today() == date(2026, 11, 23)


def test_a_date_time_without_offset_is_read_in_the_default_zone() -> None:
    pinned = parse_pinned_now("2026-11-23T08:15:00", MEXICO_CITY)

    assert pinned == datetime(2026, 11, 23, 8, 15, tzinfo=MEXICO_CITY)


@pytest.mark.parametrize(
    "garbage", ["yesterday", "2026-13-45", "23/11/2026", "2026-11-23T25:00:00", "", "mañana"]
)
def test_a_value_that_is_not_an_iso_date_raises_clock_error(garbage: str) -> None:
    with pytest.raises(ClockError, match="ISO date"):
        parse_pinned_now(garbage, MEXICO_CITY)


def test_clock_error_is_raised_when_building_a_clock_from_a_bad_setting() -> None:
    with pytest.raises(ClockError):
        Clock.from_setting("next friday", "America/Mexico_City")


def test_local_now_gives_the_same_instant_in_the_debtors_zone() -> None:
    clock = Clock.from_setting("2026-11-23", "America/Mexico_City")

    tijuana = clock.local_now("America/Tijuana")
    cancun = clock.local_now("America/Cancun")

    # Noon in Mexico City is 10:00 in Tijuana (UTC-8) and 13:00 in Cancún (UTC-5).
    assert (tijuana.hour, tijuana.minute) == (10, 0)
    assert (cancun.hour, cancun.minute) == (13, 0)
    assert tijuana == cancun == clock.now()


def test_local_now_without_a_zone_is_the_default_zone() -> None:
    clock = Clock.from_setting("2026-11-23", "America/Mexico_City")

    assert clock.local_now(None) == clock.now()
    assert clock.local_now(None).utcoffset() == timedelta(hours=-6)


def test_an_unpinned_clock_tells_the_real_time_aware() -> None:
    clock = Clock.from_setting(None, "America/Mexico_City")

    before = datetime.now(timezone.utc)
    now = clock.now()
    after = datetime.now(timezone.utc)

    assert now.tzinfo is not None
    assert before <= now <= after
