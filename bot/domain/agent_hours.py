"""When human agents are at work (policy ``contact.agent_hours``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.policy import WEEKDAYS, Policy


def agents_available(policy: Policy, now: datetime) -> bool:
    hours = policy.contact.agent_hours
    return WEEKDAYS[now.weekday()] in hours.days and hours.contains(now.time())


def next_agent_opening(policy: Policy, now: datetime) -> datetime:
    """The next moment agents are at work (``now`` if they are)."""
    if agents_available(policy, now):
        return now
    hours = policy.contact.agent_hours
    for offset in range(0, 8):
        day = (now + timedelta(days=offset)).date()
        opening = datetime.combine(day, hours.start, tzinfo=now.tzinfo)
        if WEEKDAYS[day.weekday()] in hours.days and opening > now:
            return opening
    raise ValueError("contact.agent_hours has no working day")
