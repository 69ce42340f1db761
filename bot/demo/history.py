"""A few weeks of simulated collections history for the demo portfolio, through the real code.

Day by day, with the clock pinned: the campaign runs at 10:00 (``run_campaign``: the gate,
the schedule, payment links, the outbox, promise settlement and follow-ups); the outbox's
send is simulated (each row gets a Graph-like message id) and the debtors' side arrives
through the inbox (``store_delivery``: delivery and read receipts, replies). What debtors
then do goes through the domain: identity checks, promises, payment codes paid through the
payment provider's event path, settlements and plans, handoffs (closed by a demo agent),
opt-outs. Behaviour is drawn from a seeded random generator, so the history is the same on
every machine for the same "today".

Idempotent: an ``demo_history`` audit entry marks a generated history; a second call does
nothing.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.campaigns.compose import PaymentLinks
from bot.campaigns.runner import CampaignContext, run_campaign
from bot.channels.base import ChannelAdapter, InboundKind, InboundMessage, StatusUpdate
from bot.channels.base import Delivery as ChannelDelivery
from bot.clock import Clock
from bot.console_users import create_console_user
from bot.conversation.claims import InboundStatus, OutboundStatus
from bot.conversation.inbox import store_delivery
from bot.db.models import (
    Account,
    AccountStatus,
    AuditEntry,
    CampaignSend,
    ConsoleUser,
    Conversation,
    ConversationState,
    Direction,
    Message,
)
from bot.domain import handoff
from bot.domain.accounts import balance_breakdown
from bot.domain.audit import record_audit
from bot.domain.conversations import check_identity, opt_out, request_handoff
from bot.domain.errors import DomainError
from bot.domain.negotiation import accept_offer, offer_plan, offer_settlement
from bot.domain.promises import record_promise
from bot.payments import PaymentEvent, PaymentProvider, apply_payment_event
from bot.policy import Policy

if TYPE_CHECKING:
    from bot.config import Settings

MARKER = "demo_history"
DEMO_AGENT = "asesora.demo"
CAMPAIGN_HOUR = time(10, 0)
# What debtors write back (simulated input; the bot's side is the campaign's templates).
REPLIES = (
    "Hola, ¿cuánto debo exactamente?",
    "ok gracias, pago el viernes",
    "me pueden dar la referencia x fa",
    "ahorita no tengo, ¿hay descuento?",
    "¿puedo pagar a meses?",
    "quiero hablar con alguien",
)
HANDOFF_REASONS = ("debtor_request", "hardship", "offer_beyond_limit", "repeated_fallback")


@dataclass
class HistoryReport:
    days: int = 0
    reminders: int = 0
    replies: int = 0
    promises: int = 0
    payments: int = 0
    agreements: int = 0
    handoffs: int = 0
    opt_outs: int = 0
    skipped: bool = False

    def summary(self) -> str:
        if self.skipped:
            return "Demo history already generated."
        return (
            f"Demo history: {self.days} days, {self.reminders} reminders, {self.replies} "
            f"replies, {self.promises} promises, {self.payments} payments, {self.agreements} "
            f"agreements, {self.handoffs} handoffs, {self.opt_outs} opt-outs."
        )


@dataclass
class _Plans:
    """Things the simulation scheduled for later days."""

    payments: dict[date, list[tuple[int, int]]] = field(default_factory=dict)  # account, cents
    closes: dict[date, list[int]] = field(default_factory=dict)  # conversation ids


def generated(session: Session) -> bool:
    return session.scalar(select(AuditEntry.id).where(AuditEntry.action == MARKER)) is not None


def _pinned(day: date, moment: time, zone: ZoneInfo) -> Clock:
    return Clock(tz=zone, pinned=datetime.combine(day, moment, tzinfo=zone))


class _Simulation:
    def __init__(
        self,
        session: Session,
        policy: Policy,
        adapters: Mapping[str, ChannelAdapter],
        provider: PaymentProvider,
        public_url: str,
        zone: ZoneInfo,
        seed: int,
    ) -> None:
        self.session = session
        self.policy = policy
        self.adapters = adapters
        self.provider = provider
        self.public_url = public_url
        self.zone = zone
        self.random = random.Random(seed)
        self.plans = _Plans()
        self.report = HistoryReport()
        self._agent: ConsoleUser | None = None
        self._wamids = 0

    # -- helpers -------------------------------------------------------------------------
    def clock(self, day: date, hour: int, minute: int = 0) -> Clock:
        return _pinned(day, time(hour, minute), self.zone)

    def agent(self, clock: Clock) -> ConsoleUser:
        if self._agent is None:
            found = self.session.scalars(
                select(ConsoleUser).where(ConsoleUser.username == DEMO_AGENT)
            ).first()
            self._agent = found or create_console_user(
                self.session, clock, DEMO_AGENT, secrets.token_urlsafe(18), "agent"
            )
        return self._agent

    def wamid(self) -> str:
        self._wamids += 1
        return f"wamid.demo.{self._wamids}.{secrets.token_hex(4)}"

    def store(self, clock: Clock, delivery: ChannelDelivery) -> None:
        store_delivery(self.session, clock, delivery, policy=self.policy)

    # -- the days ------------------------------------------------------------------------
    def day(self, day: date) -> None:
        self.report.days += 1
        for account_id, cents in self.plans.payments.pop(day, []):
            self.pay(self.clock(day, 9, self.random.randint(0, 59)), account_id, cents)
        for conversation_id in self.plans.closes.pop(day, []):
            self.close(self.clock(day, 11), conversation_id)
        self.session.commit()
        clock = _pinned(day, CAMPAIGN_HOUR, self.zone)
        ctx = CampaignContext(
            clock=clock,
            policy=self.policy,
            adapters=self.adapters,
            links=PaymentLinks(self.provider, self.public_url),
        )
        run_campaign(self.session, ctx)
        for message in self.queued_today(clock):
            self.deliver(day, message)
        self.session.commit()

    def queued_today(self, clock: Clock) -> list[Message]:
        return list(
            self.session.scalars(
                select(Message)
                .where(
                    Message.direction == Direction.OUT.value,
                    Message.status == OutboundStatus.QUEUED,
                    Message.created_at == clock.now_utc(),
                )
                .order_by(Message.id)
            )
        )

    def deliver(self, day: date, message: Message) -> None:
        """The outbox's send (simulated), then the debtor's side through the inbox."""
        wamid = self.wamid()
        message.status = OutboundStatus.SENT
        message.external_id = wamid
        message.attempts = 1
        self.report.reminders += 1
        self.session.flush()
        roll = self.random.random()
        if roll > 0.93:
            return  # never delivered (phone off, no WhatsApp)
        channel = message.channel
        receipts = [StatusUpdate(channel, wamid, "delivered")]
        read = roll < 0.75
        if read:
            receipts.append(StatusUpdate(channel, wamid, "read"))
        self.store(self.clock(day, 10, 5), ChannelDelivery(statuses=receipts))
        if read and self.random.random() < 0.6:
            self.reply(day, message)

    def reply(self, day: date, message: Message) -> None:
        conversation = self.session.get(Conversation, message.conversation_id)
        account_id = (message.payload or {}).get("account_id")
        account = self.session.get(Account, account_id) if account_id else None
        if conversation is None or account is None:
            return
        hour = self.random.randint(10, 19)
        clock = self.clock(day, hour, self.random.randint(0, 59))
        inbound = InboundMessage(
            channel=conversation.channel,
            external_id=self.wamid(),
            sender=conversation.address,
            kind=InboundKind.TEXT,
            text=self.random.choice(REPLIES),
            timestamp=clock.now_utc(),
        )
        self.store(clock, ChannelDelivery(messages=[inbound]))
        # History: the pipeline answered it long ago (the gateway must not answer it now).
        self.session.execute(
            update(Message)
            .where(Message.external_id == inbound.external_id)
            .values(status=InboundStatus.DONE)
        )
        self.report.replies += 1
        self.outcome(day, hour, clock, conversation, account)

    def outcome(
        self, day: date, hour: int, clock: Clock, conversation: Conversation, account: Account
    ) -> None:
        roll = self.random.random()
        if roll < 0.05:
            opt_out(
                self.session,
                clock,
                conversation.channel,
                conversation.address,
                conversation_id=conversation.id,
            )
            self.report.opt_outs += 1
            return
        check_identity(
            self.session, clock, self.policy, conversation, birth_date=account.debtor.birth_date
        )
        later = self.clock(day, min(hour + 1, 21), 30)
        try:
            if roll < 0.45:
                self.promise(day, later, account, conversation)
            elif roll < 0.62:
                cents = self.amount(later, account)
                self.pay(later, account.id, cents)
            elif roll < 0.74:
                self.agreement(later, account, conversation)
            elif roll < 0.88:
                self.hand_off(day, later, conversation)
        except DomainError:
            pass  # the policy refused (a closed account, an amount too small): no outcome

    def amount(self, clock: Clock, account: Account) -> int:
        balance = balance_breakdown(self.session, account, clock).total_cents
        minimum = account.minimum_payment_cents or balance // 10
        return max(1, min(balance, max(minimum, self.policy.promises.min_amount_cents)))

    def promise(
        self, day: date, clock: Clock, account: Account, conversation: Conversation
    ) -> None:
        promised = day + timedelta(days=self.random.randint(2, 6))
        cents = self.amount(clock, account)
        record_promise(
            self.session,
            clock,
            self.policy,
            account,
            promised_date=promised,
            amount_cents=cents,
            conversation_id=conversation.id,
        )
        self.report.promises += 1
        if self.random.random() < 0.6:  # kept: the money comes on the day (or the day before)
            pay_on = promised - timedelta(days=self.random.randint(0, 1))
            self.plans.payments.setdefault(pay_on, []).append((account.id, cents))

    def agreement(self, clock: Clock, account: Account, conversation: Conversation) -> None:
        if self.random.random() < 0.5:
            offer = offer_settlement(
                self.session, clock, self.policy, account, conversation_id=conversation.id
            )
        else:
            counts = self.policy.plans.installments_allowed
            offer = offer_plan(
                self.session,
                clock,
                self.policy,
                account,
                self.random.choice(counts[:3]),
                conversation_id=conversation.id,
            )
        accept_offer(self.session, clock, self.policy, offer, conversation_id=conversation.id)
        self.report.agreements += 1

    def hand_off(self, day: date, clock: Clock, conversation: Conversation) -> None:
        reason = self.random.choice(HANDOFF_REASONS)
        request_handoff(self.session, clock, conversation, reason=reason)
        self.report.handoffs += 1
        self.plans.closes.setdefault(day + timedelta(days=1), []).append(conversation.id)

    def close(self, clock: Clock, conversation_id: int) -> None:
        conversation = self.session.get(Conversation, conversation_id)
        if conversation is None or conversation.state != ConversationState.QUEUED.value:
            return
        agent = self.agent(clock)
        handoff.claim(self.session, clock, conversation, agent)
        handoff.close(self.session, clock, conversation, agent)

    def pay(self, clock: Clock, account_id: int, cents: int) -> None:
        """A payment through the provider's path: a card code, then its 'paid' event."""
        account = self.session.get(Account, account_id)
        if account is None or account.status != AccountStatus.ACTIVE.value:
            return
        balance = balance_breakdown(self.session, account, clock).total_cents
        cents = min(cents, balance)
        if cents <= 0:
            return
        try:
            code = self.provider.issue_code(
                self.session, clock, self.policy, account, amount_cents=cents, method="card"
            )
        except DomainError:
            return
        event = PaymentEvent(
            provider=self.provider.name,
            event_id=f"demo-{code.reference}",
            reference=code.reference,
            amount_cents=cents,
            currency="MXN",
            paid_at=clock.now_utc(),
        )
        apply_payment_event(self.session, clock, self.policy, event)
        self.report.payments += 1


