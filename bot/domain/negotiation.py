"""Settlements (quitas) and payment plans inside the creditor's policy.

The bot opens at the bucket's discount, never goes below the floor, concedes
toward the floor round by round and hands the chat to an agent after
``settlement.max_rounds`` counter-offers.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import (
    Account,
    Agreement,
    AgreementStatus,
    Installment,
    Offer,
    OfferKind,
    OfferStatus,
)
from bot.domain.accounts import balance_breakdown
from bot.domain.audit import record_audit
from bot.domain.errors import OfferRejected
from bot.domain.money import round_up_to_peso
from bot.policy import Policy


@dataclass(frozen=True)
class SettlementTerms:
    balance_cents: int
    opening_cents: int
    floor_cents: int
    valid_until: date


class CounterOutcome(enum.Enum):
    ACCEPTABLE = "acceptable"  # the debtor's amount is at or above the floor
    COUNTERED = "countered"  # below the floor: the bot proposes a new amount
    ESCALATE = "escalate"  # rounds exhausted: an agent must decide


@dataclass(frozen=True)
class CounterResult:
    outcome: CounterOutcome
    offer: Offer | None


def settlement_terms(
    session: Session, clock: Clock, policy: Policy, account: Account
) -> SettlementTerms:
    """Opening amount and floor for this account's days-past-due bucket."""
    breakdown = balance_breakdown(session, account, clock)
    if breakdown.total_cents == 0:
        raise OfferRejected("nothing_owed", "the account has no balance")
    bucket = policy.settlement.bucket_for(breakdown.days_past_due)
    if bucket is None:
        raise OfferRejected("no_bucket", f"no settlement bucket for {breakdown.days_past_due} days")
    balance = breakdown.total_cents
    opening = _percent_in_pesos(balance, 100 - bucket.discount_pct)
    floor = _percent_in_pesos(balance, bucket.floor_pct)
    return SettlementTerms(
        balance_cents=balance,
        opening_cents=min(opening, balance),
        floor_cents=min(floor, balance),
        valid_until=clock.today() + timedelta(days=policy.settlement.offer_validity_days),
    )


def _percent_in_pesos(cents: int, pct: Decimal) -> int:
    """``pct``% of ``cents`` in whole pesos, rounded up from the exact value.

    Truncating to centavos first could land a fraction of a centavo below the floor.
    """
    return round_up_to_peso(math.ceil(cents * pct / 100))


def latest_offer(session: Session, account_id: int, kind: OfferKind) -> Offer | None:
    return session.scalars(
        select(Offer)
        .where(Offer.account_id == account_id, Offer.kind == kind.value)
        .order_by(Offer.id.desc())
        .limit(1)
    ).first()


