"""Payments CSV import: balances go down once per payment, promises settle."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.engine import session_factory
from bot.db.models import Account, AccountStatus, Payment, PromiseStatus
from bot.domain.accounts import balance_breakdown, get_account
from bot.domain.promises import record_promise
from bot.importers.csv_rows import FileUnusable, open_csv
from bot.importers.payments import REQUIRED_COLUMNS, import_payments
from bot.importers.report import ImportReport
from bot.policy import Policy
from tests.test_import_portfolio import write_csv

HEADER = list(REQUIRED_COLUMNS)


def payment(account_id: str, amount: str, paid_at: str, reference: str) -> dict[str, str]:
    return {"account_id": account_id, "amount": amount, "paid_at": paid_at, "reference": reference}


@pytest.fixture
def load_payments(
    db_url: str, clock: Clock, policy: Policy, tmp_path: Path
) -> Callable[..., ImportReport]:
    """Write payment rows to a CSV and import them; returns the report."""
    counter = {"n": 0}

    def _load(rows: list[dict[str, str]], **csv: Any) -> ImportReport:
        counter["n"] += 1
        path = write_csv(tmp_path / f"payments-{counter['n']}.csv", rows, header=HEADER, **csv)
        table = open_csv(path, REQUIRED_COLUMNS)
        return import_payments(session_factory(db_url), clock, policy, table)

    return _load


def balance(session: Session, clock: Clock, external_id: str) -> int:
    session.expire_all()
    account = get_account(session, external_id)
    assert account is not None
    return balance_breakdown(session, account, clock).total_cents


def payments_of(session: Session, account: Account) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(Payment).where(Payment.account_id == account.id)
        )
        or 0
    )


def test_payments_lower_the_balance(load_payments, make_account, session, clock) -> None:
    make_account(external_id="A-1")  # owes $12,000.00
    make_account(external_id="A-2")

    report = load_payments(
        [
            payment("A-1", "2000", "2026-11-20", "SPEI-1"),
            payment("A-1", "$1,500.50", "2026-11-21T09:15:00-06:00", "OXXO-2"),
            payment("A-2", "12000.00", "2026-11-22", "DEP-3"),
        ]
    )

    assert report.summary() == "Loaded 3 rows (3 applied, 0 already applied)."
    assert balance(session, clock, "A-1") == 1_200_000 - 200_000 - 150_050
    paid_in_full = get_account(session, "A-2")
    assert paid_in_full is not None and paid_in_full.status == AccountStatus.PAID.value
    stored = session.scalars(select(Payment).where(Payment.reference == "SPEI-1")).one()
    assert stored.source == "import"


def test_reimporting_the_same_file_applies_nothing_twice(
    load_payments, make_account, session, clock
) -> None:
    account = make_account(external_id="A-1")
    rows = [payment("A-1", "100", "2026-11-20", "R-1"), payment("A-1", "50", "2026-11-21", "R-2")]
    load_payments(rows)

    again = load_payments(rows)

    assert (again.created, again.unchanged, again.rejected) == (0, 2, 0)
    assert again.summary() == "Loaded 2 rows (0 applied, 2 already applied)."
    assert payments_of(session, account) == 2
    assert balance(session, clock, "A-1") == 1_200_000 - 15_000


def test_a_payment_settles_the_pending_promise(
    load_payments, make_account, session, clock, policy
) -> None:
    account = make_account(external_id="A-1")
    promise = record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 27), amount_cents=300_000
    )
    session.commit()

    load_payments([payment("A-1", "3000.00", "2026-11-23", "SPEI-77")])

    session.refresh(promise)
    assert promise.status == PromiseStatus.KEPT.value


def test_a_date_means_noon_in_the_settings_time_zone(load_payments, make_account, session) -> None:
    make_account(external_id="A-1")

    load_payments(
        [
            payment("A-1", "10", "2026-11-20", "R-date"),
            payment("A-1", "10", "2026-11-20T08:30:00Z", "R-utc"),
            payment("A-1", "10", "2026-11-20 08:30", "R-local"),
        ]
    )

    paid = dict(session.execute(select(Payment.reference, Payment.paid_at)).tuples().all())
    assert paid["R-date"] == datetime(2026, 11, 20, 18, 0, tzinfo=timezone.utc)
    assert paid["R-utc"] == datetime(2026, 11, 20, 8, 30, tzinfo=timezone.utc)
    assert paid["R-local"] == datetime(2026, 11, 20, 14, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            payment("NOPE-9", "100", "2026-11-20", "R-1"),
            "line 2, column account_id: no account 'NOPE-9' in the portfolio (import it first)",
        ),
        (payment("A-1", "0", "2026-11-20", "R-1"), "line 2, column amount: '0' is zero"),
        (payment("A-1", "-50", "2026-11-20", "R-1"), "line 2, column amount: '-50' is negative"),
        (payment("A-1", "cien", "2026-11-20", "R-1"), "line 2, column amount: 'cien' is not an"),
        (payment("A-1", "", "2026-11-20", "R-1"), "line 2, column amount: is empty"),
        (payment("A-1", "10", "20/11/2026", "R-1"), "line 2, column paid_at: '20/11/2026' is not"),
        (payment("A-1", "10", "2026-11-24", "R-1"), "line 2, column paid_at: '2026-11-24' is in"),
        (
            payment("A-1", "10", "2026-11-23T15:00:00-06:00", "R-1"),
            "line 2, column paid_at: '2026-11-23T15:00:00-06:00' is in the future",
        ),
        (payment("A-1", "10", "2026-11-20", " "), "line 2, column reference: is empty"),
        (payment("", "10", "2026-11-20", "R-1"), "line 2, column account_id: is empty"),
    ],
)
def test_bad_rows_are_rejected_naming_line_and_column(
    load_payments, make_account, session, row, expected
) -> None:
    account = make_account(external_id="A-1")

    report = load_payments([row, payment("A-1", "10", "2026-11-20", "R-good")])

    assert report.created == 1
    assert report.rejected_lines == [2]
    assert report.error_lines()[0].startswith(expected)
    assert payments_of(session, account) == 1


def test_a_reference_reused_with_another_amount_is_rejected(
    load_payments, make_account, session
) -> None:
    account = make_account(external_id="A-1")
    load_payments([payment("A-1", "500", "2026-11-20", "R-1")])

    report = load_payments([payment("A-1", "600", "2026-11-20", "R-1")])

    assert report.error_lines() == [
        "line 2, column reference: 'R-1' was already applied to account 'A-1' for $500.00, "
        "not $600.00"
    ]
    assert payments_of(session, account) == 1


def test_semicolon_separated_payments_with_bom(load_payments, make_account, session) -> None:
    account = make_account(external_id="A-1")

    report = load_payments(
        [payment("A-1", "1,250.00", "2026-11-20", "R-1")], delimiter=";", bom=True
    )

    assert (report.created, report.rejected) == (1, 0)
    assert session.scalars(select(Payment.amount_cents)).one() == 125_000
    assert payments_of(session, account) == 1


def test_a_payments_file_without_reference_column_is_unusable(tmp_path) -> None:
    path = write_csv(
        tmp_path / "p.csv",
        [payment("A-1", "1", "2026-11-20", "R")],
        header=["account_id", "amount", "paid_at"],
    )

    with pytest.raises(FileUnusable) as exc:
        open_csv(path, REQUIRED_COLUMNS)

    assert "missing required column reference" in str(exc.value)
