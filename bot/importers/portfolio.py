"""Loading the creditor's portfolio CSV (CONTRACT section 4): validate rows, upsert accounts.

Valid rows are loaded even when others are rejected; every rejected row is
reported with its line, column and reason. Rows are written in chunks, one
transaction each, with the chunk's existing accounts and contacts fetched by
one query apiece: the same upsert as :func:`bot.domain.debtors.upsert_account`
(by ``account_id``; the debtor found by phone; the phone stored as E.164),
without a round trip per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from functools import lru_cache
from typing import TypeVar, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.db.models import Account, Channel, ContactPoint, Debtor
from bot.domain.audit import record_audit
from bot.domain.debtors import AccountData
from bot.domain.errors import InvalidPhone
from bot.domain.phones import is_mexican, normalize_phone
from bot.importers.conflicts import phone_conflict, phone_owners
from bot.importers.csv_rows import (
    CellError,
    CsvRow,
    CsvTable,
    check_length,
    overflow_reason,
    parse_currency,
    parse_email,
    parse_iso_date,
    parse_pesos,
    parse_timezone,
)
from bot.importers.report import ImportReport, RowError

REQUIRED_COLUMNS = (
    "account_id",
    "full_name",
    "phone",
    "birth_date",
    "creditor",
    "product",
    "principal",
    "interest",
    "fees",
    "due_date",
)
OPTIONAL_COLUMNS = ("minimum_payment", "currency", "email", "timezone")
CHUNK_SIZE = 2_000
MIN_AGE = 18
MAX_AGE = 120

Progress = Callable[[int], None]
T = TypeVar("T")


def read_portfolio_row(row: CsvRow, today: date) -> tuple[AccountData | None, list[RowError]]:
    """Validate one portfolio row: its :class:`AccountData`, or every problem it has."""
    errors: list[RowError] = []

    def cell(column: str, parse: Callable[[str], T], *, required: bool = True) -> T | None:
        text = row.get(column)
        if not text:
            if required:
                errors.append(RowError(row.line, column, "is empty"))
            return None
        try:
            return parse(text)
        except CellError as exc:
            errors.append(RowError(row.line, column, str(exc)))
            return None

    external_id = cell("account_id", lambda text: check_length(text, 64))
    full_name = cell("full_name", lambda text: check_length(text, 200))
    phone = cell("phone", parse_mexican_phone)
    birth_date = cell("birth_date", lambda text: parse_birth_date(text, today))
    creditor = cell("creditor", lambda text: check_length(text, 200))
    product = cell("product", lambda text: check_length(text, 200))
    principal = cell("principal", parse_pesos)
    interest = cell("interest", parse_pesos)
    fees = cell("fees", parse_pesos)
    due_date = cell("due_date", parse_iso_date)
    minimum = cell("minimum_payment", parse_pesos, required=False)
    currency = cell("currency", parse_currency, required=False)
    email = cell("email", parse_email, required=False)
    timezone = cell("timezone", parse_timezone, required=False)
    overflow = overflow_reason(row, bool(errors))
    if overflow:
        errors.insert(0, RowError(row.line, None, overflow))
    if (
        errors
        or external_id is None
        or full_name is None
        or phone is None
        or birth_date is None
        or creditor is None
        or product is None
        or principal is None
        or interest is None
        or fees is None
        or due_date is None
    ):
        return None, errors
    data = AccountData(
        external_id=external_id,
        full_name=full_name,
        phone=phone,
        birth_date=birth_date,
        creditor=creditor,
        product=product,
        principal_cents=principal,
        interest_cents=interest,
        fees_cents=fees,
        due_date=due_date,
        minimum_payment_cents=minimum,
        currency=currency or "MXN",
        email=email,
        timezone=timezone,
    )
    return data, []


@lru_cache(maxsize=65_536)  # portfolios repeat a debtor's phone across accounts
def parse_mexican_phone(text: str) -> str:
    """A Mexican number in E.164 (``+52`` and ten digits), however the file wrote it."""
    try:
        e164 = normalize_phone(text)
    except InvalidPhone:
        if _foreign_prefix(text):
            raise CellError(f"'{text}' is not a Mexican phone number") from None
        raise CellError(
            f"'{text}' is not a valid Mexican phone number (ten digits, e.g. 55 1234 5678)"
        ) from None
    if not is_mexican(e164):
        raise CellError(f"'{text}' is not a Mexican phone number")
    return e164


def _foreign_prefix(text: str) -> bool:
    compact = "".join(ch for ch in text if ch.isdigit() or ch == "+")
    if compact.startswith("+"):
        return not compact.startswith("+52")
    return compact.startswith("00") and not compact.startswith("0052")


def parse_birth_date(text: str, today: date) -> date:
    """An ISO birth date of an adult: not in the future, at least 18, at most 120 years ago."""
    born = parse_iso_date(text)
    if born > today:
        raise CellError(f"'{text}' is in the future")
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if age < MIN_AGE:
        raise CellError(f"'{text}' makes the debtor {age}; debtors must be {MIN_AGE} or older")
    if age > MAX_AGE:
        raise CellError(f"'{text}' is not a plausible birth date (over {MAX_AGE} years ago)")
    return born


def import_portfolio(
    sessions: sessionmaker[Session],
    clock: Clock,
    table: CsvTable,
    *,
    chunk_size: int = CHUNK_SIZE,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Validate every row of ``table`` and upsert the valid ones; one transaction per chunk.

    A repeated ``account_id`` is rejected on its later lines, and so is a row whose phone
    belongs to a debtor with another name or birth date (``bot/importers/conflicts.py``).
    Importing the same file again updates the same accounts and creates nothing.
    """
    report = ImportReport(kind="portfolio")
    today = clock.today()
    first_seen: dict[str, int] = {}
    chunk: list[tuple[int, AccountData]] = []
    pending = 0

    def write_chunk() -> None:
        nonlocal chunk, pending
        if chunk:
            with sessions() as session, session.begin():
                owners = phone_owners(session, (data.phone for _, data in chunk))
                accepted = []
                for line, data in chunk:
                    conflict = phone_conflict(owners, line, data)
                    if conflict is None:
                        accepted.append(data)
                    else:
                        report.reject([conflict])
                for created in upsert_accounts(session, clock, accepted):
                    if created:
                        report.created += 1
                    else:
                        report.updated += 1
        if on_progress is not None and pending:
            on_progress(pending)
        chunk, pending = [], 0

    for row in table.rows():
        pending += 1
        data, errors = read_portfolio_row(row, today)
        external_id = row.get("account_id")
        if external_id:
            first = first_seen.setdefault(external_id, row.line)
            if first != row.line:
                errors.append(
                    RowError(
                        row.line, "account_id", f"duplicate account_id, first seen on line {first}"
                    )
                )
        if errors or data is None:
            report.reject(errors)
        else:
            chunk.append((row.line, data))
        if len(chunk) >= chunk_size or pending >= 4 * chunk_size:
            write_chunk()
    write_chunk()
    with sessions() as session, session.begin():
        record_audit(
            session,
            clock,
            actor="import",
            action="portfolio_imported",
            file=table.path.name,
            created=report.created,
            updated=report.updated,
            rejected=report.rejected,
        )
    return report


