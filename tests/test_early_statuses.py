"""Delivery receipts that arrive before their send is recorded are parked, not lost.

The fast path (the outbox applies them when it records the send) is covered over HTTP in
``test_channel_fallback.py``; these cover the sweep that catches the race the fast path can
miss, and the expiry of receipts that never meet a send of ours.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.base import Delivery, RenderedMessage, StatusUpdate
from bot.clock import Clock, wall_clock_utc
from bot.conversation.claims import OutboundStatus
from bot.conversation.inbox import EARLY_STATUS_TTL, apply_early_statuses, store_delivery
from bot.conversation.outbox import enqueue
from bot.db.models import EarlyStatus, Message
from bot.domain.conversations import get_or_create_conversation
from bot.policy import Policy

PHONE = "+525512340001"


def _outbound(session: Session, clock: Clock) -> Message:
    conversation = get_or_create_conversation(session, clock, "whatsapp", PHONE)
    row = enqueue(
        session,
        clock,
        conversation_id=conversation.id,
        channel="whatsapp",
        rendered=RenderedMessage(kind="text", text="Hola", body={"type": "text"}),
    )
    session.commit()
    return row


def _receipt(wamid: str, status: str) -> Delivery:
    return Delivery(statuses=[StatusUpdate(channel="whatsapp", external_id=wamid, status=status)])


def test_receipts_for_an_unrecorded_send_are_parked_once_each(
    session: Session, clock: Clock, policy: Policy
) -> None:
    first = store_delivery(session, clock, _receipt("wamid.A", "delivered"), policy=policy)
    again = store_delivery(session, clock, _receipt("wamid.A", "delivered"), policy=policy)
    read = store_delivery(session, clock, _receipt("wamid.A", "read"), policy=policy)
    assert (first.parked, first.statuses) == (1, 0)
    assert again.parked == 1 and read.parked == 1  # a redelivery parks nothing new
    parked = session.scalars(select(EarlyStatus.status).order_by(EarlyStatus.id)).all()
    assert parked == ["delivered", "read"]


def test_the_sweep_applies_receipts_whose_send_got_recorded_meanwhile(
    session: Session, clock: Clock, policy: Policy
) -> None:
    row = _outbound(session, clock)
    store_delivery(session, clock, _receipt("wamid.B", "delivered"), policy=policy)
    store_delivery(session, clock, _receipt("wamid.B", "read"), policy=policy)
    # The outbox records the send without seeing the receipts (the race).
    row.status, row.external_id = OutboundStatus.SENT, "wamid.B"
    session.commit()
    assert apply_early_statuses(session, clock) == 2
    session.commit()
    session.refresh(row)
    assert row.status == OutboundStatus.READ
    assert session.scalars(select(EarlyStatus)).all() == []


def test_receipts_that_never_meet_a_send_expire(
    session: Session, clock: Clock, policy: Policy
) -> None:
    store_delivery(session, clock, _receipt("wamid.old", "delivered"), policy=policy)
    store_delivery(session, clock, _receipt("wamid.new", "delivered"), policy=policy)
    old = session.scalars(select(EarlyStatus).where(EarlyStatus.external_id == "wamid.old")).one()
    old.received_at = wall_clock_utc() - EARLY_STATUS_TTL - timedelta(minutes=1)
    session.commit()
    assert apply_early_statuses(session, clock) == 0
    session.commit()
    assert session.scalars(select(EarlyStatus.external_id)).all() == ["wamid.new"]


def test_a_receipt_without_an_id_is_not_parked(
    session: Session, clock: Clock, policy: Policy
) -> None:
    result = store_delivery(session, clock, _receipt("", "delivered"), policy=policy)
    assert (result.parked, result.statuses) == (0, 0)
    assert session.scalars(select(EarlyStatus)).all() == []