def generate_history(
    session: Session,
    today: date,
    policy: Policy,
    adapters: Mapping[str, ChannelAdapter],
    provider: PaymentProvider,
    public_url: str,
    *,
    zone: ZoneInfo,
    days: int = 28,
    seed: int = 2026,
) -> HistoryReport:
    """Simulate ``days`` days before ``today`` (today itself is left to the live campaign)."""
    if generated(session):
        return HistoryReport(skipped=True)
    if session.scalar(select(CampaignSend.id).limit(1)) is not None:
        return HistoryReport(skipped=True)  # a real campaign already ran: keep its history
    simulation = _Simulation(session, policy, adapters, provider, public_url, zone, seed)
    for offset in range(days, 0, -1):
        simulation.day(today - timedelta(days=offset))
    last = today - timedelta(days=1)
    record_audit(
        session,
        _pinned(last, time(23, 0), zone),
        actor="system",
        action=MARKER,
        days=days,
        seed=seed,
        reminders=simulation.report.reminders,
    )
    session.commit()
    return simulation.report


def load_demo_history(settings: Settings, *, days: int = 28) -> HistoryReport:
    """Generate the demo history on the database of ``settings`` (``acuerdo demo``)."""
    import asyncio

    from bot.gateway.runtime import GatewayRuntime
    from bot.payments import get_provider

    runtime = GatewayRuntime(settings)
    try:
        with runtime.sessions() as session:
            return generate_history(
                session,
                runtime.clock.today(),
                runtime.policy,
                runtime.adapters,
                get_provider(settings),
                settings.public_url,
                zone=runtime.clock.tz,
                days=days,
            )
    finally:
        asyncio.run(_close(runtime.adapters.values()))


async def _close(adapters: Iterable[ChannelAdapter]) -> None:
    for adapter in adapters:
        await adapter.aclose()
