"""``/metrics``' queue depths (``claims.queue_depths``): right counts, read from the index.

Prometheus asks every few seconds, for the life of the ledger: the count must find the
waiting rows through the (direction, status) index, not read every message ever stored.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.conversation.claims import queue_depths
from bot.db.models import Message
from bot.domain.conversations import get_or_create_conversation


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

    statements: list[tuple[str, tuple[object, ...]]] = []
    connection = session.connection()

    def record(_conn, _cursor, statement, params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        statements.append((statement, tuple(params)))

    event.listen(connection, "before_cursor_execute", record)
    try:
        depths = queue_depths(session)
    finally:
        event.remove(connection, "before_cursor_execute", record)
    assert depths == {"inbox": 2, "outbox": 2, "held": 1, "scheduled": 1}
    statement, params = statements[0]
    plan = " | ".join(
        str(row[-1])
        for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
    )
    assert "SEARCH messages USING COVERING INDEX ix_messages_status_next" in plan, plan
