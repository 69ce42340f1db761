"""One campaign run: settle promises, then send (or delay, or suppress) what is due today.

Every due item is a ``campaign_sends`` row keyed by (account, step, step day). A row is
marked ``sent`` in the same transaction that queues its outbox message, and only if it was
not ``sent`` already (a compare-and-set), so running twice, or two processes at once, never
sends a step twice. Delayed, suppressed and skipped rows are looked at again on every run
while their step is in force, and go out once the reason is gone.

A dry run does everything in one transaction and rolls it back; it never issues payment
codes (a real provider would create charges) and shows the link of an active code or a
placeholder.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.campaigns.compose import (
    PAYMENT_METHOD,
    PaymentLinks,
    Variables,
    first_name,
    reminder_amount,
    template_message,
)
from bot.campaigns.schedule import DueItem, local_today, promise_items, reminder_items
from bot.channels.base import ChannelAdapter
from bot.clock import Clock
from bot.compliance import (
    ContactRules,
    Decision,
    Verdict,
    contact_rules,
    debtor_zone,
    evaluate,
    profile_problems,
    record_decision,
)
from bot.compliance.outreach import queue_company_template
from bot.db.models import (
    Account,
    Agreement,
    AgreementStatus,
    CampaignSend,
    CampaignSendStatus,
    ContactPoint,
    Conversation,
    ConversationState,
    Promise,
    PromiseStatus,
)
from bot.domain.accounts import balance_breakdown
from bot.domain.phones import mask_phone
from bot.domain.promises import settle_due_promises
from bot.payments import PaymentCodeError, active_code_for, payment_url
from bot.policy import Policy

log = structlog.get_logger("acuerdo.campaigns")

DRY_RUN_LINK = "<enlace de pago>"


class CampaignError(Exception):
    """The campaign cannot run as configured; the message says what to fix."""


class Outcome(str, enum.Enum):
    SENT = "sent"
    WOULD_SEND = "would_send"  # a dry run
    DELAYED = "delayed"
    SUPPRESSED = "suppressed"
    SKIPPED = "skipped"
    ALREADY_SENT = "already_sent"


@dataclass(frozen=True)
class CampaignLine:
    """One due item and what the run did with it."""

    account: str  # the creditor's account id
    phone: str  # masked
    step: str
    segment: str
    template: str
    scheduled_for: date
    outcome: Outcome
    reason: str | None = None
    until: datetime | None = None  # for a delay: when, in the debtor's zone


@dataclass
class CampaignReport:
    ran_at: datetime
    dry_run: bool
    lines: list[CampaignLine] = field(default_factory=list)
    promises_kept: int = 0
    promises_broken: int = 0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for line in self.lines if line.outcome == outcome)

    @property
    def queued(self) -> int:
        return self.count(Outcome.SENT)


@dataclass(frozen=True)
class CampaignContext:
    """What a run needs besides the database session."""

    clock: Clock
    policy: Policy
    adapters: Mapping[str, ChannelAdapter]
    links: PaymentLinks


def campaign_templates(policy: Policy) -> list[str]:
    names = [step.template for step in policy.reminders.schedule]
    names += [policy.reminders.promise_reminder_template, policy.reminders.broken_promise_template]
    return list(dict.fromkeys(names))


def choose_contact_point(
    session: Session, account: Account, channels: Sequence[str]
) -> ContactPoint | None:
    """The debtor's contact point on the first channel of ``channels`` that can receive."""
    points = [
        point
        for point in session.scalars(
            select(ContactPoint).where(ContactPoint.debtor_id == account.debtor_id)
        )
        if point.channel in channels
    ]
    points.sort(key=lambda p: (channels.index(p.channel), not p.preferred, p.id))
    reachable = [p for p in points if getattr(p, "unreachable_at", None) is None]
    candidates = reachable or points
    return candidates[0] if candidates else None


