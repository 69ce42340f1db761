"""Settlements and payment plans inside the policy (CONTRACT 6.6, policy.yml).

policy.yml buckets by days past due (discount off the balance / floor as % of it):
0-30: 5 / 90 · 31-90: 15 / 75 · 91-180: 30 / 60 · 181+: 45 / 45.
Offers are valid 7 days; 3 counter-offers before an agent decides. Plans: 2, 3, 4,
6, 9 or 12 installments of at least $300.00, the first within 7 days, then every 30.
The default account owes $12,000.00 and is 30 days past due on 2026-11-23.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import (
    Account,
    AccountStatus,
    AgreementStatus,
    AuditEntry,
    Offer,
    OfferKind,
    OfferStatus,
)
from bot.domain.errors import OfferRejected
from bot.domain.negotiation import (
    CounterOutcome,
    accept_offer,
    counter_settlement,
    latest_offer,
    max_plan_installments,
    offer_plan,
    offer_settlement,
    plan_schedule,
    settlement_terms,
)
from bot.policy import Policy

MakeAccount = Callable[..., Account]
TODAY = date(2026, 11, 23)


def due_days_ago(days: int) -> date:
    return TODAY - timedelta(days=days)


def only_owing(cents: int, days_past_due: int = 30) -> dict[str, object]:
    """Overrides for an account that owes exactly ``cents`` in principal."""
    return {
        "principal_cents": cents,
        "interest_cents": 0,
        "fees_cents": 0,
        "due_date": due_days_ago(days_past_due),
    }


@pytest.mark.parametrize(
    ("days_past_due", "discount_pct", "floor_pct"),
    [
        (0, 5, 90),
        (30, 5, 90),
        (31, 15, 75),
        (90, 15, 75),
        (91, 30, 60),
        (180, 30, 60),
        (181, 45, 45),
        (720, 45, 45),
    ],
)
def test_opening_offer_and_floor_follow_the_days_past_due_bucket(
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: MakeAccount,
    days_past_due: int,
    discount_pct: int,
    floor_pct: int,
) -> None:
    account = make_account(due_date=due_days_ago(days_past_due))  # owes $12,000.00

    terms = settlement_terms(session, clock, policy, account)

    assert terms.balance_cents == 1_200_000
    assert terms.opening_cents == 1_200_000 * (100 - discount_pct) // 100
    assert terms.floor_cents == 1_200_000 * floor_pct // 100
    assert terms.valid_until == date(2026, 11, 30)


def test_offers_are_rounded_up_to_whole_pesos(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    # $12,345.67 at 60 days: 85% is $10,493.8195 → $10,494; 75% is $9,259.2525 → $9,260.
    account = make_account(**only_owing(1_234_567, days_past_due=60))

    terms = settlement_terms(session, clock, policy, account)

    assert terms.opening_cents == 1_049_400
    assert terms.floor_cents == 926_000


def test_the_floor_is_never_a_fraction_of_a_centavo_below_its_percentage(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    # $10,000.01 at 30 days: 90% is $9,000.009 → $9,001; 95% is $9,500.0095 → $9,501.
    account = make_account(**only_owing(1_000_001))

    terms = settlement_terms(session, clock, policy, account)

    assert terms.floor_cents == 900_100
    assert terms.floor_cents * 100 >= 1_000_001 * 90
    assert terms.opening_cents == 950_100


def test_rounding_never_asks_for_more_than_the_balance(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account(**only_owing(150))  # $1.50

    terms = settlement_terms(session, clock, policy, account)

    assert terms.opening_cents == terms.floor_cents == 150


def test_an_account_owing_nothing_gets_no_settlement(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()
    account.status = AccountStatus.PAID.value

    with pytest.raises(OfferRejected) as rejected:
        offer_settlement(session, clock, policy, account)
    assert rejected.value.reason == "nothing_owed"


def test_the_opening_offer_is_recorded_and_audited(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()

    offer = offer_settlement(session, clock, policy, account)

    assert (offer.kind, offer.round, offer.status) == ("settlement", 1, "offered")
    assert (offer.total_cents, offer.floor_cents) == (1_140_000, 1_080_000)
    assert offer.installments == 1
    assert offer.valid_until == date(2026, 11, 30)
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "offer")).one()
    assert entry.details["offer_id"] == offer.id
    assert entry.details["total_cents"] == 1_140_000


def test_counter_offers_concede_halfway_then_reach_the_floor_then_escalate(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()
    opening = offer_settlement(session, clock, policy, account)  # $11,400.00, floor $10,800.00

    second = counter_settlement(session, clock, policy, account, 500_000)
    # Half of the $600.00 between the last offer and the floor.
    assert second.outcome is CounterOutcome.COUNTERED
    assert second.offer is not None
    assert (second.offer.total_cents, second.offer.round) == (1_110_000, 2)
    assert opening.status == OfferStatus.COUNTERED.value

    third = counter_settlement(session, clock, policy, account, 500_000)
    # The last round the policy allows goes straight to the floor.
    assert third.outcome is CounterOutcome.COUNTERED
    assert third.offer is not None
    assert (third.offer.total_cents, third.offer.round) == (1_080_000, 3)

    fourth = counter_settlement(session, clock, policy, account, 500_000)
    # settlement.max_rounds (3) spent: an agent decides.
    assert fourth.outcome is CounterOutcome.ESCALATE
    assert fourth.offer is None
    escalated = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "offer_escalated")
    ).one()
    assert escalated.details == {"proposed_cents": 500_000, "round": 3}


@pytest.mark.parametrize("proposals", [[0, 0], [592_500, 592_599], [100, 500_000]])
def test_counter_offers_never_go_below_the_floor_or_back_up(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount, proposals: list[int]
) -> None:
    # $9,876.54 at 120 days: opening 70% → $6,914.00, floor 60% ($5,925.924) → $5,926.00.
    account = make_account(**only_owing(987_654, days_past_due=120))
    terms = settlement_terms(session, clock, policy, account)
    assert (terms.opening_cents, terms.floor_cents) == (691_400, 592_600)
    last = offer_settlement(session, clock, policy, account).total_cents

    for proposed in proposals:
        result = counter_settlement(session, clock, policy, account, proposed)
        assert result.outcome is CounterOutcome.COUNTERED
        assert result.offer is not None
        assert terms.floor_cents <= result.offer.total_cents <= last
        assert result.offer.total_cents % 100 == 0
        last = result.offer.total_cents


@pytest.mark.parametrize(
    ("proposed", "agreed"),
    [
        (1_080_000, 1_080_000),  # exactly the floor
        (1_100_050, 1_100_050),  # between floor and offer
        (1_150_000, 1_140_000),  # above the offer: never more than the bot already offered
        (1_500_000, 1_140_000),  # nor more than the balance
    ],
)
def test_a_proposal_at_or_above_the_floor_is_acceptable(
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: MakeAccount,
    proposed: int,
    agreed: int,
) -> None:
    account = make_account()
    offer_settlement(session, clock, policy, account)

    result = counter_settlement(session, clock, policy, account, proposed)

    assert result.outcome is CounterOutcome.ACCEPTABLE
    assert result.offer is not None
    assert result.offer.total_cents == agreed
    assert result.offer.status == OfferStatus.OFFERED.value
    assert latest_offer(session, account.id, OfferKind.SETTLEMENT) == result.offer


def test_a_proposal_one_centavo_below_the_floor_is_countered(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()
    offer_settlement(session, clock, policy, account)

    result = counter_settlement(session, clock, policy, account, 1_079_999)

    assert result.outcome is CounterOutcome.COUNTERED


def test_an_acceptable_proposal_is_still_taken_in_the_last_round(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()
    offer_settlement(session, clock, policy, account)
    counter_settlement(session, clock, policy, account, 0)
    counter_settlement(session, clock, policy, account, 0)

    result = counter_settlement(session, clock, policy, account, 1_080_000)

    assert result.outcome is CounterOutcome.ACCEPTABLE


@pytest.mark.parametrize("installments", [1, 5, 7, 24])
def test_a_plan_with_a_count_the_policy_does_not_allow_is_rejected(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount, installments: int
) -> None:
    with pytest.raises(OfferRejected) as rejected:
        offer_plan(session, clock, policy, make_account(), installments)
    assert rejected.value.reason == "installments_not_allowed"


def test_a_plan_with_installments_below_the_minimum_is_rejected(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account(**only_owing(100_000))  # $1,000.00: 4 × $250.00 < $300.00

    with pytest.raises(OfferRejected) as rejected:
        offer_plan(session, clock, policy, account, 4)
    assert rejected.value.reason == "installment_below_minimum"

    three = offer_plan(session, clock, policy, account, 3)  # 3 × $333.33
    assert three.installments == 3


def test_a_plan_covers_the_whole_balance(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    offer = offer_plan(session, clock, policy, make_account(), 6)

    assert offer.kind == OfferKind.PLAN.value
    assert offer.total_cents == offer.floor_cents == 1_200_000
    assert offer.installment_cents == 200_000
    assert offer.valid_until == date(2026, 11, 30)


@pytest.mark.parametrize(
    ("owed_cents", "most"),
    [
        (1_200_000, 12),  # 12 × $1,000.00
        (200_000, 6),  # 6 × $333.33; 9 × $222.22 is below $300.00
        (100_000, 3),
        (60_000, 2),  # 2 × $300.00 exactly
        (59_999, None),  # 2 × $299.99: no plan
    ],
)
def test_max_plan_installments_is_the_largest_allowed_count_above_the_minimum(
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: MakeAccount,
    owed_cents: int,
    most: int | None,
) -> None:
    account = make_account(**only_owing(owed_cents))

    assert max_plan_installments(session, clock, policy, account) == most


def test_a_plan_schedule_starts_within_a_week_then_every_thirty_days(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    offer = offer_plan(session, clock, policy, make_account(**only_owing(100_000)), 3)

    schedule = plan_schedule(offer, policy, TODAY)

    assert schedule == [
        (1, date(2026, 11, 30), 33_333),
        (2, date(2026, 12, 30), 33_333),
        (3, date(2027, 1, 29), 33_334),  # the last absorbs the rounding
    ]


def test_a_twelve_installment_schedule_sums_to_the_total(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    total = 1_234_567
    offer = offer_plan(session, clock, policy, make_account(**only_owing(total)), 12)

    schedule = plan_schedule(offer, policy, TODAY)

    amounts = [amount for _, _, amount in schedule]
    assert sum(amounts) == total
    assert amounts[:11] == [total // 12] * 11
    assert amounts[11] == total - 11 * (total // 12)
    dates = [due for _, due, _ in schedule]
    # The first within first_due_within_days (7), then every interval_days (30).
    assert dates == [TODAY + timedelta(days=7 + 30 * k) for k in range(12)]
    assert [number for number, _, _ in schedule] == list(range(1, 13))


def test_accepting_a_plan_creates_its_installments(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account(**only_owing(100_000))
    offer = offer_plan(session, clock, policy, account, 3)

    agreement = accept_offer(session, clock, policy, offer, conversation_id=None)

    assert offer.status == OfferStatus.ACCEPTED.value
    assert agreement.status == AgreementStatus.ACTIVE.value
    assert (agreement.kind, agreement.total_cents) == ("plan", 100_000)
    assert agreement.deadline == date(2027, 1, 29)
    assert [
        (i.number, i.due_date, i.amount_cents, i.paid_cents) for i in agreement.installments
    ] == [
        (1, date(2026, 11, 30), 33_333, 0),
        (2, date(2026, 12, 30), 33_333, 0),
        (3, date(2027, 1, 29), 33_334, 0),
    ]
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "agreement")).one()
    assert entry.details["deadline"] == "2027-01-29"


def test_accepting_a_settlement_makes_one_installment_due_by_the_offer_deadline(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    offer = offer_settlement(session, clock, policy, make_account())

    agreement = accept_offer(session, clock, policy, offer)

    assert agreement.deadline == date(2026, 11, 30)
    assert [(i.number, i.due_date, i.amount_cents) for i in agreement.installments] == [
        (1, date(2026, 11, 30), 1_140_000)
    ]


def test_an_offer_can_be_accepted_on_its_last_valid_day(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    offer = offer_settlement(session, clock, policy, make_account())
    last_day = Clock.from_setting("2026-11-30T23:00:00-06:00", "America/Mexico_City")

    assert accept_offer(session, last_day, policy, offer).total_cents == 1_140_000


def test_accepting_an_expired_offer_is_refused(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    offer = offer_settlement(session, clock, policy, make_account())
    a_day_late = Clock.from_setting("2026-12-01", "America/Mexico_City")

    with pytest.raises(OfferRejected) as rejected:
        accept_offer(session, a_day_late, policy, offer)

    assert rejected.value.reason == "offer_expired"
    assert offer.status == OfferStatus.EXPIRED.value


def test_an_offer_that_is_no_longer_open_cannot_be_accepted(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()
    opening = offer_settlement(session, clock, policy, account)
    counter_settlement(session, clock, policy, account, 0)  # the opening is now countered

    with pytest.raises(OfferRejected) as rejected:
        accept_offer(session, clock, policy, opening)
    assert rejected.value.reason == "offer_not_open"


def test_an_offer_is_accepted_only_once(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    offer = offer_settlement(session, clock, policy, make_account())
    accept_offer(session, clock, policy, offer)

    with pytest.raises(OfferRejected):
        accept_offer(session, clock, policy, offer)
    assert session.scalars(select(Offer)).all() == [offer]
