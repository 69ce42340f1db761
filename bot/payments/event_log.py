"""Every payment processor event received, what it did to the ledger, and the daily report.

The payment webhook records each verified, parsed event once (by provider and event id):
``applied`` (a new payment), ``duplicate`` (a redelivery of one already applied),
``status`` (an expiry, cancellation or refund recorded on its code) or ``unmatched`` (no
payment code has its reference: the money is not in the ledger and someone must look).
``acuerdo payments report --date D`` lists the events received that day (the creditor's
time zone) as CSV, unmatched ones flagged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from enum import Enum

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import Account, ProcessorEvent
from bot.domain.money import cents_to_pesos
from bot.payments.provider import PaymentEvent

REPORT_COLUMNS = (
    "received_at",
    "provider",
    "event_id",
    "status",
    "reference",
    "amount",
    "outcome",
    "account_id",
    "payment_id",
    "needs_attention",
)


class EventOutcome(str, Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STATUS = "status"
    UNMATCHED = "unmatched"


def record_event(
    session: Session,
    clock: Clock,
    event: PaymentEvent,
    outcome: EventOutcome,
    *,
    account_id: int | None = None,
    payment_id: int | None = None,
) -> None:
    """Record ``event`` and what it did, unless this event id is already recorded (a
    redelivery keeps the first outcome: that is what the event did)."""
    known = session.scalar(
        select(ProcessorEvent.id).where(
            ProcessorEvent.provider == event.provider, ProcessorEvent.event_id == event.event_id
        )
    )
    if known is not None:
        return
    session.add(
        ProcessorEvent(
            provider=event.provider,
            event_id=event.event_id,
            status=event.status,
            reference=event.reference[:64],
            amount_cents=event.amount_cents,
            outcome=outcome.value,
            account_id=account_id,
            payment_id=payment_id,
            received_at=clock.now_utc(),
        )
    )
    session.flush()


def events_received_on(session: Session, clock: Clock, day: date) -> list[ProcessorEvent]:
    """The events received on ``day`` in the clock's (the creditor's) time zone."""
    start = datetime.combine(day, time.min, tzinfo=clock.tz)
    end = start + timedelta(days=1)
    return list(
        session.scalars(
            select(ProcessorEvent)
            .where(ProcessorEvent.received_at >= start, ProcessorEvent.received_at < end)
            .order_by(ProcessorEvent.received_at, ProcessorEvent.id)
        )
    )


def report_csv(session: Session, clock: Clock, events: Sequence[ProcessorEvent]) -> str:
    """The report as CSV: one row per event, local times, pesos, the account's own id."""
    accounts = {
        account.id: account.external_id
        for account in session.scalars(
            select(Account).where(Account.id.in_({e.account_id for e in events if e.account_id}))
        )
    }
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    for event in events:
        writer.writerow(
            (
                event.received_at.astimezone(clock.tz).isoformat(timespec="seconds"),
                event.provider,
                event.event_id,
                event.status,
                event.reference,
                f"{cents_to_pesos(event.amount_cents):.2f}",
                event.outcome,
                accounts.get(event.account_id or 0, ""),
                event.payment_id or "",
                "yes" if event.outcome == EventOutcome.UNMATCHED.value else "",
            )
        )
    return out.getvalue()