def _channels(ctx: CampaignContext) -> list[str]:
    ordered = [c for c in ctx.policy.contact.channel_fallback if c in ctx.adapters]
    return ordered + [c for c in ctx.adapters if c not in ordered]


def _campaign_skip(
    session: Session,
    item: DueItem,
    contact: ContactPoint | None,
    contacted_today: bool,
    today: date,
) -> str | None:
    """Why the campaign itself holds this item back today (not a compliance rule)."""
    if contacted_today:
        return "already_contacted_today"
    if contact is not None:
        state = session.scalar(
            select(Conversation.state).where(
                Conversation.channel == contact.channel, Conversation.address == contact.address
            )
        )
        if state in (ConversationState.QUEUED.value, ConversationState.AGENT.value):
            return "with_agent"
    if item.kind != "reminder":
        return None
    account_id = item.account.id
    promised = session.scalar(
        select(func.count())
        .select_from(Promise)
        .where(
            Promise.account_id == account_id,
            Promise.status == PromiseStatus.PENDING.value,
            Promise.promised_date >= today,
        )
    )
    if promised:
        return "pending_promise"
    agreements = session.scalar(
        select(func.count())
        .select_from(Agreement)
        .where(Agreement.account_id == account_id, Agreement.status == AgreementStatus.ACTIVE.value)
    )
    if agreements:
        return "active_agreement"
    return None


def _contacted_today(session: Session, clock: Clock, account: Account, today: date) -> bool:
    zone = debtor_zone(account.debtor, clock)
    since = datetime.combine(today, datetime.min.time(), tzinfo=zone)
    found = session.scalar(
        select(CampaignSend.id)
        .where(
            CampaignSend.account_id == account.id,
            CampaignSend.status == CampaignSendStatus.SENT.value,
            CampaignSend.sent_at >= since,
        )
        .limit(1)
    )
    return found is not None


