"""The one clock of the application.

Every "now" in Acuerdo comes from a :class:`Clock`. ``ACUERDO_NOW`` pins it for
tests and demos: an ISO date (read as noon in the default time zone) or an ISO
date-time with an offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any
from zoneinfo import ZoneInfo


class ClockError(ValueError):
    """Raised when a pinned clock value cannot be read."""


def parse_pinned_now(value: str, tz: ZoneInfo) -> datetime:
    """Read an ``ACUERDO_NOW`` value into an aware datetime."""
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(12, 0), tzinfo=tz)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ClockError(
            f"'{value}' is neither an ISO date (2026-11-23) nor an ISO date-time "
            "with offset (2026-11-23T21:30:00-06:00)"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


@dataclass(frozen=True)
class Clock:
    """Tells the time, either the real one or a pinned instant."""

    tz: ZoneInfo
    pinned: datetime | None = None

    @classmethod
    def from_setting(cls, pinned: str | None, tz_name: str) -> Clock:
        tz = ZoneInfo(tz_name)
        return cls(tz=tz, pinned=parse_pinned_now(pinned, tz) if pinned else None)

    def now(self) -> datetime:
        """The current instant, aware, in the default time zone."""
        if self.pinned is not None:
            return self.pinned.astimezone(self.tz)
        return datetime.now(timezone.utc).astimezone(self.tz)

    def now_utc(self) -> datetime:
        return self.now().astimezone(timezone.utc)

    def today(self) -> date:
        """Today's date in the default time zone."""
        return self.now().date()

    def local_now(self, tz_name: str | None) -> datetime:
        """The current instant in another (debtor's) time zone."""
        return self.now().astimezone(ZoneInfo(tz_name)) if tz_name else self.now()


def wall_clock_utc() -> datetime:
    """Real UTC time, for machinery only: leases, back-offs, wire timestamps.

    Business time (days past due, contact hours, promise dates) always comes from a
    :class:`Clock`; a pinned clock must not freeze retries and leases.
    """
    return datetime.now(timezone.utc)


def aware_instant(value: Any) -> datetime | None:
    """An ISO 8601 date-time with its offset, as stored in a JSON payload (None otherwise)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None
