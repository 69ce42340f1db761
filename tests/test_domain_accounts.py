"""Accounts and balances: what a debtor owes today and why.

The default test account (conftest ``make_account``) owes capital $10,000.00,
interest $1,500.00 and fees $500.00 ($12,000.00 in all), due 2026-10-24: on the
pinned Monday 2026-11-23 that is 7 days of October + 23 of November = 30 days past due.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import Account, AccountStatus, ContactPoint, Debtor, Payment
from bot.domain.accounts import (
    balance_breakdown,
    days_past_due,
    find_account_by_phone,
    find_accounts_by_phone,
    find_debtor_by_phone,
    get_account,
    total_paid_cents,
)
from bot.domain.debtors import AccountData, upsert_account
from tests.sql_plans import plans_of

MakeAccount = Callable[..., Account]


def pay(session: Session, account: Account, cents: int, reference: str) -> None:
    """A payment row as the ledger stores it (applying rules are tested elsewhere)."""
    at = datetime(2026, 11, 20, 18, 0, tzinfo=timezone.utc)
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


def test_an_unpaid_account_owes_each_component_in_full(
    session: Session, clock: Clock, make_account: MakeAccount
) -> None:
    account = make_account()

    balance = balance_breakdown(session, account, clock)

    assert (balance.principal_cents, balance.interest_cents, balance.fees_cents) == (
        1_000_000,
        150_000,
        50_000,
    )
    assert balance.total_cents == 1_200_000
    assert balance.paid_cents == 0
    assert balance.due_date == date(2026, 10, 24)
    assert balance.days_past_due == 30
    assert balance.calculated_on == date(2026, 11, 23)
    assert balance.currency == "MXN"


def test_a_small_payment_goes_to_fees_first(
    session: Session, clock: Clock, make_account: MakeAccount
) -> None:
    account = make_account()
    pay(session, account, 30_000, "R1")

    balance = balance_breakdown(session, account, clock)

    assert (balance.principal_cents, balance.interest_cents, balance.fees_cents) == (
        1_000_000,
        150_000,
        20_000,
    )
    assert balance.total_cents == 1_170_000


def test_payments_go_to_fees_then_interest_then_principal(
    session: Session, clock: Clock, make_account: MakeAccount
) -> None:
    account = make_account()
    pay(session, account, 100_000, "R1")  # fees 50,000 + 50,000 of interest
    pay(session, account, 150_000, "R2")  # the other 100,000 of interest + 50,000 of principal

    balance = balance_breakdown(session, account, clock)

    assert (balance.principal_cents, balance.interest_cents, balance.fees_cents) == (950_000, 0, 0)
    assert balance.paid_cents == 250_000
    assert balance.total_cents == 1_200_000 - 250_000


def test_paying_more_than_owed_leaves_nothing_negative(
    session: Session, clock: Clock, make_account: MakeAccount
) -> None:
    account = make_account()
    pay(session, account, 1_300_000, "R1")

    balance = balance_breakdown(session, account, clock)

    assert (balance.principal_cents, balance.interest_cents, balance.fees_cents) == (0, 0, 0)
    assert total_paid_cents(session, account.id) == 1_300_000


def test_a_closed_account_owes_nothing_and_is_not_past_due(
    session: Session, clock: Clock, make_account: MakeAccount
) -> None:
    account = make_account()
    account.status = AccountStatus.SETTLED.value

    balance = balance_breakdown(session, account, clock)

    assert balance.total_cents == 0
    assert balance.days_past_due == 0


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        (date(2026, 12, 1), 0),  # not yet due
        (date(2026, 11, 23), 0),  # due today
        (date(2026, 11, 22), 1),
        (date(2026, 10, 24), 30),
        (date(2026, 8, 25), 90),  # 6 + 30 + 31 + 23
        (date(2025, 11, 23), 365),
    ],
)
def test_days_past_due_count_from_the_due_date_to_today(due: date, expected: int) -> None:
    assert days_past_due(due, date(2026, 11, 23)) == expected


def test_days_past_due_follow_the_clock(
    session: Session, clock: Clock, make_account: MakeAccount
) -> None:
    account = make_account(due_date=date(2026, 12, 1))
    a_month_later = Clock.from_setting("2026-12-23", "America/Mexico_City")

    assert balance_breakdown(session, account, clock).days_past_due == 0
    assert balance_breakdown(session, account, a_month_later).days_past_due == 22
    assert balance_breakdown(session, account, a_month_later).calculated_on == date(2026, 12, 23)


@pytest.mark.parametrize(
    "sender", ["+525512340001", "5215512340001", "+52 1 55 1234 0001", "5512340001"]
)
def test_an_account_is_found_by_any_form_of_the_debtors_number(
    session: Session, make_account: MakeAccount, sender: str
) -> None:
    account = make_account(phone="+52 55 1234 0001")

    assert find_account_by_phone(session, sender) == account


def test_a_number_with_no_account_finds_nothing(
    session: Session, make_account: MakeAccount
) -> None:
    make_account(phone="+525512340001")

    assert find_account_by_phone(session, "+525599998888") is None
    assert find_accounts_by_phone(session, "+525599998888") == []
    assert find_debtor_by_phone(session, "+525599998888") is None


def test_the_open_account_with_most_debt_comes_first(
    session: Session, make_account: MakeAccount
) -> None:
    small = make_account(external_id="CHICA", phone="+525512345678", principal_cents=200_000)
    large = make_account(external_id="GRANDE", phone="5215512345678", principal_cents=5_000_000)

    assert small.debtor_id == large.debtor_id
    assert find_accounts_by_phone(session, "+525512345678") == [large, small]
    assert find_account_by_phone(session, "5215512345678") == large


def test_an_open_account_comes_before_a_closed_one_with_more_debt(
    session: Session, make_account: MakeAccount
) -> None:
    closed = make_account(external_id="CERRADA", phone="+525512345678", principal_cents=9_000_000)
    open_ = make_account(external_id="ABIERTA", phone="+525512345678", principal_cents=100_000)
    closed.status = AccountStatus.PAID.value
    session.flush()

    assert find_accounts_by_phone(session, "+525512345678") == [open_, closed]
    assert find_account_by_phone(session, "+525512345678") == open_


def test_the_number_s_debtor_is_found_through_an_index_not_a_scan(
    session: Session, make_account: MakeAccount
) -> None:
    """A first contact looks its number up inside the webhook's store: with 100,000 debtors
    a scan of every contact point would be the ack's slowest step."""
    make_account(phone="+525512345678")
    found, plans = plans_of(session, lambda: find_account_by_phone(session, "+525512345678"))
    assert found is not None
    assert len(plans) == 1  # one statement, whatever the number of accounts
    assert "SCAN contact_points" not in plans[0], plans[0]
    assert "ix_contact_points_address" in plans[0], plans[0]