class _Run:
    """The state of one run; ``process`` handles the items of one account."""

    def __init__(self, session: Session, ctx: CampaignContext, dry_run: bool) -> None:
        self.session = session
        self.ctx = ctx
        self.clock = ctx.clock
        self.policy = ctx.policy
        self.dry_run = dry_run
        self.rules: ContactRules = contact_rules(ctx.policy)
        self.channels = _channels(ctx)

    # -- rows --------------------------------------------------------------------------
    def _row(self, item: DueItem) -> CampaignSend | None:
        return self.session.scalars(
            select(CampaignSend).where(
                CampaignSend.account_id == item.account.id,
                CampaignSend.step == item.step,
                CampaignSend.scheduled_for == item.scheduled_for,
            )
        ).first()

    def _save(
        self,
        item: DueItem,
        row: CampaignSend | None,
        status: CampaignSendStatus,
        reason: str | None,
        contact: ContactPoint | None,
        until: datetime | None = None,
    ) -> tuple[CampaignSend, bool]:
        """Create or update the row; True when its status or reason changed."""
        now = self.clock.now_utc()
        if row is None:
            row = CampaignSend(
                account_id=item.account.id,
                step=item.step,
                segment=item.segment,
                template=item.template,
                scheduled_for=item.scheduled_for,
                promise_id=item.promise.id if item.promise else None,
                status=status.value,
                created_at=now,
                decided_at=now,
            )
            self.session.add(row)
            changed = True
        else:
            changed = row.status != status.value or row.reason != reason
        row.status = status.value
        row.reason = reason
        row.delay_until = until
        row.contact_point_id = contact.id if contact else row.contact_point_id
        row.decided_at = now
        self.session.flush()
        return row, changed

    def _claim(self, item: DueItem, row: CampaignSend | None) -> CampaignSend | None:
        """Mark the item sent before queueing it; None when another run got there first."""
        now = self.clock.now_utc()
        if row is None:
            row, _ = self._save(item, None, CampaignSendStatus.SENT, None, None)
            row.sent_at = now
            return row
        result = self.session.execute(
            update(CampaignSend)
            .where(
                CampaignSend.id == row.id,
                CampaignSend.status != CampaignSendStatus.SENT.value,
            )
            .values(status=CampaignSendStatus.SENT.value, reason=None, delay_until=None)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        self.session.refresh(row)
        row.sent_at = now
        row.decided_at = now
        return row

    # -- the message -------------------------------------------------------------------
    def _amount_and_date(self, item: DueItem) -> tuple[int, date]:
        account = item.account
        balance = balance_breakdown(self.session, account, self.clock).total_cents
        if item.promise is not None:
            return min(item.promise.amount_cents, balance), item.promise.promised_date
        return reminder_amount(self.session, self.clock, account), account.due_date

    def _link(self, account: Account, amount_cents: int) -> str:
        if not self.dry_run:
            return self.ctx.links.link_for(
                self.session, self.clock, self.policy, account, amount_cents
            )
        code = active_code_for(self.session, self.clock, account, PAYMENT_METHOD, amount_cents)
        return payment_url(self.ctx.links.public_url, code.token) if code else DRY_RUN_LINK

    def _line(
        self,
        item: DueItem,
        contact: ContactPoint | None,
        outcome: Outcome,
        reason: str | None = None,
        until: datetime | None = None,
    ) -> CampaignLine:
        return CampaignLine(
            account=item.account.external_id,
            phone=mask_phone(contact.address) if contact else "—",
            step=item.step,
            segment=item.segment,
            template=item.template,
            scheduled_for=item.scheduled_for,
            outcome=outcome,
            reason=reason,
            until=until,
        )

    def _hold(
        self,
        item: DueItem,
        row: CampaignSend | None,
        contact: ContactPoint | None,
        decision: Decision,
    ) -> CampaignLine:
        status = (
            CampaignSendStatus.DELAYED
            if decision.verdict == Verdict.DELAY
            else CampaignSendStatus.SUPPRESSED
        )
        _, changed = self._save(item, row, status, decision.reason, contact, decision.until)
        if changed:  # one audit entry per change, not one per hourly run
            record_decision(
                self.session,
                self.clock,
                decision,
                item.account,
                contact,
                item.kind,
                actor="campaign",
                step=item.step,
                segment=item.segment,
                scheduled_for=item.scheduled_for.isoformat(),
            )
        outcome = Outcome.DELAYED if status == CampaignSendStatus.DELAYED else Outcome.SUPPRESSED
        return self._line(item, contact, outcome, decision.reason, decision.until)

    def _send(
        self, item: DueItem, row: CampaignSend | None, contact: ContactPoint, decision: Decision
    ) -> CampaignLine:
        amount, on = self._amount_and_date(item)
        try:
            link = self._link(item.account, amount)
        except PaymentCodeError as exc:
            self._save(item, row, CampaignSendStatus.SKIPPED, f"payment_link:{exc.reason}", contact)
            return self._line(item, contact, Outcome.SKIPPED, f"payment_link:{exc.reason}")
        account = item.account
        variables = Variables(
            name=first_name(account.debtor.full_name),
            creditor=account.creditor,
            amount_cents=amount,
            on=on,
            link=link,
        )
        template = template_message(self.policy, item.template, variables)
        claimed = self._claim(item, row)
        if claimed is None:
            return self._line(item, contact, Outcome.ALREADY_SENT, "sent_by_another_run")
        queued = queue_company_template(
            self.session,
            self.clock,
            self.policy,
            self.ctx.adapters,
            account,
            contact,
            template,
            item.kind,
            actor="campaign",
            author="campaign",
            decision=decision,
            extra={"campaign_send_id": claimed.id, "step": item.step},
        )
        if not queued.decision.sends:  # a channel without an adapter
            self._save(
                item, claimed, CampaignSendStatus.SUPPRESSED, queued.decision.reason, contact
            )
            return self._line(item, contact, Outcome.SUPPRESSED, queued.decision.reason)
        claimed.contact_point_id = contact.id
        claimed.conversation_id = queued.conversation_id
        claimed.message_id = queued.messages[0].id if queued.messages else None
        self.session.flush()
        return self._line(item, contact, Outcome.WOULD_SEND if self.dry_run else Outcome.SENT)

    # -- one account -------------------------------------------------------------------
    def process(self, items: list[DueItem]) -> list[CampaignLine]:
        account = items[0].account
        today = local_today(self.clock, account)
        contacted = _contacted_today(self.session, self.clock, account, today)
        contact = choose_contact_point(self.session, account, self.channels)
        lines = []
        for item in sorted(items, key=lambda i: i.priority):
            row = self._row(item)
            if row is not None and row.status == CampaignSendStatus.SENT.value:
                lines.append(self._line(item, contact, Outcome.ALREADY_SENT))
                continue
            decision = evaluate(self.session, self.clock, self.rules, account, contact)
            if decision.verdict != Verdict.SUPPRESS:
                skip = _campaign_skip(self.session, item, contact, contacted, today)
                if skip is not None:
                    self._save(item, row, CampaignSendStatus.SKIPPED, skip, contact)
                    lines.append(self._line(item, contact, Outcome.SKIPPED, skip))
                    continue
            if not decision.sends or contact is None:
                lines.append(self._hold(item, row, contact, decision))
                continue
            line = self._send(item, row, contact, decision)
            lines.append(line)
            contacted = contacted or line.outcome in (Outcome.SENT, Outcome.WOULD_SEND)
        return lines


def _due_items(session: Session, ctx: CampaignContext) -> dict[int, list[DueItem]]:
    by_account: dict[int, list[DueItem]] = {}
    for item in promise_items(session, ctx.clock, ctx.policy) + reminder_items(
        session, ctx.clock, ctx.policy
    ):
        by_account.setdefault(item.account.id, []).append(item)
    return by_account


def _due_promise_count(session: Session, clock: Clock, policy: Policy) -> int:
    cutoff = clock.today() - timedelta(days=policy.promises.grace_days)
    return int(
        session.scalar(
            select(func.count())
            .select_from(Promise)
            .where(Promise.status == PromiseStatus.PENDING.value, Promise.promised_date <= cutoff)
        )
        or 0
    )


def run_campaign(
    session: Session, ctx: CampaignContext, *, dry_run: bool = False
) -> CampaignReport:
    """Settle due promises, then handle every due item; commits per account unless dry."""
    problems = profile_problems(ctx.policy, campaign_templates(ctx.policy))
    if problems:
        raise CampaignError("; ".join(problems))
    report = CampaignReport(ran_at=ctx.clock.now(), dry_run=dry_run)
    due = _due_promise_count(session, ctx.clock, ctx.policy)
    broken = settle_due_promises(session, ctx.clock, ctx.policy)
    report.promises_broken = len(broken)
    report.promises_kept = due - len(broken)
    if not dry_run:
        session.commit()
    run = _Run(session, ctx, dry_run)
    try:
        for items in _due_items(session, ctx).values():
            try:
                lines = run.process(items)
            except IntegrityError:
                if dry_run:
                    raise
                session.rollback()  # another run inserted the same step meanwhile
                lines = [
                    run._line(item, None, Outcome.ALREADY_SENT, "sent_by_another_run")
                    for item in items
                ]
            else:
                if not dry_run:
                    session.commit()
            report.lines.extend(lines)
    finally:
        if dry_run:
            session.rollback()
    log.info(
        "campaign.run",
        dry_run=dry_run,
        sent=report.count(Outcome.SENT),
        would_send=report.count(Outcome.WOULD_SEND),
        delayed=report.count(Outcome.DELAYED),
        suppressed=report.count(Outcome.SUPPRESSED),
        skipped=report.count(Outcome.SKIPPED),
        already_sent=report.count(Outcome.ALREADY_SENT),
        promises_broken=report.promises_broken,
    )
    return report
