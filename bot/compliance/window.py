"""The contact window in the debtor's local time: is now allowed, and if not, when.

The debtor's zone is the portfolio's ``timezone``; without one it comes from the debtor's
phone numbers (``phonenumbers``: +52 664 is Tijuana, UTC-8), and only then the default
(``ACUERDO_TIMEZONE``). A number may map to several zones: then a moment is inside the
window only when it is inside it in every candidate zone (the ``*_in`` functions).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.clock import Clock
from bot.compliance.profiles import ComplianceConfigError, ContactRules
from bot.db.models import Debtor
from bot.domain.phones import time_zones_of_number

# Far enough to cross any run of holidays a policy may list.
SEARCH_DAYS = 400


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def debtor_zones(debtor: Debtor | None, clock: Clock) -> tuple[ZoneInfo, ...]:
    """The candidate zones of the debtor: the portfolio's, else those of the debtor's phone
    numbers (all of them: conservative), else the default one (``ACUERDO_TIMEZONE``)."""
    if debtor is None:
        return (clock.tz,)
    if debtor.timezone and (zone := _zone(debtor.timezone)) is not None:
        return (zone,)
    names: dict[str, None] = {}  # ordered and distinct
    for point in sorted(debtor.contact_points, key=lambda p: (not p.preferred, p.id or 0)):
        names.update(dict.fromkeys(time_zones_of_number(point.address)))
    zones = tuple(zone for name in names if (zone := _zone(name)) is not None)
    return zones or (clock.tz,)


def debtor_zone(debtor: Debtor | None, clock: Clock) -> ZoneInfo:
    """The zone of the debtor's calendar (today's date, midnight): the first candidate."""
    return debtor_zones(debtor, clock)[0]


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


def closed_reason_in(
    moment: datetime, zones: tuple[ZoneInfo, ...], rules: ContactRules
) -> str | None:
    """Why ``moment`` is outside the window in some candidate zone, or None when inside all."""
    for zone in zones:
        reason = closed_reason(moment.astimezone(zone), rules)
        if reason is not None:
            return reason
    return None


def next_opening_in(
    moment: datetime, zones: tuple[ZoneInfo, ...], rules: ContactRules
) -> datetime | None:
    """The earliest moment at or after ``moment`` inside the window in every zone (in the
    first zone), or None when the zones share no window (a number spanning far-apart zones).
    """
    candidate = moment.astimezone(zones[0])
    # Each step moves to a later opening of some zone: one per zone and day at most.
    for _ in range(SEARCH_DAYS * len(zones) + 1):
        latest = max(next_opening(candidate.astimezone(zone), rules) for zone in zones)
        if closed_reason_in(latest, zones, rules) is None:
            return latest.astimezone(zones[0])
        candidate = latest
    return None


def window_end_in(moment: datetime, zones: tuple[ZoneInfo, ...], rules: ContactRules) -> datetime:
    """When the window of ``moment``'s day closes first among the zones."""
    return min(
        datetime.combine(moment.astimezone(zone).date(), rules.end, tzinfo=zone) for zone in zones
    )