class _DebtorRef:
    """A debtor touched by a chunk: its id (None until inserted) and the values to write."""

    __slots__ = ("id", "values")

    def __init__(self, debtor_id: int | None) -> None:
        self.id = debtor_id
        self.values: dict[str, object] = {}


def upsert_accounts(session: Session, clock: Clock, rows: Iterable[AccountData]) -> list[bool]:
    """:func:`~bot.domain.debtors.upsert_account` for many rows at once; returns created flags.

    The decisions are the same, row by row in order (account by external id; its
    debtor, else the debtor behind the phone's contact point, else a new one; a
    missing contact point created, an orphan one attached); the writes are a few
    executemany statements instead of two flushes per row. Phones must already be
    E.164 and ``account_id`` values unique among ``rows``.
    """
    rows = list(rows)
    if not rows:
        return []
    now = clock.now_utc()
    today = clock.today()
    whatsapp = Channel.WHATSAPP.value
    known_accounts = {
        external_id: (account_id, debtor_id)
        for external_id, account_id, debtor_id in session.execute(
            select(Account.external_id, Account.id, Account.debtor_id).where(
                Account.external_id.in_({data.external_id for data in rows})
            )
        )
    }
    debtors: dict[int, _DebtorRef] = {}

    def existing(debtor_id: int) -> _DebtorRef:
        if debtor_id not in debtors:
            debtors[debtor_id] = _DebtorRef(debtor_id)
        return debtors[debtor_id]

    contact_ids: dict[str, int] = {}
    contact_debtor: dict[str, _DebtorRef | None] = {}
    for address, contact_id, debtor_id in session.execute(
        select(ContactPoint.address, ContactPoint.id, ContactPoint.debtor_id).where(
            ContactPoint.channel == whatsapp,
            ContactPoint.address.in_({data.phone for data in rows}),
        )
    ):
        contact_ids[address] = contact_id
        contact_debtor[address] = existing(debtor_id) if debtor_id is not None else None

    new_debtors: list[_DebtorRef] = []
    new_contacts: list[tuple[str, _DebtorRef]] = []
    orphan_contacts: list[tuple[int, _DebtorRef]] = []
    account_rows: list[tuple[AccountData, _DebtorRef, int | None]] = []
    for data in rows:
        known = known_accounts.get(data.external_id)
        by_phone = contact_debtor.get(data.phone)
        if known is not None:
            debtor = existing(known[1])
        elif by_phone is not None:
            debtor = by_phone
        else:
            debtor = _DebtorRef(None)
            new_debtors.append(debtor)
        debtor.values = {
            "full_name": data.full_name,
            "birth_date": data.birth_date,
            "email": data.email,
            "timezone": data.timezone,
            "updated_at": now,
        }
        if data.phone not in contact_debtor:
            new_contacts.append((data.phone, debtor))
            contact_debtor[data.phone] = debtor
        elif by_phone is None:
            orphan_contacts.append((contact_ids[data.phone], debtor))
            contact_debtor[data.phone] = debtor
        account_rows.append((data, debtor, known[0] if known else None))

    if new_debtors:
        # Core statements, not ORM bulk ones: the ORM splits a batch by which values
        # are None, and re-sorting the RETURNING rows of the pieces is quadratic.
        new_ids = session.scalars(
            insert(_table(Debtor)).returning(_table(Debtor).c.id, sort_by_parameter_order=True),
            [{**ref.values, "created_at": now} for ref in new_debtors],
        ).all()
        for ref, debtor_id in zip(new_debtors, new_ids, strict=True):
            ref.id = debtor_id
    updated_debtors = [{"id": ref.id, **ref.values} for ref in debtors.values() if ref.values]
    if updated_debtors:
        session.execute(update(Debtor), updated_debtors)
    if new_contacts:
        session.execute(
            insert(_table(ContactPoint)),
            [
                {
                    "debtor_id": ref.id,
                    "channel": whatsapp,
                    "address": address,
                    "preferred": True,
                    "created_at": now,
                }
                for address, ref in new_contacts
            ],
        )
    if orphan_contacts:
        session.execute(
            update(ContactPoint),
            [{"id": contact_id, "debtor_id": ref.id} for contact_id, ref in orphan_contacts],
        )
    inserts: list[dict[str, object]] = []
    updates: list[dict[str, object]] = []
    for data, ref, account_id in account_rows:
        values: dict[str, object] = {
            "debtor_id": ref.id,
            "creditor": data.creditor,
            "product": data.product,
            "principal_cents": data.principal_cents,
            "interest_cents": data.interest_cents,
            "fees_cents": data.fees_cents,
            "minimum_payment_cents": data.minimum_payment_cents,
            "currency": data.currency,
            "due_date": data.due_date,
            "amounts_as_of": today,
            "updated_at": now,
        }
        if account_id is None:
            inserts.append({**values, "external_id": data.external_id, "created_at": now})
        else:
            updates.append({**values, "id": account_id})
    if inserts:
        session.execute(insert(_table(Account)), inserts)
    if updates:
        session.execute(update(Account), updates)
    return [account_id is None for _, _, account_id in account_rows]


def _table(model: type[Debtor] | type[Account] | type[ContactPoint]) -> Table:
    return cast(Table, model.__table__)
