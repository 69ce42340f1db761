"""Statements asked again and again for the life of the ledger read from an index: the
queue depths of ``/metrics`` and the claims' look at a conversation's earliest unfinished
row.

Prometheus asks every few seconds, for the life of the ledger: the count must find the
waiting rows through the (direction, status) index, not read every message ever stored.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.conversation.claims import INBOUND_UNFINISHED, claim_rows, queue_depths
from bot.db.models import Message
from bot.domain.conversations import get_or_create_conversation
from tests.sql_plans import plans_of


def _message(conversation_id: int, direction: str, status: str, clock: Clock) -> Message:
    now = clock.now_utc()
    return Message(
        conversation_id=conversation_id,
        channel="whatsapp",
        direction=direction,
        author="debtor" if direction == "in" else "bot",
        kind="text",
        text="hola",
        status=status,
        created_at=now,
        updated_at=now,
    )


def test_the_depths_count_only_what_waits_and_use_the_index(session: Session, clock: Clock) -> None:
    conversation = get_or_create_conversation(session, clock, "whatsapp", "+525512345678")
    rows = [
        ("in", "pending"),
        ("in", "processing"),
        ("in", "done"),
        ("in", "done"),
        ("out", "queued"),
        ("out", "sending"),
        ("out", "held"),
        ("out", "scheduled"),
        ("out", "sent"),
        ("out", "read"),
    ]
    for direction, status in rows:
        session.add(_message(conversation.id, direction, status, clock))
    session.flush()

    depths, plans = plans_of(session, lambda: queue_depths(session))
    assert depths == {"inbox": 2, "outbox": 2, "held": 1, "scheduled": 1}
    assert "SEARCH messages USING COVERING INDEX ix_messages_status_next" in plans[0], plans


def test_a_claim_finds_a_conversation_s_earliest_unfinished_row_by_index(
    session: Session, clock: Clock
) -> None:
    """A chat of months has thousands of rows: claiming its next message must not read them
    all (the claim keeps each conversation in order by asking for its earliest unfinished
    row)."""
    conversation = get_or_create_conversation(session, clock, "whatsapp", "+525512345678")
    for status in ("done", "done", "pending", "pending"):
        session.add(_message(conversation.id, "in", status, clock))
    session.commit()

    claimed, plans = plans_of(
        session,
        lambda: claim_rows(
            session,
            direction="in",
            unfinished=INBOUND_UNFINISHED,
            claimed_status="processing",
            lease=timedelta(seconds=90),
            limit=8,
        ),
    )
    assert len(claimed) == 1  # one per conversation, the earliest pending one
    assert "ix_messages_conversation_unfinished" in plans[0], plans[0]
