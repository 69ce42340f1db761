"""The contact window in the debtor's local time: is now allowed, and if not, when."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.clock import Clock
from bot.compliance.profiles import ComplianceConfigError, ContactRules
from bot.db.models import Debtor

# Far enough to cross any run of holidays a policy may list.
SEARCH_DAYS = 400


def debtor_zone(debtor: Debtor | None, clock: Clock) -> ZoneInfo:
    """The debtor's IANA zone, or the default one (``ACUERDO_TIMEZONE``)."""
    name = debtor.timezone if debtor is not None else None
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return clock.tz


def closed_reason(local: datetime, rules: ContactRules) -> str | None:
    """Why ``local`` (aware, debtor zone) is outside the window, or None when inside."""
    if local.date() in rules.holidays:
        return "holiday"
    if local.weekday() not in rules.weekdays:
        return "not_a_contact_day"
    if not rules.start <= local.time() < rules.last_start:
        return "outside_hours"
    return None


def next_opening(local: datetime, rules: ContactRules) -> datetime:
    """The earliest moment at or after ``local`` inside the window (in ``local``'s zone)."""
    zone = local.tzinfo
    for offset in range(SEARCH_DAYS):
        day = local.date() + timedelta(days=offset)
        if day in rules.holidays or day.weekday() not in rules.weekdays:
            continue
        opens = datetime.combine(day, rules.start, tzinfo=zone)
        last = datetime.combine(day, rules.last_start, tzinfo=zone)
        if local < opens:
            return opens
        if local < last:
            return local
    raise ComplianceConfigError(
        f"contact.days and contact.holidays leave no contact day in the next {SEARCH_DAYS} days"
    )
