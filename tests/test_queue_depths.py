"""``/metrics``' queue depths (``claims.queue_depths``): right counts, read from the index.

Prometheus asks every few seconds, for the life of the ledger: the count must find the
waiting rows through the (direction, status) index, not read every message ever stored.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.conversation.claims import queue_depths
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
