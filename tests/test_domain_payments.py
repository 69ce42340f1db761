"""Applying payments: exactly once, then closing what they pay for.

The default account owes $12,000.00 and is 30 days past due on 2026-11-23, so a
settlement opens at 5% off: $11,400.00 (policy.yml, bucket 0-30 days).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import (
    Account,
    AccountStatus,
    AgreementStatus,
    AuditEntry,
    Payment,
    PromiseStatus,
)
from bot.domain.accounts import balance_breakdown
from bot.domain.errors import DomainError
from bot.domain.negotiation import accept_offer, next_installment, offer_plan, offer_settlement
from bot.domain.payments import AppliedPayment, apply_payment, find_payment_near
from bot.domain.promises import record_promise
from bot.policy import Policy

MakeAccount = Callable[..., Account]
MEXICO_CITY = ZoneInfo("America/Mexico_City")
PAID_AT = datetime(2026, 11, 22, 11, 0, tzinfo=MEXICO_CITY)


@pytest.fixture
def apply(session: Session, clock: Clock, policy: Policy) -> Callable[..., AppliedPayment]:
    """``apply_payment`` with the test's session, clock and policy."""

    def _apply(account: Account, amount_cents: int, reference: str, **kw: object) -> AppliedPayment:
        kw.setdefault("paid_at", PAID_AT)
        kw.setdefault("source", "import")
        return apply_payment(
            session,
            clock,
            policy,
            account,
            amount_cents=amount_cents,
            reference=reference,
            **kw,  # type: ignore[arg-type]
        )

    return _apply


def payment_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Payment)) or 0)


def actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_a_payment_is_recorded_and_audited(
    session: Session, make_account: MakeAccount, apply: Callable[..., AppliedPayment]
) -> None:
    account = make_account()

    applied = apply(account, 250_000, "REF-1")

    assert applied.created is True
    assert applied.payment.amount_cents == 250_000
    assert applied.payment.paid_at == PAID_AT
    assert actions(session) == ["payment_applied"]
    entry = session.scalars(select(AuditEntry)).one()
    assert entry.details["amount_cents"] == 250_000
    assert entry.details["reference"] == "REF-1"


def test_the_same_provider_event_is_applied_once(
    session: Session,
    clock: Clock,
    make_account: MakeAccount,
    apply: Callable[..., AppliedPayment],
) -> None:
    account = make_account()

    first = apply(account, 250_000, "REF-1", provider_event_id="evt_1")
    again = apply(account, 250_000, "REF-1-retry", provider_event_id="evt_1")

    assert (first.created, again.created) == (True, False)
    assert again.payment.id == first.payment.id
    assert payment_count(session) == 1
    assert balance_breakdown(session, account, clock).total_cents == 1_200_000 - 250_000


def test_the_same_reference_on_the_same_account_is_applied_once(
    session: Session,
    clock: Clock,
    make_account: MakeAccount,
    apply: Callable[..., AppliedPayment],
) -> None:
    account = make_account()

    apply(account, 250_000, "OXXO-778899")
    again = apply(account, 250_000, "OXXO-778899")

    assert again.created is False
    assert payment_count(session) == 1
    assert actions(session).count("payment_applied") == 1
    assert balance_breakdown(session, account, clock).paid_cents == 250_000


def test_the_same_reference_on_two_accounts_is_two_payments(
    session: Session, make_account: MakeAccount, apply: Callable[..., AppliedPayment]
) -> None:
    assert apply(make_account(), 10_000, "DEP-1").created
    assert apply(make_account(), 10_000, "DEP-1").created
    assert payment_count(session) == 2


@pytest.mark.parametrize("cents", [0, -100])
def test_a_payment_must_be_positive(
    session: Session, make_account: MakeAccount, apply: Callable[..., AppliedPayment], cents: int
) -> None:
    with pytest.raises(DomainError, match="positive"):
        apply(make_account(), cents, "REF-0")
    assert payment_count(session) == 0


def test_a_partial_payment_leaves_the_account_active(
    session: Session, make_account: MakeAccount, apply: Callable[..., AppliedPayment]
) -> None:
    account = make_account()

    apply(account, 1_199_999, "REF-1")

    assert account.status == AccountStatus.ACTIVE.value


def test_the_account_is_paid_when_the_balance_reaches_zero(
    session: Session,
    clock: Clock,
    make_account: MakeAccount,
    apply: Callable[..., AppliedPayment],
) -> None:
    account = make_account()

    apply(account, 700_000, "REF-1")
    apply(account, 500_000, "REF-2")

    assert account.status == AccountStatus.PAID.value
    assert balance_breakdown(session, account, clock).total_cents == 0
    assert actions(session)[-2:] == ["account_paid", "settlement_letter_issued"]


def test_a_paid_settlement_completes_and_the_account_is_settled(
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: MakeAccount,
    apply: Callable[..., AppliedPayment],
) -> None:
    account = make_account()
    offer = offer_settlement(session, clock, policy, account)
    assert offer.total_cents == 1_140_000  # 95% of $12,000.00
    agreement = accept_offer(session, clock, policy, offer)

    apply(account, 1_140_000, "REF-QUITA")

    assert agreement.status == AgreementStatus.COMPLETED.value
    assert agreement.completed_at == clock.now_utc()
    assert account.status == AccountStatus.SETTLED.value
    # The discount is forgiven: nothing is owed although $600.00 was never paid.
    assert balance_breakdown(session, account, clock).total_cents == 0
    assert "agreement_completed" in actions(session)
    assert "account_paid" not in actions(session)


