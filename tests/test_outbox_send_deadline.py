"""A company-started message never leaves after the debtor's contact window has closed.

The gateway's clock is pinned to Monday 2026-11-23 12:00 Mexico City (18:00 UTC).
"""

from __future__ import annotations

from sqlalchemy import select

from bot.channels.base import RenderedMessage
from bot.clock import Clock
from bot.config import Settings
from bot.conversation.outbox import enqueue
from bot.db.engine import session_factory
from bot.db.models import AuditEntry
from bot.domain.conversations import get_or_create_conversation
from tests.conftest_gateway import wait_outbound_settled
from tests.graph_stub import GraphStub

PHONE = "+525512349876"
REMINDER = RenderedMessage(
    kind="template",
    text="Recordatorio",
    body={
        "type": "template",
        "template": {"name": "recordatorio_preventivo", "language": {"code": "es_MX"}},
    },
)


def queue_reminder(db_url: str, settings: Settings, send_before: str) -> int:
    clock = Clock.from_setting(settings.now, settings.timezone)
    with session_factory(db_url)() as session:
        conversation = get_or_create_conversation(session, clock, "whatsapp", PHONE)
        row = enqueue(
            session,
            clock,
            conversation_id=conversation.id,
            channel="whatsapp",
            rendered=REMINDER,
            author="system",
            extra={"send_before": send_before},
        )
        session.commit()
        return row.id


def test_a_reminder_whose_window_closed_is_not_sent_and_is_audited(
    db_url: str, gateway_settings: Settings, graph_server: GraphStub, start_gateway
) -> None:
    # The window closed at 11:00 Mexico City, an hour before "now": e.g. sending was halted.
    message_id = queue_reminder(db_url, gateway_settings, "2026-11-23T17:00:00+00:00")
    start_gateway()
    (row,) = wait_outbound_settled(db_url)
    assert (row.id, row.status, row.error_code) == (message_id, "failed", "window_closed")
    assert graph_server.sends == []
    with session_factory(db_url)() as session:
        reasons = [
            entry.details.get("reason")
            for entry in session.scalars(
                select(AuditEntry).where(AuditEntry.action == "suppression")
            )
        ]
    assert reasons == ["contact_window_ended_before_send"]


def test_a_reminder_inside_its_window_goes_out(
    db_url: str, gateway_settings: Settings, graph_server: GraphStub, start_gateway
) -> None:
    # The window closes at 22:00 Mexico City (04:00 UTC next day).
    queue_reminder(db_url, gateway_settings, "2026-11-24T04:00:00+00:00")
    start_gateway()
    (send,) = graph_server.wait_for_sends(1)
    assert send.body["template"]["name"] == "recordatorio_preventivo"
    (row,) = wait_outbound_settled(db_url)
    assert row.status == "sent"