def _new_offer(
    session: Session,
    clock: Clock,
    account: Account,
    *,
    kind: OfferKind,
    total: int,
    floor: int,
    installments: int,
    valid_until: date,
    round_: int,
    made_by: str,
    conversation_id: int | None,
) -> Offer:
    offer = Offer(
        account_id=account.id,
        kind=kind.value,
        total_cents=total,
        floor_cents=floor,
        installments=installments,
        installment_cents=-(-total // installments),
        valid_until=valid_until,
        round=round_,
        status=OfferStatus.OFFERED.value,
        made_by=made_by,
        created_at=clock.now_utc(),
    )
    session.add(offer)
    session.flush()
    record_audit(
        session,
        clock,
        actor=made_by,
        action="offer",
        account_id=account.id,
        conversation_id=conversation_id,
        offer_id=offer.id,
        kind=kind.value,
        total_cents=total,
        installments=installments,
        round=round_,
        valid_until=valid_until.isoformat(),
    )
    return offer


def offer_settlement(
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    *,
    made_by: str = "bot",
    conversation_id: int | None = None,
) -> Offer:
    """The opening settlement offer (round 1)."""
    terms = settlement_terms(session, clock, policy, account)
    return _new_offer(
        session,
        clock,
        account,
        kind=OfferKind.SETTLEMENT,
        total=terms.opening_cents,
        floor=terms.floor_cents,
        installments=1,
        valid_until=terms.valid_until,
        round_=1,
        made_by=made_by,
        conversation_id=conversation_id,
    )


def counter_settlement(
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    proposed_cents: int,
    *,
    made_by: str = "bot",
    conversation_id: int | None = None,
) -> CounterResult:
    """Answer a counter-offer: accept at/above the floor, counter below it, escalate at the end."""
    terms = settlement_terms(session, clock, policy, account)
    previous = latest_offer(session, account.id, OfferKind.SETTLEMENT)
    round_ = previous.round if previous and previous.status == OfferStatus.OFFERED.value else 0
    if previous is not None and previous.status == OfferStatus.OFFERED.value:
        previous.status = OfferStatus.COUNTERED.value
    last = previous.total_cents if previous is not None else terms.opening_cents
    if proposed_cents >= terms.floor_cents:
        # Never charge more than the bot already offered, even if the debtor proposes more.
        proposed_cents = min(proposed_cents, last)
        offer = _new_offer(
            session,
            clock,
            account,
            kind=OfferKind.SETTLEMENT,
            total=min(proposed_cents, terms.balance_cents),
            floor=terms.floor_cents,
            installments=1,
            valid_until=terms.valid_until,
            round_=round_ + 1,
            made_by=made_by,
            conversation_id=conversation_id,
        )
        return CounterResult(CounterOutcome.ACCEPTABLE, offer)
    if round_ >= policy.settlement.max_rounds:
        record_audit(
            session,
            clock,
            actor=made_by,
            action="offer_escalated",
            account_id=account.id,
            conversation_id=conversation_id,
            proposed_cents=proposed_cents,
            round=round_,
        )
        return CounterResult(CounterOutcome.ESCALATE, None)
    # Concede half the distance to the floor each round; the last allowed round is the floor.
    remaining_rounds = policy.settlement.max_rounds - round_
    step = (last - terms.floor_cents) // 2 if remaining_rounds > 1 else last - terms.floor_cents
    counter = max(terms.floor_cents, round_up_to_peso(last - step))
    offer = _new_offer(
        session,
        clock,
        account,
        kind=OfferKind.SETTLEMENT,
        total=counter,
        floor=terms.floor_cents,
        installments=1,
        valid_until=terms.valid_until,
        round_=round_ + 1,
        made_by=made_by,
        conversation_id=conversation_id,
    )
    return CounterResult(CounterOutcome.COUNTERED, offer)


def offer_plan(
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    installments: int,
    *,
    made_by: str = "bot",
    conversation_id: int | None = None,
) -> Offer:
    """A payment plan over the whole balance, or :class:`OfferRejected` with the reason."""
    balance = balance_breakdown(session, account, clock).total_cents
    allowed = policy.plans.installments_allowed
    if installments not in allowed:
        raise OfferRejected("installments_not_allowed", f"{installments} not in {allowed}")
    if balance // installments < policy.plans.min_installment_cents:
        raise OfferRejected(
            "installment_below_minimum", f"{installments} installments would be below the minimum"
        )
    return _new_offer(
        session,
        clock,
        account,
        kind=OfferKind.PLAN,
        total=balance,
        floor=balance,
        installments=installments,
        valid_until=clock.today() + timedelta(days=policy.settlement.offer_validity_days),
        round_=1,
        made_by=made_by,
        conversation_id=conversation_id,
    )


def max_plan_installments(
    session: Session, clock: Clock, policy: Policy, account: Account
) -> int | None:
    """The most installments the policy allows for this balance (None: no plan possible)."""
    balance = balance_breakdown(session, account, clock).total_cents
    fitting = [
        n
        for n in policy.plans.installments_allowed
        if balance // n >= policy.plans.min_installment_cents
    ]
    return max(fitting) if fitting else None


def plan_schedule(offer: Offer, policy: Policy, start: date) -> list[tuple[int, date, int]]:
    """(number, due date, amount) of each installment; the last one absorbs the rounding."""
    first_due = start + timedelta(days=policy.plans.first_due_within_days)
    base = offer.total_cents // offer.installments
    rows = []
    for number in range(1, offer.installments + 1):
        amount = base if number < offer.installments else offer.total_cents - base * (number - 1)
        due = first_due + timedelta(days=policy.plans.interval_days * (number - 1))
        rows.append((number, due, amount))
    return rows


def accept_offer(
    session: Session,
    clock: Clock,
    policy: Policy,
    offer: Offer,
    *,
    approved_by: str = "bot",
    conversation_id: int | None = None,
) -> Agreement:
    """Turn an open offer into an agreement with its installments (a settlement has one)."""
    if offer.status != OfferStatus.OFFERED.value:
        raise OfferRejected("offer_not_open", "this offer is no longer open")
    if offer.valid_until < clock.today():
        offer.status = OfferStatus.EXPIRED.value
        raise OfferRejected("offer_expired", f"the offer expired on {offer.valid_until}")
    offer.status = OfferStatus.ACCEPTED.value
    today = clock.today()
    if offer.kind == OfferKind.PLAN.value:
        schedule = plan_schedule(offer, policy, today)
    else:
        schedule = [(1, offer.valid_until, offer.total_cents)]
    agreement = Agreement(
        account_id=offer.account_id,
        offer_id=offer.id,
        kind=offer.kind,
        total_cents=offer.total_cents,
        deadline=schedule[-1][1],
        status=AgreementStatus.ACTIVE.value,
        approved_by=approved_by,
        created_at=clock.now_utc(),
    )
    session.add(agreement)
    session.flush()
    for number, due, amount in schedule:
        session.add(
            Installment(
                agreement_id=agreement.id,
                number=number,
                due_date=due,
                amount_cents=amount,
                paid_cents=0,
            )
        )
    session.flush()
    record_audit(
        session,
        clock,
        actor=approved_by,
        action="agreement",
        account_id=offer.account_id,
        conversation_id=conversation_id,
        agreement_id=agreement.id,
        offer_id=offer.id,
        kind=offer.kind,
        total_cents=offer.total_cents,
        deadline=agreement.deadline.isoformat(),
    )
    return agreement


def next_installment(agreement: Agreement) -> Installment | None:
    for installment in agreement.installments:
        if installment.paid_cents < installment.amount_cents:
            return installment
    return None