def test_most_debt_means_what_is_still_owed_after_payments(
    session: Session, make_account: MakeAccount
) -> None:
    # Reported $12,000.00 but $11,000.00 already paid: $1,000.00 still owed.
    mostly_paid = make_account(external_id="PAGADA", phone="+525512345678")
    pay(session, mostly_paid, 1_100_000, "R1")
    # Reported and owed $5,000.00.
    owing = make_account(
        external_id="DEBE",
        phone="+525512345678",
        principal_cents=500_000,
        interest_cents=0,
        fees_cents=0,
    )

    assert find_account_by_phone(session, "+525512345678") == owing


def test_one_person_with_two_accounts_is_one_debtor_with_one_contact(
    session: Session, make_account: MakeAccount
) -> None:
    make_account(external_id="A-1", phone="+525512345678")
    make_account(external_id="A-2", phone="5215512345678")

    assert session.scalar(select(func.count()).select_from(Debtor)) == 1
    assert session.scalar(select(func.count()).select_from(ContactPoint)) == 1


def test_reimporting_an_account_updates_it_in_place(
    session: Session, clock: Clock, make_account: MakeAccount
) -> None:
    account = make_account(external_id="ACC-9")
    data = AccountData(
        external_id="ACC-9",
        full_name="Deudor Actualizado",
        phone="+525512340001",
        birth_date=date(1985, 3, 15),
        creditor="Banco Ejemplo",
        product="Tarjeta de crédito",
        principal_cents=900_000,
        interest_cents=100_000,
        fees_cents=0,
        due_date=date(2026, 10, 24),
    )

    updated, created = upsert_account(session, clock, data)

    assert created is False
    assert updated.id == account.id
    assert balance_breakdown(session, updated, clock).total_cents == 1_000_000
    assert updated.debtor.full_name == "Deudor Actualizado"


def test_get_account_by_its_portfolio_id(session: Session, make_account: MakeAccount) -> None:
    account = make_account(external_id="TDC-0042")

    assert get_account(session, "TDC-0042") == account
    assert get_account(session, "TDC-9999") is None
