"""Per-conversation rate limit: a flood from one number is stored but not fed to Rasa.

An inbound message is **over the limit** when its conversation already had ``limit``
earlier inbound messages that arrived less than ``window`` seconds before it. The decision
reads only the ``messages`` table, so every gateway process sharing the database decides
the same way, and a retry or a taken-over claim decides again identically. Throttled
messages count too: a flood stays throttled until the person pauses for a window.

The first throttled message after a window without any gets **one** notice for the
person; the rest of the flood is silent. Arrival is the real time the inbox stored the row
(``payload.received_at``), never the business clock, which tests and demos pin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Direction, Message

RATE_LIMITED = "rate_limited"  # error_code of a throttled (skipped) inbound message
RECEIVED_AT = "received_at"  # payload key: wall-clock arrival, ISO 8601 UTC


@dataclass(frozen=True)
class RateDecision:
    limited: bool = False
    notice: bool = False  # the first throttled message after a calm window: tell them once


ALLOWED = RateDecision()


def arrival(payload: dict[str, Any] | None) -> datetime | None:
    """When the inbox stored a message (None for rows stored before arrivals were kept)."""
    value = (payload or {}).get(RECEIVED_AT)
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def rate_decision(session: Session, message: Message, *, limit: int, window: float) -> RateDecision:
    """Whether ``message`` is over its conversation's limit, and whether to say so."""
    arrived = arrival(message.payload)
    if arrived is None or limit <= 0:
        return ALLOWED
    since = arrived - timedelta(seconds=window)

    def recent(payload: dict[str, Any] | None) -> bool:
        at = arrival(payload)
        return at is not None and at > since

    earlier = (
        select(Message.payload)
        .where(
            Message.conversation_id == message.conversation_id,
            Message.direction == Direction.IN.value,
            Message.id < message.id,
        )
        .order_by(Message.id.desc())
    )
    # The limit-th message before this one: inside the window, this one is one too many.
    if not recent(session.scalars(earlier.offset(limit - 1).limit(1)).first()):
        return ALLOWED
    last_throttled = session.scalars(earlier.where(Message.error_code == RATE_LIMITED).limit(1))
    return RateDecision(limited=True, notice=not recent(last_throttled.first()))
