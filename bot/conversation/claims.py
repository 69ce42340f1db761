"""Claiming work from the ``messages`` table: leases, fencing and per-conversation order.

A row is claimable when it is the **earliest unfinished** row of its conversation (in its
direction) and its ``next_attempt_at`` has come: a pending row whose back-off is over, or a
claimed row whose lease ran out (its worker died). Claiming is a compare-and-set on
``(id, attempts, status)`` that bumps ``attempts``; the new ``attempts`` is the fencing token
every later write of that worker must match, so a worker whose lease was taken over can
never commit its results. On PostgreSQL the candidate rows are read ``FOR UPDATE SKIP
LOCKED`` so concurrent gateway processes do not queue up behind each other.

``next_attempt_at`` is scheduling time: real wall-clock UTC, never the pinned
``ACUERDO_NOW`` (a pinned clock does not advance, so back-offs would never end).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

import structlog
from sqlalchemy import ColumnElement, Select, Table, Update, bindparam, func, or_, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from bot.clock import wall_clock_utc
from bot.db.models import Message

T = TypeVar("T")
log = structlog.get_logger("acuerdo.claims")


async def persist_patiently(step: Callable[..., T], *args: object, budget: float, what: str) -> T:
    """Run the database ``step`` in a thread, retrying it while the database is unreachable.

    For a result that must not be lost once the outside world has seen it (a message
    WhatsApp accepted, replies Rasa produced): a database restart of a few seconds then
    delays the record instead of leaving the row to be redone when its lease runs out.
    Gives up (re-raises) after ``budget`` seconds; the fence still guards against a
    worker that took the row over meanwhile.
    """
    deadline = time.monotonic() + budget
    delay = 0.1
    while True:
        try:
            return await asyncio.to_thread(step, *args)
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, DBAPIError) and not (
                exc.connection_invalidated or isinstance(exc, OperationalError)
            ):
                raise
            if time.monotonic() + delay > deadline:
                raise
            log.warning("db.unavailable_retrying", step=what, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


class InboundStatus:
    PENDING = "pending"  # stored, waiting for (or between tries of) processing
    PROCESSING = "processing"  # claimed by a worker; next_attempt_at is the lease's end
    DONE = "done"  # answered (its replies are in the outbox)
    SKIPPED = "skipped"  # an agent holds the conversation: the bot stays silent
    FAILED = "failed"  # could not be processed (a bug or a permanent refusal); logged


class OutboundStatus:
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a worker; next_attempt_at is the lease's end
    SENT = "sent"  # accepted by the channel (external_id known)
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    HELD = "held"  # outside the service window: waits for the person to write again
    # A company-started message the gate delayed (contact hours, holiday, weekly cap): not
    # claimable; bot.compliance.outreach.release_scheduled asks the gate again when due.
    SCHEDULED = "scheduled"


INBOUND_UNFINISHED = (InboundStatus.PENDING, InboundStatus.PROCESSING)
OUTBOUND_UNFINISHED = (OutboundStatus.QUEUED, OutboundStatus.SENDING)


def scheduling_now() -> datetime:
    """Real UTC time for leases and back-offs (never the pinned business clock)."""
    return wall_clock_utc()


@dataclass(frozen=True)
class Claim:
    """A claimed row and the fencing token (its ``attempts`` after the claim)."""

    message_id: int
    attempts: int


# The hot statements are Core statements on the table, built once with bound parameters:
# building an ORM statement per call, and the ORM's bulk-UPDATE preparation, cost more than
# running it (profiled: docs/performance.md, "A lean turn, part 3").
_MESSAGES: Table = Message.__table__  # type: ignore[assignment]
_EARLIER = _MESSAGES.alias("earlier")


@lru_cache(maxsize=64)
def _claim_query(
    direction: str,
    unfinished: tuple[str, ...],
    skip_channels: tuple[str, ...],
    limit: int,
    lock: bool,
) -> Select[Any]:
    """Claimable rows: the earliest unfinished of their conversation, back-off over."""
    m, earlier = _MESSAGES.c, _EARLIER.c
    earliest_unfinished = (
        select(func.min(earlier.id))
        .where(
            earlier.conversation_id == m.conversation_id,
            earlier.direction == direction,
            earlier.status.in_(unfinished),
        )
        .scalar_subquery()
    )
    query = (
        select(m.id, m.attempts, m.status)
        .where(
            m.direction == direction,
            m.status.in_(unfinished),
            m.id == earliest_unfinished,
            or_(m.next_attempt_at.is_(None), m.next_attempt_at <= bindparam("now")),
        )
        .order_by(m.id)
        .limit(limit)
    )
    if skip_channels:
        query = query.where(m.channel.not_in(skip_channels))
    if lock:
        query = query.with_for_update(skip_locked=True, of=_MESSAGES)
    return query


def bound_fence(status: Any) -> tuple[ColumnElement[bool], ...]:
    """:func:`fenced` for a statement built once: bound parameters, which
    :func:`fence_params` fills (``status`` a value, or a bound parameter itself)."""
    m = _MESSAGES.c
    return (
        m.id == bindparam("fence_id"),
        m.attempts == bindparam("fence_attempts"),
        m.status == status,
    )


def fence_params(claim: Claim) -> dict[str, int]:
    return {"fence_id": claim.message_id, "fence_attempts": claim.attempts}


@lru_cache(maxsize=32)
def _fenced_update(columns: tuple[str, ...]) -> Update:
    return (
        update(_MESSAGES)
        .where(*bound_fence(bindparam("fence_status")))
        .values({name: bindparam(f"new_{name}") for name in columns})
    )


def fenced_update(
    session: Session, claim: Claim, claimed_status: str, values: Mapping[str, Any]
) -> bool:
    """Set ``values`` on the claimed row if ``claim`` still holds it (the caller commits)."""
    params: dict[str, Any] = {f"new_{name}": value for name, value in values.items()}
    params.update(fence_params(claim), fence_status=claimed_status)
    result = session.connection().execute(_fenced_update(tuple(sorted(values))), params)
    return result.rowcount == 1


def claim_rows(
    session: Session,
    *,
    direction: str,
    unfinished: tuple[str, ...],
    claimed_status: str,
    lease: timedelta,
    limit: int,
    skip_channels: tuple[str, ...] = (),
) -> list[Claim]:
    """Claim up to ``limit`` rows, at most one per conversation, none on ``skip_channels``
    (halted ones); commits."""
    if limit <= 0:
        return []
    now = scheduling_now()
    connection = session.connection()
    lock = connection.dialect.name == "postgresql"
    query = _claim_query(direction, tuple(unfinished), tuple(skip_channels), limit, lock)
    candidates = connection.execute(query, {"now": now}).all()
    claims = []
    for message_id, attempts, status in candidates:
        claim = Claim(message_id, attempts + 1)
        taken = fenced_update(
            session,
            Claim(message_id, attempts),
            status,
            {"status": claimed_status, "attempts": attempts + 1, "next_attempt_at": now + lease},
        )
        if taken:
            claims.append(claim)
    session.commit()
    return claims


def fenced(claim: Claim, claimed_status: str) -> tuple[object, ...]:
    """WHERE clauses that hold only while ``claim`` is still the live claim of its row."""
    return (
        Message.id == claim.message_id,
        Message.attempts == claim.attempts,
        Message.status == claimed_status,
    )


def release_after(
    session: Session, claim: Claim, claimed_status: str, back_to: str, delay: float, error: str
) -> bool:
    """Put a claimed row back to ``back_to`` to be retried after ``delay`` seconds."""
    released = fenced_update(
        session,
        claim,
        claimed_status,
        {
            "status": back_to,
            "next_attempt_at": scheduling_now() + timedelta(seconds=delay),
            "error_code": error[:32],
        },
    )
    session.commit()
    return released


def earliest_due(
    session: Session,
    direction: str,
    unfinished: tuple[str, ...],
    *,
    skip_channels: tuple[str, ...] = (),
) -> datetime | None:
    """When the next back-off or lease of ``direction`` ends (None: nothing is waiting),
    leaving out the rows on ``skip_channels`` (halted ones). Asked each time a worker goes
    idle, so a statement built once (a tenth of the workers' CPU when built per call)."""
    query = _earliest_due_query(direction, tuple(unfinished), tuple(skip_channels))
    due: datetime | None = session.connection().execute(query).scalar()
    return due


@lru_cache(maxsize=64)
def _earliest_due_query(
    direction: str, unfinished: tuple[str, ...], skip_channels: tuple[str, ...]
) -> Select[Any]:
    m = _MESSAGES.c
    query = select(func.min(m.next_attempt_at)).where(
        m.direction == direction, m.status.in_(unfinished), m.next_attempt_at.is_not(None)
    )
    if skip_channels:
        query = query.where(m.channel.not_in(skip_channels))
    return query


def recover_single_process(session: Session) -> int:
    """On SQLite (one gateway process by design) a claim at start-up belonged to a dead
    process: make it claimable at once instead of waiting for its lease."""
    if session.get_bind().dialect.name != "sqlite":
        return 0
    count = 0
    for direction, claimed, back_to in (
        ("in", InboundStatus.PROCESSING, InboundStatus.PENDING),
        ("out", OutboundStatus.SENDING, OutboundStatus.QUEUED),
    ):
        result = session.execute(
            update(Message)
            .where(Message.direction == direction, Message.status == claimed)
            .values(status=back_to, next_attempt_at=None)
        )
        count += result.rowcount  # type: ignore[attr-defined]
    session.commit()
    return count


def queue_depths(session: Session) -> dict[str, int]:
    """How many messages wait: inbound to process, outbound to send, held, scheduled."""
    waiting = (*INBOUND_UNFINISHED, *OUTBOUND_UNFINISHED, OutboundStatus.HELD)
    rows = session.execute(
        select(Message.direction, Message.status, func.count())
        # Naming both directions lets the (direction, status) index find the waiting rows;
        # by status alone the count read the index of every message ever stored.
        .where(
            Message.direction.in_(("in", "out")),
            Message.status.in_((*waiting, OutboundStatus.SCHEDULED)),
        )
        .group_by(Message.direction, Message.status)
    ).all()
    depths = {"inbox": 0, "outbox": 0, "held": 0, "scheduled": 0}
    for direction, status, count in rows:
        if direction == "in" and status in INBOUND_UNFINISHED:
            depths["inbox"] += int(count)
        elif direction == "out" and status == OutboundStatus.HELD:
            depths["held"] += int(count)
        elif direction == "out" and status == OutboundStatus.SCHEDULED:
            depths["scheduled"] += int(count)
        elif direction == "out" and status in OUTBOUND_UNFINISHED:
            depths["outbox"] += int(count)
    return depths
