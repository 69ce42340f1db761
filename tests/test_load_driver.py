"""The load driver's closed loop: a reply releases a debtor's next message only if the
ledger ties it to the message just sent (the bench measured a driver that wrote ahead)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.orm import Session

from bot.db.models import Conversation, Message
from tests.graph_stub import GraphRequest
from tests.load import ReplyLedger

WHEN = datetime(2026, 11, 23, 18, 0, tzinfo=timezone.utc)


def _message(conversation: Conversation, direction: str, **fields: object) -> Message:
    row = Message(
        conversation=conversation,
        channel="whatsapp",
        direction=direction,
        author="debtor" if direction == "in" else "bot",
        kind="text",
        status="done" if direction == "in" else "sent",
        created_at=WHEN,
        updated_at=WHEN,
        **fields,
    )
    return row


def _send(key: str) -> GraphRequest:
    return GraphRequest(
        path="/v21.0/123/messages",
        headers={},
        body={"to": "5215512345678", "type": "text", "biz_opaque_callback_data": key},
    )


def test_a_late_bubble_of_the_last_turn_answers_that_turn_not_the_new_one(
    session: Session, db_url: str
) -> None:
    chat = Conversation(
        channel="whatsapp", address="+5215512345678", created_at=WHEN, updated_at=WHEN
    )
    session.add(chat)
    first = _message(chat, "in", external_id="wamid.turn.1", text="15/03/1985")
    session.add(first)
    session.flush()
    for key in ("bubble-1", "bubble-2"):  # one turn answered in two bubbles
        session.add(
            _message(
                chat, "out", text="...", payload={"in_reply_to": first.id, "idempotency_key": key}
            )
        )
    session.commit()
    ledger = ReplyLedger(db_url)

    assert ledger.answered_wamid(_send("bubble-1")) == "wamid.turn.1"

    second = _message(chat, "in", external_id="wamid.turn.2", text="por que me cobran?")
    session.add(second)
    session.flush()
    session.add(
        _message(
            chat,
            "out",
            text="...",
            payload={"in_reply_to": second.id, "idempotency_key": "answer-2"},
        )
    )
    session.commit()
    # The second bubble of turn 1 reaches the debtor after turn 2 was sent: it is turn 1's.
    assert ledger.answered_wamid(_send("bubble-2")) == "wamid.turn.1"
    assert ledger.answered_wamid(_send("answer-2")) == "wamid.turn.2"


def test_a_send_the_ledger_does_not_tie_to_a_message_answers_nothing(db_url: str) -> None:
    ledger = ReplyLedger(db_url)
    assert ledger.answered_wamid(_send("a-campaign-reminder")) is None
    assert (
        ledger.answered_wamid(GraphRequest(path="/v21.0/123/messages", headers={}, body={})) is None
    )
