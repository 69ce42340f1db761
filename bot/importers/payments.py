"""Applying the payments a creditor reports in a CSV (CONTRACT section 4).

Each row goes through :func:`bot.domain.payments.apply_payment` with
``source="import"``, so promises are marked kept and agreements advance exactly
as for a payment confirmed by a provider. A payment is identified by account and
reference: importing the same file again applies nothing twice, and those rows
are counted as already applied, not as errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.db.models import Account
from bot.domain.audit import record_audit
from bot.domain.money import format_money
from bot.domain.payments import apply_payment
from bot.importers.csv_rows import (
    CellError,
    CsvRow,
    CsvTable,
    check_length,
    overflow_reason,
    parse_iso_moment,
    parse_pesos,
)
from bot.importers.report import ImportReport, RowError
from bot.policy import Policy

REQUIRED_COLUMNS = ("account_id", "amount", "paid_at", "reference")
CHUNK_SIZE = 500


@dataclass(frozen=True)
class PaymentRow:
    """One validated payment row."""

    line: int
    external_id: str
    amount_cents: int
    paid_at: datetime
    reference: str


def read_payment_row(row: CsvRow, clock: Clock) -> tuple[PaymentRow | None, list[RowError]]:
    """Validate one payments row: a :class:`PaymentRow`, or every problem it has."""
    errors: list[RowError] = []

    def fail(column: str | None, reason: str) -> None:
        errors.append(RowError(row.line, column, reason))

    external_id = row.get("account_id")
    if not external_id:
        fail("account_id", "is empty")
    amount_text = row.get("amount")
    amount: int | None = None
    try:
        amount = parse_pesos(amount_text)
        if amount == 0:
            fail("amount", f"'{amount_text}' is zero; a payment must be more than 0")
    except CellError as exc:
        fail("amount", str(exc))
    paid_at: datetime | None = None
    paid_text = row.get("paid_at")
    if not paid_text:
        fail("paid_at", "is empty")
    else:
        try:
            paid_at, date_only = parse_iso_moment(paid_text, clock.tz)
            future = paid_at.date() > clock.today() if date_only else paid_at > clock.now()
            if future:
                fail("paid_at", f"'{paid_text}' is in the future")
        except CellError as exc:
            fail("paid_at", str(exc))
    reference = row.get("reference")
    if not reference:
        fail("reference", "is empty")
    else:
        try:
            check_length(reference, 100)
        except CellError as exc:
            fail("reference", str(exc))
    overflow = overflow_reason(row, bool(errors))
    if overflow:
        errors.insert(0, RowError(row.line, None, overflow))
    if errors or amount is None or paid_at is None:
        return None, errors
    return PaymentRow(row.line, external_id, amount, paid_at, reference), []


def import_payments(
    sessions: sessionmaker[Session],
    clock: Clock,
    policy: Policy,
    table: CsvTable,
    *,
    chunk_size: int = CHUNK_SIZE,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Validate every row of ``table`` and apply the valid payments; one transaction per chunk."""
    report = ImportReport(kind="payments")
    chunk: list[PaymentRow] = []
    pending = 0

    def write_chunk() -> None:
        nonlocal chunk, pending
        if chunk:
            with sessions() as session, session.begin():
                _apply_chunk(session, clock, policy, chunk, report)
        if on_progress is not None and pending:
            on_progress(pending)
        chunk, pending = [], 0

    for row in table.rows():
        pending += 1
        payment, errors = read_payment_row(row, clock)
        if payment is None:
            report.reject(errors)
        else:
            chunk.append(payment)
        if len(chunk) >= chunk_size or pending >= 4 * chunk_size:
            write_chunk()
    write_chunk()
    with sessions() as session, session.begin():
        record_audit(
            session,
            clock,
            actor="import",
            action="payments_imported",
            file=table.path.name,
            applied=report.created,
            already_applied=report.unchanged,
            rejected=report.rejected,
        )
    report.errors.sort(key=lambda error: error.line)
    return report


def _apply_chunk(
    session: Session, clock: Clock, policy: Policy, rows: list[PaymentRow], report: ImportReport
) -> None:
    accounts = {
        account.external_id: account
        for account in session.scalars(
            select(Account).where(Account.external_id.in_({row.external_id for row in rows}))
        )
    }
    for row in rows:
        account = accounts.get(row.external_id)
        if account is None:
            report.reject(
                [
                    RowError(
                        row.line,
                        "account_id",
                        f"no account '{row.external_id}' in the portfolio (import it first)",
                    )
                ]
            )
            continue
        applied = apply_payment(
            session,
            clock,
            policy,
            account,
            amount_cents=row.amount_cents,
            paid_at=row.paid_at,
            reference=row.reference,
            source="import",
        )
        if applied.created:
            report.created += 1
        elif applied.payment.amount_cents != row.amount_cents:
            report.reject(
                [
                    RowError(
                        row.line,
                        "reference",
                        f"'{row.reference}' was already applied to account '{row.external_id}' "
                        f"for {format_money(applied.payment.amount_cents, account.currency)}, "
                        f"not {format_money(row.amount_cents, account.currency)}",
                    )
                ]
            )
        else:
            report.unchanged += 1
