"""The one gate every company-started message passes: send, delay until, or suppress.

Company-started means the company writes first: reminders, promise follow-ups, an agent's
template, the re-engagement template, the payment thank-you, the carta finiquito, a
channel fallback hop. They
all reach the outbox through one door, :func:`bot.compliance.outreach.queue_company_message`,
which asks :func:`decide`. Replies inside a conversation the debtor started (the bot's
answers, an agent's free-form reply in the open 24-hour window) never come here; the
contact window does not apply to them (CONTRACT 6.9).

Every delay and suppression is written to the audit log (actions ``delay`` and
``suppression``) with its reason; every message that goes is counted by a
``company_message`` entry, which is what the rolling 7-day cap counts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.compliance.profiles import ContactRules, contact_rules
from bot.compliance.window import closed_reason_in, debtor_zones, next_opening_in
from bot.db.models import Account, AccountStatus, AuditEntry, ContactPoint
from bot.domain.accounts import balance_breakdown
from bot.domain.audit import record_audit
from bot.policy import Policy

Kind = Literal[
    "reminder",
    "promise_reminder",
    "broken_promise",
    "agent_template",
    "reengagement",
    "payment_thanks",
    "settlement_letter",
]
KINDS: tuple[Kind, ...] = (
    "reminder",
    "promise_reminder",
    "broken_promise",
    "agent_template",
    "reengagement",
    "payment_thanks",
    "settlement_letter",
)
# Not collection: a paid or settled account still gets the thank-you for its payment, its
# carta finiquito, and the invitation to read a reply it is owed.
BALANCE_EXEMPT: frozenset[str] = frozenset({"payment_thanks", "settlement_letter", "reengagement"})
CAP_DAYS = 7
COMPANY_MESSAGE = "company_message"

# Suppression reasons, most fundamental first (the first that applies is reported).
SUPPRESSION_REASONS = (
    "no_contact_point",
    "not_the_debtors_contact",
    "wrong_number",
    "opted_out",
    "do_not_contact",
    "unreachable",
    "deceased",
    "bankrupt",
    "dispute_open",
    "account_paid",
    "account_settled",
    "nothing_owed",
    "no_common_contact_hours",  # the number's candidate zones share no contact window
)
DELAY_REASONS = ("holiday", "not_a_contact_day", "outside_hours", "weekly_cap")


class Verdict(str, enum.Enum):
    SEND = "send"
    DELAY = "delay"
    SUPPRESS = "suppress"


@dataclass(frozen=True)
class Decision:
    """The gate's answer. ``until`` (aware, the debtor's zone) is set for a delay."""

    verdict: Verdict
    reason: str | None = None
    until: datetime | None = None
    opt_out_notice: str | None = None  # to include in the message when it is sent

    @classmethod
    def send(cls, opt_out_notice: str | None = None) -> Decision:
        return cls(Verdict.SEND, opt_out_notice=opt_out_notice)

    @classmethod
    def delay_until(cls, until: datetime, reason: str) -> Decision:
        return cls(Verdict.DELAY, reason=reason, until=until)

    @classmethod
    def suppress(cls, reason: str) -> Decision:
        return cls(Verdict.SUPPRESS, reason=reason)

    @property
    def sends(self) -> bool:
        return self.verdict == Verdict.SEND


def contact_suppression_reason(
    contact_point: ContactPoint, account: Account | None = None
) -> str | None:
    """What the number (and the account's do-not-contact) forbids, in the order reported."""
    if contact_point.wrong_number_at is not None:
        return "wrong_number"
    if contact_point.opted_out_at is not None:
        return "opted_out"
    if contact_point.do_not_contact_reason or (account and account.do_not_contact_reason):
        return "do_not_contact"
    if getattr(contact_point, "unreachable_at", None) is not None:
        return "unreachable"
    return None


def kind_of(value: object) -> Kind | None:
    """``value`` as a kind of company-started message (from a row's payload), or None."""
    for kind in KINDS:
        if kind == value:
            return kind
    return None


def suppression_reason(
    session: Session,
    clock: Clock,
    account: Account,
    contact_point: ContactPoint | None,
    kind: Kind | None = None,
) -> str | None:
    """The first rule that forbids a company-started message of ``kind``, or None."""
    if contact_point is None:
        return "no_contact_point"
    if contact_point.debtor_id != account.debtor_id:
        return "not_the_debtors_contact"
    reason = contact_suppression_reason(contact_point, account)
    if reason is not None:
        return reason
    return account_suppression_reason(session, clock, account, kind)


def account_suppression_reason(
    session: Session, clock: Clock, account: Account, kind: Kind | None = None
) -> str | None:
    """What the account and the debtor forbid, whatever the number (a fallback hop asks
    this: the number's own rules are judged per channel)."""
    if account.do_not_contact_reason:
        return "do_not_contact"
    debtor = account.debtor
    if debtor.deceased:
        return "deceased"
    if debtor.bankrupt:
        return "bankrupt"
    if account.dispute_open:
        return "dispute_open"
    if kind in BALANCE_EXEMPT:
        return None
    if account.status == AccountStatus.PAID.value:
        return "account_paid"
    if account.status != AccountStatus.ACTIVE.value:
        return "account_settled"
    if balance_breakdown(session, account, clock).total_cents <= 0:
        return "nothing_owed"
    return None


def company_messages_since(session: Session, account_id: int, since: datetime) -> list[datetime]:
    """When the company-started messages of an account since ``since`` were queued."""
    return list(
        session.scalars(
            select(AuditEntry.at)
            .where(
                AuditEntry.action == COMPANY_MESSAGE,
                AuditEntry.account_id == account_id,
                AuditEntry.at > since,
            )
            .order_by(AuditEntry.at)
        )
    )


def cap_release(
    session: Session, clock: Clock, rules: ContactRules, account_id: int
) -> datetime | None:
    """None while the account is under the weekly cap; else when one more may go (UTC)."""
    now = clock.now_utc()
    recent = company_messages_since(session, account_id, now - timedelta(days=CAP_DAYS))
    if len(recent) < rules.max_per_7_days:
        return None
    # The oldest message that must leave the 7-day window before one more fits.
    return recent[len(recent) - rules.max_per_7_days] + timedelta(days=CAP_DAYS)


def evaluate(
    session: Session,
    clock: Clock,
    rules: ContactRules,
    account: Account | None,
    contact_point: ContactPoint | None,
    kind: Kind | None = None,
) -> Decision:
    """The decision, without recording it.

    ``account`` None is a number linked to no account (a stranger who wrote to us): only
    what its contact point forbids and the hours apply (there is no cap to count against).
    """
    if account is None:
        reason = contact_suppression_reason(contact_point) if contact_point else None
    else:
        reason = suppression_reason(session, clock, account, contact_point, kind)
    if reason is not None:
        return Decision.suppress(reason)
    # Every candidate zone of the debtor must be inside the window (bot/compliance/window.py).
    zones = debtor_zones(account.debtor if account else None, clock)
    now = clock.now().astimezone(zones[0])
    release = cap_release(session, clock, rules, account.id) if account else None
    if release is not None and release > now:
        reason, since = "weekly_cap", release
    else:
        closed = closed_reason_in(now, zones, rules)
        if closed is None:
            return Decision.send(rules.opt_out_notice)
        reason, since = closed, now
    opening = next_opening_in(since, zones, rules)
    if opening is None:
        return Decision.suppress("no_common_contact_hours")
    return Decision.delay_until(opening, reason)


def record_decision(
    session: Session,
    clock: Clock,
    decision: Decision,
    account: Account | None,
    contact_point: ContactPoint | None,
    kind: Kind,
    *,
    actor: str = "system",
    **details: Any,
) -> None:
    """Write a delay or suppression to the audit log (a send is recorded when queued)."""
    if decision.sends:
        return
    record_audit(
        session,
        clock,
        actor=actor,
        action="delay" if decision.verdict == Verdict.DELAY else "suppression",
        account_id=account.id if account else None,
        kind=kind,
        reason=decision.reason,
        until=decision.until.isoformat() if decision.until else None,
        contact_point_id=contact_point.id if contact_point else None,
        channel=contact_point.channel if contact_point else None,
        **details,
    )


def decide(
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account | None,
    contact_point: ContactPoint | None,
    kind: Kind,
    *,
    audit: bool = True,
    actor: str = "system",
    **details: Any,
) -> Decision:
    """May the company start a message of ``kind`` to ``account`` at ``contact_point`` now?

    Suppressed: no contact point, someone else's number, wrong number, opt-out,
    do-not-contact (number or account), unreachable, deceased, bankrupt, dispute open,
    paid or settled account, nothing owed. Delayed (until the next allowed moment in the
    debtor's zone): the weekly cap, holidays, days without contact, outside hours.
    A thank-you, a carta finiquito or an invitation back is not suppressed for a paid or
    settled account.
    With ``audit`` a delay or suppression is written to the audit log.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind of company-started message '{kind}'")
    rules = contact_rules(policy)
    decision = evaluate(session, clock, rules, account, contact_point, kind)
    if audit:
        record_decision(
            session, clock, decision, account, contact_point, kind, actor=actor, **details
        )
    return decision


def record_company_message(
    session: Session,
    clock: Clock,
    account: Account | None,
    contact_point: ContactPoint | None,
    kind: Kind,
    *,
    message_id: int | None,
    actor: str = "system",
    **details: Any,
) -> None:
    """Count one company-started message against the account's weekly cap (audit entry)."""
    record_audit(
        session,
        clock,
        actor=actor,
        action=COMPANY_MESSAGE,
        account_id=account.id if account else None,
        kind=kind,
        message_id=message_id,
        contact_point_id=contact_point.id if contact_point else None,
        channel=contact_point.channel if contact_point else None,
        **details,
    )