def test_a_settlement_paid_in_part_stays_open(
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: MakeAccount,
    apply: Callable[..., AppliedPayment],
) -> None:
    account = make_account()
    agreement = accept_offer(
        session, clock, policy, offer_settlement(session, clock, policy, account)
    )

    apply(account, 1_000_000, "REF-1")

    assert agreement.status == AgreementStatus.ACTIVE.value
    assert account.status == AccountStatus.ACTIVE.value

    apply(account, 140_000, "REF-2")

    assert agreement.status == AgreementStatus.COMPLETED.value
    assert account.status == AccountStatus.SETTLED.value


def test_a_plans_installments_fill_in_order(
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: MakeAccount,
    apply: Callable[..., AppliedPayment],
) -> None:
    account = make_account()
    agreement = accept_offer(session, clock, policy, offer_plan(session, clock, policy, account, 3))
    first, second, third = agreement.installments
    assert [i.amount_cents for i in agreement.installments] == [400_000, 400_000, 400_000]

    apply(account, 500_000, "REF-1")

    assert (first.paid_cents, second.paid_cents, third.paid_cents) == (400_000, 100_000, 0)
    assert next_installment(agreement) is second
    assert agreement.status == AgreementStatus.ACTIVE.value

    apply(account, 300_000, "REF-2")

    assert (second.paid_cents, third.paid_cents) == (400_000, 0)
    assert next_installment(agreement) is third


def test_a_fully_paid_plan_completes_and_the_account_is_paid(
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: MakeAccount,
    apply: Callable[..., AppliedPayment],
) -> None:
    account = make_account()
    agreement = accept_offer(session, clock, policy, offer_plan(session, clock, policy, account, 2))

    apply(account, 600_000, "REF-1")
    apply(account, 600_000, "REF-2")

    assert agreement.status == AgreementStatus.COMPLETED.value
    assert next_installment(agreement) is None
    assert account.status == AccountStatus.PAID.value


def test_a_payment_keeps_the_promise_it_covers(
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: MakeAccount,
    apply: Callable[..., AppliedPayment],
) -> None:
    account = make_account()
    promise = record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 27), amount_cents=300_000
    )

    apply(account, 300_000, "REF-1", paid_at=datetime(2026, 11, 25, 9, 0, tzinfo=MEXICO_CITY))

    assert promise.status == PromiseStatus.KEPT.value


def test_a_reported_payment_is_found_near_its_date_and_amount(
    session: Session, clock: Clock, make_account: MakeAccount, apply: Callable[..., AppliedPayment]
) -> None:
    account = make_account()
    payment = apply(
        account, 50_000, "REF-1", paid_at=datetime(2026, 11, 20, 12, 0, tzinfo=MEXICO_CITY)
    ).payment

    # "I paid 500 pesos on Saturday" (the 21st): within 3 days and $1.00.
    assert find_payment_near(session, account.id, 50_000, date(2026, 11, 21), clock) == payment
    assert find_payment_near(session, account.id, 50_100, date(2026, 11, 23), clock) == payment
    assert find_payment_near(session, account.id, 49_900, date(2026, 11, 17), clock) == payment


@pytest.mark.parametrize(
    ("cents", "on"),
    [
        (50_101, date(2026, 11, 20)),  # more than $1.00 off
        (60_000, date(2026, 11, 20)),
        (50_000, date(2026, 11, 24)),  # four days later
        (50_000, date(2026, 11, 16)),  # four days earlier
    ],
)
def test_a_payment_of_another_amount_or_week_is_not_found(
    session: Session,
    clock: Clock,
    make_account: MakeAccount,
    apply: Callable[..., AppliedPayment],
    cents: int,
    on: date,
) -> None:
    account = make_account()
    apply(account, 50_000, "REF-1", paid_at=datetime(2026, 11, 20, 12, 0, tzinfo=MEXICO_CITY))

    assert find_payment_near(session, account.id, cents, on, clock) is None


def test_a_payment_of_another_account_is_not_found(
    session: Session, clock: Clock, make_account: MakeAccount, apply: Callable[..., AppliedPayment]
) -> None:
    apply(make_account(), 50_000, "REF-1", paid_at=PAID_AT)
    other = make_account()

    assert find_payment_near(session, other.id, 50_000, PAID_AT.date(), clock) is None


def test_the_search_window_is_whole_local_days(
    session: Session, clock: Clock, make_account: MakeAccount, apply: Callable[..., AppliedPayment]
) -> None:
    account = make_account()
    late_evening = datetime(2026, 11, 20, 23, 30, tzinfo=MEXICO_CITY)  # already the 21st in UTC
    payment = apply(account, 50_000, "REF-1", paid_at=late_evening).payment

    # The payment is on the 20th in Mexico City (05:30 UTC on the 21st). Three local days
    # after the 17th end at midnight of the 21st local, 06:00 UTC: it is inside.
    assert find_payment_near(session, account.id, 50_000, date(2026, 11, 17), clock) == payment
    # Three local days before the 24th start at midnight of the 21st local: it is outside,
    # although its UTC date is within three days of the 24th.
    assert find_payment_near(session, account.id, 50_000, date(2026, 11, 24), clock) is None
