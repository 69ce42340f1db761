"""Promises to pay (CONTRACT 6.5): a date within the horizon, an amount at least the minimum,
judged kept or broken the day after.

policy.yml: horizon_days 30, min_amount $200.00, grace_days 1. The pinned day is
Monday 2026-11-23, so the horizon is 2026-12-23. The default account owes $12,000.00.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import Account, AccountStatus, AuditEntry, Payment, PromiseStatus
from bot.domain.errors import PromiseRejected
from bot.domain.promises import (
    mark_kept_promises,
    pending_promises,
    record_promise,
    settle_due_promises,
)
from bot.policy import Policy

MakeAccount = Callable[..., Account]
MEXICO_CITY = ZoneInfo("America/Mexico_City")


def clock_on(day: str) -> Clock:
    return Clock.from_setting(day, "America/Mexico_City")


def pay(session: Session, account: Account, cents: int, at: datetime, reference: str) -> None:
    session.add(
        Payment(
            account_id=account.id,
            amount_cents=cents,
            paid_at=at,
            reference=reference,
            source="import",
            created_at=at,
        )
    )
    session.flush()


def audit_actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_a_promise_within_the_policy_is_recorded_pending(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()

    promise = record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 30), amount_cents=50_000
    )

    assert promise.status == PromiseStatus.PENDING.value
    assert promise.promised_date == date(2026, 11, 30)
    assert promise.amount_cents == 50_000
    assert promise.made_by == "bot"
    assert pending_promises(session, account.id) == [promise]


def test_recording_a_promise_writes_an_audit_entry(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()

    promise = record_promise(
        session,
        clock,
        policy,
        account,
        promised_date=date(2026, 12, 4),
        amount_cents=300_000,
        made_by="agent:lucia",
    )
    session.commit()

    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "promise")).one()
    assert entry.actor == "agent:lucia"
    assert entry.account_id == account.id
    assert entry.details == {
        "promise_id": promise.id,
        "promised_date": "2026-12-04",
        "amount_cents": 300_000,
    }
    assert entry.at == datetime(2026, 11, 23, 18, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("promised", [date(2026, 11, 23), date(2026, 11, 24), date(2026, 12, 23)])
def test_today_and_the_last_day_of_the_horizon_are_accepted(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount, promised: date
) -> None:
    promise = record_promise(
        session, clock, policy, make_account(), promised_date=promised, amount_cents=20_000
    )

    assert promise.promised_date == promised


@pytest.mark.parametrize(
    ("promised", "reason"),
    [
        (date(2026, 11, 22), "date_in_past"),
        (date(2025, 12, 1), "date_in_past"),
        (date(2026, 12, 24), "date_beyond_horizon"),
        (date(2027, 3, 1), "date_beyond_horizon"),
    ],
)
def test_a_date_outside_the_horizon_is_rejected(
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: MakeAccount,
    promised: date,
    reason: str,
) -> None:
    account = make_account()

    with pytest.raises(PromiseRejected) as rejected:
        record_promise(session, clock, policy, account, promised_date=promised, amount_cents=50_000)

    assert rejected.value.reason == reason
    assert pending_promises(session, account.id) == []
    assert "promise" not in audit_actions(session)


@pytest.mark.parametrize(
    ("cents", "reason"),
    [
        (19_999, "amount_below_minimum"),
        (0, "amount_below_minimum"),
        (-50_000, "amount_below_minimum"),
        (1_200_001, "amount_above_balance"),
    ],
)
def test_an_amount_outside_the_policy_is_rejected(
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: MakeAccount,
    cents: int,
    reason: str,
) -> None:
    with pytest.raises(PromiseRejected) as rejected:
        record_promise(
            session,
            clock,
            policy,
            make_account(),
            promised_date=date(2026, 11, 30),
            amount_cents=cents,
        )

    assert rejected.value.reason == reason


@pytest.mark.parametrize("cents", [20_000, 1_200_000])
def test_the_minimum_and_the_whole_balance_are_accepted(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount, cents: int
) -> None:
    promise = record_promise(
        session, clock, policy, make_account(), promised_date=date(2026, 11, 30), amount_cents=cents
    )

    assert promise.amount_cents == cents


def test_a_balance_below_the_minimum_may_be_promised_whole(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    # $150.00 owed, less than the $200.00 minimum: promising all of it is fine.
    account = make_account(principal_cents=15_000, interest_cents=0, fees_cents=0)

    promise = record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 30), amount_cents=15_000
    )
    assert promise.amount_cents == 15_000

    with pytest.raises(PromiseRejected) as rejected:
        record_promise(
            session, clock, policy, account, promised_date=date(2026, 11, 30), amount_cents=14_999
        )
    assert rejected.value.reason == "amount_below_minimum"


def test_an_account_with_nothing_owed_takes_no_promise(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()
    account.status = AccountStatus.PAID.value

    with pytest.raises(PromiseRejected) as rejected:
        record_promise(
            session, clock, policy, account, promised_date=date(2026, 11, 30), amount_cents=0
        )

    assert rejected.value.reason == "nothing_owed"


def test_a_new_promise_cancels_the_pending_one(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()
    first = record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 27), amount_cents=50_000
    )

    second = record_promise(
        session, clock, policy, account, promised_date=date(2026, 12, 4), amount_cents=80_000
    )

    assert first.status == PromiseStatus.CANCELLED.value
    assert first.resolved_at == clock.now_utc()
    assert pending_promises(session, account.id) == [second]


def test_promises_on_other_accounts_are_not_cancelled(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    one, other = make_account(), make_account()
    kept_apart = record_promise(
        session, clock, policy, other, promised_date=date(2026, 11, 27), amount_cents=50_000
    )

    record_promise(
        session, clock, policy, one, promised_date=date(2026, 11, 27), amount_cents=50_000
    )

    assert kept_apart.status == PromiseStatus.PENDING.value


def test_a_covering_payment_marks_the_promise_kept(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()
    promise = record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 27), amount_cents=50_000
    )
    pay(session, account, 50_000, datetime(2026, 11, 26, 10, 0, tzinfo=MEXICO_CITY), "R1")

    kept = mark_kept_promises(session, clock, policy, account.id)

    assert kept == [promise]
    assert promise.status == PromiseStatus.KEPT.value
    assert audit_actions(session)[-1] == "promise_kept"


def test_partial_payments_add_up_to_keep_a_promise(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()
    promise = record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 27), amount_cents=50_000
    )
    pay(session, account, 30_000, datetime(2026, 11, 24, 10, 0, tzinfo=MEXICO_CITY), "R1")

    assert mark_kept_promises(session, clock, policy, account.id) == []
    assert promise.status == PromiseStatus.PENDING.value

    pay(session, account, 20_000, datetime(2026, 11, 25, 10, 0, tzinfo=MEXICO_CITY), "R2")

    assert mark_kept_promises(session, clock, policy, account.id) == [promise]


def test_a_payment_made_long_before_the_promise_does_not_keep_it(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()
    pay(session, account, 50_000, datetime(2026, 11, 10, 10, 0, tzinfo=MEXICO_CITY), "OLD")
    promise = record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 27), amount_cents=50_000
    )

    assert mark_kept_promises(session, clock, policy, account.id) == []
    assert promise.status == PromiseStatus.PENDING.value


def test_an_unpaid_promise_is_not_judged_before_the_day_after(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    promise = record_promise(
        session,
        clock,
        policy,
        make_account(),
        promised_date=date(2026, 11, 25),
        amount_cents=50_000,
    )

    assert settle_due_promises(session, clock_on("2026-11-25"), policy) == []
    assert promise.status == PromiseStatus.PENDING.value


def test_an_unpaid_promise_is_broken_once_the_grace_day_comes(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()
    promise = record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 25), amount_cents=50_000
    )
    day_after = clock_on("2026-11-26")  # promised date + grace_days (1)

    broken = settle_due_promises(session, day_after, policy)

    assert broken == [promise]
    assert promise.status == PromiseStatus.BROKEN.value
    assert promise.resolved_at == day_after.now_utc()
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "promise_broken")).one()
    assert entry.account_id == account.id
    assert entry.details == {"promise_id": promise.id}


def test_a_paid_promise_is_judged_kept_not_broken(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()
    promise = record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 25), amount_cents=50_000
    )
    # Paid on the grace day itself, reported before the judging run.
    pay(session, account, 60_000, datetime(2026, 11, 26, 8, 0, tzinfo=MEXICO_CITY), "R1")

    assert settle_due_promises(session, clock_on("2026-11-26"), policy) == []
    assert promise.status == PromiseStatus.KEPT.value


def test_a_payment_after_the_grace_period_does_not_keep_the_promise(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    account = make_account()
    promise = record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 25), amount_cents=50_000
    )
    pay(session, account, 50_000, datetime(2026, 11, 27, 9, 0, tzinfo=MEXICO_CITY), "LATE")

    assert settle_due_promises(session, clock_on("2026-11-28"), policy) == [promise]


def test_judged_promises_are_not_judged_again(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    record_promise(
        session,
        clock,
        policy,
        make_account(),
        promised_date=date(2026, 11, 25),
        amount_cents=50_000,
    )
    later = clock_on("2026-11-30")

    assert len(settle_due_promises(session, later, policy)) == 1
    assert settle_due_promises(session, later, policy) == []
    assert audit_actions(session).count("promise_broken") == 1


def test_only_promises_past_their_grace_are_judged(
    session: Session, clock: Clock, policy: Policy, make_account: MakeAccount
) -> None:
    due = record_promise(
        session,
        clock,
        policy,
        make_account(),
        promised_date=date(2026, 11, 24),
        amount_cents=50_000,
    )
    not_yet = record_promise(
        session,
        clock,
        policy,
        make_account(),
        promised_date=date(2026, 11, 28),
        amount_cents=50_000,
    )

    broken = settle_due_promises(session, clock_on("2026-11-25"), policy)

    assert broken == [due]
    assert not_yet.status == PromiseStatus.PENDING.value
