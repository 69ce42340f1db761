"""Collections results per day, campaign step and segment (domain level: no HTTP, no Jinja).

Every outcome is attributed to the **most recent reminder** the account (or, for replies
and opt-outs, the conversation or number) received in the 7 days before it, and counted on
that reminder's day, step and segment: a row reads "the D+3 reminders of Nov 20 were
delivered 11 times, answered 4 times and brought $3,400". Outcomes with no reminder in the
7 days before them are counted on their own day under the step ``none`` ("sin
recordatorio"), so the totals match the ledger. Delays and suppressions are counted on the
day the gate decided them (one audit entry per change, not per hourly run).

Days are dates in the operator's time zone (``ACUERDO_TIMEZONE``).
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import (
    Agreement,
    AuditEntry,
    CampaignSend,
    CampaignSendStatus,
    Direction,
    Message,
    Payment,
    Promise,
    PromiseStatus,
)

ATTRIBUTION_DAYS = 7
NO_STEP = "none"
DELIVERED = frozenset({"delivered", "read"})
COUNTS = (
    "sent",
    "delivered",
    "read",
    "replied",
    "verified",
    "promises_made",
    "promises_kept",
    "recovered_cents",
    "agreements",
    "handoffs",
    "contained",
    "opt_outs",
    "delayed",
    "suppressed",
)


@dataclass
class MetricsRow:
    """The results of one day, step and segment."""

    day: date
    step: str
    segment: str
    sent: int = 0
    delivered: int = 0
    read: int = 0
    replied: int = 0  # reminders answered, or (step none) conversations the debtor started
    verified: int = 0
    promises_made: int = 0
    promises_kept: int = 0
    recovered_cents: int = 0
    agreements: int = 0
    handoffs: int = 0
    contained: int = 0  # of ``replied``: conversations that never went to an agent
    opt_outs: int = 0
    delayed: int = 0
    suppressed: int = 0
    handoffs_by_reason: Counter[str] = field(default_factory=Counter)
    suppressed_by_reason: Counter[str] = field(default_factory=Counter)

    @property
    def containment(self) -> float | None:
        """Share of answered conversations the bot resolved without an agent."""
        return self.contained / self.replied if self.replied else None

    def add(self, other: MetricsRow) -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.handoffs_by_reason.update(other.handoffs_by_reason)
        self.suppressed_by_reason.update(other.suppressed_by_reason)


@dataclass
class Metrics:
    start: date
    end: date
    rows: list[MetricsRow]
    total: MetricsRow

    def by_day(self) -> list[MetricsRow]:
        return _rollup(self.rows, lambda r: (r.day, "", ""), self.start, self.end)

    def by_step(self) -> list[MetricsRow]:
        return _rollup(self.rows, lambda r: (self.start, r.step, r.segment), None, None)

    @property
    def handoff_reasons(self) -> list[str]:
        return sorted(self.total.handoffs_by_reason)

    @property
    def suppression_reasons(self) -> list[str]:
        return sorted(self.total.suppressed_by_reason)


def _rollup(
    rows: Iterable[MetricsRow],
    key: object,
    start: date | None,
    end: date | None,
) -> list[MetricsRow]:
    grouped: dict[tuple[date, str, str], MetricsRow] = {}
    if start is not None and end is not None:  # every day of the range, also empty ones
        day = start
        while day <= end:
            grouped[(day, "", "")] = MetricsRow(day, "", "")
            day += timedelta(days=1)
    for row in rows:
        k = key(row)  # type: ignore[operator]
        target = grouped.setdefault(k, MetricsRow(*k))
        target.add(row)
    return [grouped[k] for k in sorted(grouped, key=_sort_key)]


def _step_order(step: str) -> tuple[int, int, str]:
    if step.startswith("due"):
        try:
            return (0, int(step[3:]), step)
        except ValueError:
            return (0, 0, step)
    return (1 if step != NO_STEP else 2, 0, step)


def _sort_key(key: tuple[date, str, str]) -> tuple[date, tuple[int, int, str], str]:
    return key[0], _step_order(key[1]), key[2]


@dataclass(frozen=True)
class _Send:
    id: int
    account_id: int
    contact_point_id: int | None
    conversation_id: int | None
    at: datetime
    key: tuple[date, str, str]


class _Touches:
    """The reminders of one subject (account, conversation or number), in time order."""

    def __init__(self) -> None:
        self._at: list[datetime] = []
        self._sends: list[_Send] = []

    def add(self, send: _Send) -> None:
        index = bisect.bisect_right(self._at, send.at)
        self._at.insert(index, send.at)
        self._sends.insert(index, send)

    def last_before(self, moment: datetime) -> _Send | None:
        index = bisect.bisect_right(self._at, moment) - 1
        if index < 0:
            return None
        send = self._sends[index]
        return send if moment - send.at <= timedelta(days=ATTRIBUTION_DAYS) else None


class _Attribution:
    def __init__(self, clock: Clock, sends: list[_Send]) -> None:
        self.clock = clock
        self.by_account: defaultdict[int, _Touches] = defaultdict(_Touches)
        self.by_conversation: defaultdict[int, _Touches] = defaultdict(_Touches)
        self.by_contact: defaultdict[int, _Touches] = defaultdict(_Touches)
        for send in sends:
            self.by_account[send.account_id].add(send)
            if send.conversation_id is not None:
                self.by_conversation[send.conversation_id].add(send)
            if send.contact_point_id is not None:
                self.by_contact[send.contact_point_id].add(send)

    def day(self, moment: datetime) -> date:
        return moment.astimezone(self.clock.tz).date()

    def organic(self, moment: datetime) -> tuple[date, str, str]:
        return (self.day(moment), NO_STEP, NO_STEP)


def collections_metrics(session: Session, clock: Clock, start: date, end: date) -> Metrics:
    """The results of the reminders sent from ``start`` to ``end`` (inclusive, local days)."""
    tz = clock.tz
    window_start = datetime.combine(start, time(0), tzinfo=tz)
    window_end = datetime.combine(end + timedelta(days=1), time(0), tzinfo=tz)
    since = window_start - timedelta(days=ATTRIBUTION_DAYS)
    rows: dict[tuple[date, str, str], MetricsRow] = {}

    def row(key: tuple[date, str, str]) -> MetricsRow:
        return rows.setdefault(key, MetricsRow(*key))

    send_rows = session.execute(
        select(CampaignSend, Message.status)
        .outerjoin(Message, Message.id == CampaignSend.message_id)
        .where(
            CampaignSend.status == CampaignSendStatus.SENT.value,
            CampaignSend.sent_at >= since,
            CampaignSend.sent_at < window_end,
        )
    ).all()
    sends: list[_Send] = []
    for send, status in send_rows:
        if send.sent_at is None:
            continue
        item = _Send(
            id=send.id,
            account_id=send.account_id,
            contact_point_id=send.contact_point_id,
            conversation_id=send.conversation_id,
            at=send.sent_at,
            key=(send.sent_at.astimezone(tz).date(), send.step, send.segment),
        )
        sends.append(item)
        target = row(item.key)
        target.sent += 1
        target.delivered += status in DELIVERED
        target.read += status == "read"
    touches = _Attribution(clock, sends)

    # Replies: the debtor wrote after a reminder (once per reminder); conversations the
    # debtor started with no reminder before count once per conversation and day.
    replied: set[int] = set()
    organic_conversations: dict[tuple[int, date], datetime] = {}
    for conversation_id, at in session.execute(
        select(Message.conversation_id, Message.created_at).where(
            Message.direction == Direction.IN.value, Message.created_at >= since
        )
    ):
        send = touches.by_conversation[conversation_id].last_before(at)
        if send is not None:
            if send.id not in replied:
                replied.add(send.id)
                row(send.key).replied += 1
        else:
            organic_conversations.setdefault((conversation_id, touches.day(at)), at)
    for (_conversation_id, day), _at in organic_conversations.items():
        row((day, NO_STEP, NO_STEP)).replied += 1

    # Handoffs, by reason; a reminder (or organic conversation) that went to an agent is
    # not "contained".
    handed_off_sends: set[int] = set()
    handed_off_conversations: set[int] = set()
    for entry in _audit(session, "handoff_requested", since):
        send = _touch_for(touches, entry)
        reason = str(entry.details.get("reason") or "other")
        target = row(send.key if send else touches.organic(entry.at))
        target.handoffs += 1
        target.handoffs_by_reason[reason] += 1
        if send is not None:
            handed_off_sends.add(send.id)
        if entry.conversation_id is not None:
            handed_off_conversations.add(entry.conversation_id)
    for send in sends:
        if send.id in replied and send.id not in handed_off_sends:
            row(send.key).contained += 1
    for (conversation_id, day), _at in organic_conversations.items():
        if conversation_id not in handed_off_conversations:
            row((day, NO_STEP, NO_STEP)).contained += 1

    for entry in _audit(session, "identity_verified", since):
        send = _touch_for(touches, entry)
        row(send.key if send else touches.organic(entry.at)).verified += 1

    for entry in _audit(session, "opt_out", since):
        contact = entry.details.get("contact_point_id")
        send = touches.by_contact[contact].last_before(entry.at) if contact else None
        send = send or _touch_for(touches, entry)
        row(send.key if send else touches.organic(entry.at)).opt_outs += 1

    for promise in session.scalars(select(Promise).where(Promise.created_at >= since)):
        send = touches.by_account[promise.account_id].last_before(promise.created_at)
        target = row(send.key if send else touches.organic(promise.created_at))
        if promise.status == PromiseStatus.CANCELLED.value:
            continue  # replaced by a later promise, which is the one counted
        target.promises_made += 1
        target.promises_kept += promise.status == PromiseStatus.KEPT.value

    for payment in session.scalars(select(Payment).where(Payment.paid_at >= since)):
        send = touches.by_account[payment.account_id].last_before(payment.paid_at)
        row(
            send.key if send else touches.organic(payment.paid_at)
        ).recovered_cents += payment.amount_cents

    for agreement in session.scalars(select(Agreement).where(Agreement.created_at >= since)):
        send = touches.by_account[agreement.account_id].last_before(agreement.created_at)
        row(send.key if send else touches.organic(agreement.created_at)).agreements += 1

    for action in ("delay", "suppression"):
        for entry in _audit(session, action, since):
            step = str(entry.details.get("step") or entry.details.get("kind") or NO_STEP)
            segment = str(entry.details.get("segment") or NO_STEP)
            target = row((touches.day(entry.at), step, segment))
            if action == "delay":
                target.delayed += 1
            else:
                target.suppressed += 1
                target.suppressed_by_reason[str(entry.details.get("reason") or "other")] += 1

    kept = [r for key, r in rows.items() if start <= key[0] <= end]
    kept.sort(key=lambda r: _sort_key((r.day, r.step, r.segment)))
    total = MetricsRow(start, "", "")
    for kept_row in kept:
        total.add(kept_row)
    return Metrics(start=start, end=end, rows=kept, total=total)


def _audit(session: Session, action: str, since: datetime) -> list[AuditEntry]:
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == action, AuditEntry.at >= since)
            .order_by(AuditEntry.at)
        )
    )


def _touch_for(touches: _Attribution, entry: AuditEntry) -> _Send | None:
    """The reminder an audit entry follows: by its account, else by its conversation."""
    if entry.account_id is not None:
        send = touches.by_account[entry.account_id].last_before(entry.at)
        if send is not None:
            return send
    if entry.conversation_id is not None:
        return touches.by_conversation[entry.conversation_id].last_before(entry.at)
    return None
