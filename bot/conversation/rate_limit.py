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

from sqlalchemy import bindparam, select
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


_M = Message.__table__.c
# Built once (see bot/conversation/claims.py): the conversation's earlier inbound messages,
# newest first, from the ``skip``-th on; and the latest of them that was throttled.
_EARLIER_INBOUND = (
    select(_M.payload)
    .where(
        _M.conversation_id == bindparam("conversation_id"),
        _M.direction == Direction.IN.value,
        _M.id < bindparam("message_id"),
    )
    .order_by(_M.id.desc())
)
_NTH_EARLIER = _EARLIER_INBOUND.offset(bindparam("skip")).limit(1)
_LAST_THROTTLED = _EARLIER_INBOUND.where(_M.error_code == RATE_LIMITED).limit(1)


def rate_decision(
    session: Session,
    *,
    conversation_id: int,
    message_id: int,
    payload: dict[str, Any] | None,
    limit: int,
    window: float,
) -> RateDecision:
    """Whether inbound message ``message_id`` (with ``payload``) is over its conversation's
    limit, and whether to say so."""
    arrived = arrival(payload)
    if arrived is None or limit <= 0:
        return ALLOWED
    since = arrived - timedelta(seconds=window)

    def recent(payload: dict[str, Any] | None) -> bool:
        at = arrival(payload)
        return at is not None and at > since

    connection = session.connection()
    params = {"conversation_id": conversation_id, "message_id": message_id}
    # The limit-th message before this one: inside the window, this one is one too many.
    nth = connection.execute(_NTH_EARLIER, {**params, "skip": limit - 1}).scalar()
    if not recent(nth):
        return ALLOWED
    last_throttled = connection.execute(_LAST_THROTTLED, params).scalar()
    return RateDecision(limited=True, notice=not recent(last_throttled))
