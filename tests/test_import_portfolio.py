"""Portfolio CSV import: what an operator sees after loading a creditor's file."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.engine import session_factory
from bot.db.migrate import upgrade
from bot.db.models import Account, ContactPoint, Debtor
from bot.domain.accounts import find_accounts_by_phone, get_account
from bot.domain.debtors import AccountData, upsert_account
from bot.importers.csv_rows import FileUnusable, open_csv
from bot.importers.portfolio import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, import_portfolio
from bot.importers.report import ImportReport

HEADER = list(REQUIRED_COLUMNS) + list(OPTIONAL_COLUMNS)


def portfolio_row(n: int, **overrides: str) -> dict[str, str]:
    """A valid portfolio row for a fictional debtor number ``n``."""
    row = {
        "account_id": f"ACC-{n:04d}",
        "full_name": f"Deudora Ficticia {n}",
        "phone": f"+5255100{n:05d}",
        "birth_date": "1985-03-15",
        "creditor": "Banco Ejemplo",
        "product": "Tarjeta de crédito",
        "principal": "10000.00",
        "interest": "1500.50",
        "fees": "250",
        "due_date": "2026-10-24",
        "minimum_payment": "",
        "currency": "",
        "email": "",
        "timezone": "",
    }
    row.update(overrides)
    return row


def write_csv(
    path: Path,
    rows: list[dict[str, str]],
    *,
    header: list[str] | None = None,
    delimiter: str = ",",
    bom: bool = False,
) -> Path:
    """Write rows the way a spreadsheet exports them (values quoted only when needed)."""
    columns = header or HEADER

    def quote(value: str) -> str:
        if any(ch in value for ch in (delimiter, '"', "\n")):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [delimiter.join(columns)]
    lines += [delimiter.join(quote(row.get(column, "")) for column in columns) for row in rows]
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def load(db_url: str, clock: Clock, tmp_path: Path) -> Callable[..., ImportReport]:
    """Write ``rows`` to a CSV and import it; returns the report."""
    counter = {"n": 0}

    def _load(rows: list[dict[str, str]], chunk_size: int = 2_000, **csv: Any) -> ImportReport:
        counter["n"] += 1
        path = write_csv(tmp_path / f"portfolio-{counter['n']}.csv", rows, **csv)
        table = open_csv(path, REQUIRED_COLUMNS, OPTIONAL_COLUMNS)
        return import_portfolio(session_factory(db_url), clock, table, chunk_size=chunk_size)

    return _load


def count(session: Session, model: type[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def reasons(report: ImportReport) -> list[str]:
    return [str(error) for error in report.errors]


def test_valid_rows_are_loaded_with_money_in_centavos_and_phone_in_e164(load, session) -> None:
    report = load(
        [
            portfolio_row(1, phone="55 1000 0001", principal="$12,500.40", minimum_payment="800"),
            portfolio_row(2, email="ana@example.com", timezone="America/Tijuana"),
        ]
    )

    assert (report.created, report.updated, report.rejected) == (2, 0, 0)
    assert report.summary() == "Loaded 2 rows (2 new, 0 updated)."
    account = get_account(session, "ACC-0001")
    assert account is not None
    assert (account.principal_cents, account.interest_cents, account.fees_cents) == (
        1_250_040,
        150_050,
        25_000,
    )
    assert account.minimum_payment_cents == 80_000
    assert account.currency == "MXN"
    assert account.amounts_as_of == date(2026, 11, 23)
    assert [c.address for c in account.debtor.contact_points] == ["+525510000001"]
    second = get_account(session, "ACC-0002")
    assert second is not None
    assert second.debtor.email == "ana@example.com"
    assert second.debtor.timezone == "America/Tijuana"


def test_whatsapp_international_and_national_forms_are_the_same_debtor(load, session) -> None:
    report = load(
        [
            portfolio_row(1, phone="+52 1 55 1000 0777"),
            portfolio_row(2, phone="5510000777", full_name="Deudora Ficticia 1"),
            portfolio_row(3, phone="+52 55 1000 0777", full_name="Deudora Ficticia 1"),
        ]
    )

    assert report.created == 3
    assert count(session, Debtor) == 1
    assert count(session, ContactPoint) == 1
    accounts = find_accounts_by_phone(session, "+5215510000777")
    assert sorted(a.external_id for a in accounts) == ["ACC-0001", "ACC-0002", "ACC-0003"]


def test_same_phone_in_later_chunk_finds_the_debtor_of_an_earlier_one(load, session) -> None:
    rows = [portfolio_row(n) for n in range(1, 6)]
    rows.append(portfolio_row(6, phone="5510000001", full_name="Deudora Ficticia 1"))

    load(rows, chunk_size=2)

    assert count(session, Debtor) == 5
    first, sixth = get_account(session, "ACC-0001"), get_account(session, "ACC-0006")
    assert first is not None and sixth is not None
    assert first.debtor_id == sixth.debtor_id


def test_importing_the_same_file_twice_changes_nothing(load, session) -> None:
    rows = [portfolio_row(n) for n in range(1, 5)]
    rows.append(portfolio_row(5, phone="5510000001", full_name="Deudora Ficticia 1"))
    load(rows)
    before = [count(session, model) for model in (Debtor, ContactPoint, Account)]

    again = load(rows)

    assert (again.created, again.updated, again.rejected) == (0, 5, 0)
    assert (
        [count(session, model) for model in (Debtor, ContactPoint, Account)] == before == [4, 4, 5]
    )


def test_upsert_updates_amounts_and_keeps_the_account(load, session) -> None:
    load([portfolio_row(1)])
    original = get_account(session, "ACC-0001")
    assert original is not None

    report = load([portfolio_row(1, principal="9000", interest="0", fees="0", email="n@x.mx")])
    session.expire_all()

    assert (report.created, report.updated) == (0, 1)
    account = get_account(session, "ACC-0001")
    assert account is not None and account.id == original.id
    assert (account.principal_cents, account.interest_cents, account.fees_cents) == (900_000, 0, 0)
    assert account.debtor.email == "n@x.mx"  # (a new name is a phone conflict: rejected)
    assert count(session, Account) == 1


def test_missing_columns_are_all_named_at_once(tmp_path) -> None:
    header = [c for c in HEADER if c not in ("phone", "birth_date", "fees")]
    path = write_csv(tmp_path / "p.csv", [portfolio_row(1)], header=header)

    with pytest.raises(FileUnusable) as exc:
        open_csv(path, REQUIRED_COLUMNS, OPTIONAL_COLUMNS)

    assert "missing required columns phone, birth_date, fees" in str(exc.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"\n\n", "no header row"),
        ("account_id,full_name\nA-1,Jos\xe9\n".encode("latin-1"), "not UTF-8 text (line 2"),
    ],
)
def test_unusable_files_are_refused_before_loading(tmp_path, content, expected) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(content)

    with pytest.raises(FileUnusable) as exc:
        open_csv(path, REQUIRED_COLUMNS)

    assert expected in str(exc.value)


def test_a_missing_file_is_refused(tmp_path) -> None:
    with pytest.raises(FileUnusable, match="does not exist"):
        open_csv(tmp_path / "nowhere.csv", REQUIRED_COLUMNS)


def test_header_names_ignore_case_and_spaces(load, session) -> None:
    header = [" Account ID ", "FULL_NAME", "Phone", "Birth Date", "Creditor", "Product"]
    header += ["Principal", "Interest", "Fees", "Due Date", "Time Zone"]
    row = portfolio_row(1, timezone="America/Cancun")
    values = list(row.values())[:10] + ["America/Cancun"]

    report = load([dict(zip(header, values, strict=True))], header=header)

    assert report.created == 1
    assert count(session, Account) == 1


def test_semicolon_separated_file_with_bom_is_read(load, session) -> None:
    rows = [portfolio_row(1, principal="$1,234.50", full_name="López; Ana"), portfolio_row(2)]

    report = load(rows, delimiter=";", bom=True)

    assert (report.created, report.rejected) == (2, 0)
    account = get_account(session, "ACC-0001")
    assert account is not None
    assert account.principal_cents == 123_450
    assert account.debtor.full_name == "López; Ana"


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("birth_date", "15/03/1985", "'15/03/1985' is not a date in YYYY-MM-DD form"),
        ("birth_date", "1985-02-30", "'1985-02-30' is not a date in YYYY-MM-DD form"),
        ("birth_date", "2027-01-01", "'2027-01-01' is in the future"),
        ("birth_date", "2010-05-01", "'2010-05-01' makes the debtor 16; debtors must be 18"),
        ("birth_date", "1890-01-01", "not a plausible birth date"),
        ("due_date", "24-10-2026", "'24-10-2026' is not a date in YYYY-MM-DD form"),
        ("due_date", "", "is empty"),
        ("principal", "-100", "'-100' is negative; amounts must be 0 or more"),
        ("interest", "mucho", "'mucho' is not an amount in pesos"),
        ("fees", "1234,50", "use a point for decimals"),
        ("fees", "12.345", "'12.345' has more than two decimals"),
        ("minimum_payment", "-1", "is negative"),
        ("phone", "+1 212 555", "'+1 212 555' is not a Mexican phone number"),
        ("phone", "+1 212 555 0123", "'+1 212 555 0123' is not a Mexican phone number"),
        ("phone", "55 1234", "'55 1234' is not a valid Mexican phone number"),
        ("phone", "sin teléfono", "is not a valid Mexican phone number"),
        ("account_id", "", "is empty"),
        ("full_name", " ", "is empty"),
        ("currency", "pesos", "'pesos' is not a currency code"),
        ("email", "ana.example.com", "'ana.example.com' is not an email address"),
        ("timezone", "Mexico/Tijuana_Norte", "is not an IANA time zone"),
    ],
)
def test_each_bad_value_is_rejected_naming_line_and_column(
    load, session, column, value, reason
) -> None:
    rows = [portfolio_row(1), portfolio_row(2, **{column: value}), portfolio_row(3)]

    report = load(rows)

    assert (report.loaded, report.rejected_lines) == (2, [3])
    assert len(report.errors) == 1
    assert str(report.errors[0]).startswith(f"line 3, column {column}: ")
    assert reason in report.errors[0].reason
    assert get_account(session, "ACC-0002") is None
    assert count(session, Account) == 2


def test_a_row_with_several_problems_is_one_rejected_line_naming_each(load) -> None:
    report = load([portfolio_row(1, phone="123", principal="-5")])

    assert report.rejected == 1
    assert report.error_lines() == [
        "line 2, column phone: '123' is not a valid Mexican phone number (ten digits, e.g. "
        "55 1234 5678); column principal: '-5' is negative; amounts must be 0 or more"
    ]


def test_duplicate_account_id_rejects_the_later_row_naming_the_first(load, session) -> None:
    rows = [portfolio_row(n) for n in range(1, 4)]
    rows.append(portfolio_row(2, principal="1.00"))

    report = load(rows)

    assert reasons(report) == [
        "line 5, column account_id: duplicate account_id, first seen on line 3"
    ]
    account = get_account(session, "ACC-0002")
    assert account is not None and account.principal_cents == 1_000_000


def test_line_numbers_are_physical_lines_of_the_file(tmp_path, db_url, clock) -> None:
    good, bad = portfolio_row(1), portfolio_row(2, phone="+44 20 7946 0958")
    path = tmp_path / "p.csv"
    path.write_text(
        ",".join(HEADER)
        + "\n\n"  # line 2 is blank
        + ",".join(good.values()).replace("Deudora Ficticia 1", '"Deudora\nFicticia"')
        + "\n"  # lines 3-4: a quoted value spanning two lines
        + ",".join(bad.values())
        + "\n",  # line 5
        encoding="utf-8",
    )

    table = open_csv(path, REQUIRED_COLUMNS, OPTIONAL_COLUMNS)
    report = import_portfolio(session_factory(db_url), clock, table)

    assert report.created == 1
    assert reasons(report) == [
        "line 5, column phone: '+44 20 7946 0958' is not a Mexican phone number"
    ]


def test_surplus_values_reject_the_row(tmp_path, db_url, clock) -> None:
    path = tmp_path / "p.csv"
    values = list(portfolio_row(1).values())
    values[6] = "10"  # "10,000.00" written without quotes splits the principal in two
    values.insert(7, "000.00")
    path.write_text(",".join(HEADER) + "\n" + ",".join(values) + "\n", encoding="utf-8")

    table = open_csv(path, REQUIRED_COLUMNS, OPTIONAL_COLUMNS)
    report = import_portfolio(session_factory(db_url), clock, table)

    assert report.rejected_lines == [2]
    assert report.error_lines()[0].startswith(
        "line 2: has 15 values but the header has 14 columns (a value containing the separator "
        "must be in double quotes); column due_date: '250' is not a date"
    )


def test_a_trailing_separator_is_harmless(tmp_path, db_url, clock) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        ",".join(HEADER) + "\n" + ",".join(portfolio_row(1).values()) + ",,\n", encoding="utf-8"
    )

    table = open_csv(path, REQUIRED_COLUMNS, OPTIONAL_COLUMNS)
    report = import_portfolio(session_factory(db_url), clock, table)

    assert (report.created, report.rejected) == (1, 0)


def test_bulk_import_leaves_the_same_ledger_as_upsert_account(tmp_path, clock) -> None:
    """The batched writer and the domain's one-row upsert agree on every decision."""
    rows = [
        portfolio_row(1, phone="+5215510000001"),
        # The same person again (another name on that phone is rejected: test_hostile_small).
        portfolio_row(2, phone="5510000001", full_name="Deudora Ficticia 1", email="o@example.com"),
        portfolio_row(3),
        portfolio_row(4, timezone="America/Cancun", minimum_payment="10", currency="USD"),
    ]
    later = [portfolio_row(3, principal="1")]
    later.append(portfolio_row(5, phone="5510000003", full_name="Deudora Ficticia 3"))
    later.append(portfolio_row(6, phone="5510000004", full_name="Deudora Ficticia 4"))
    bulk_url = f"sqlite:///{tmp_path / 'bulk.db'}"
    single_url = f"sqlite:///{tmp_path / 'single.db'}"
    for url in (bulk_url, single_url):
        upgrade(url)
    for batch, name in ((rows, "a.csv"), (later, "b.csv")):
        table = open_csv(write_csv(tmp_path / name, batch), REQUIRED_COLUMNS, OPTIONAL_COLUMNS)
        import_portfolio(session_factory(bulk_url), clock, table, chunk_size=2)
        with session_factory(single_url)() as session:
            for row in batch:
                upsert_account(session, clock, _account_data(row))
            session.commit()

    assert _ledger(bulk_url) == _ledger(single_url)


def test_benchmark_smoke_run_loads_every_row(tmp_path) -> None:
    from bench.bench_import import main

    output = tmp_path / "import.json"
    assert main(["--rows", "300", "--output", str(output)]) == 0

    result = json.loads(output.read_text())
    assert result["rows"] == result["created"] == 300
    assert result["rows_per_second"] > 0


def _account_data(row: dict[str, str]) -> AccountData:
    def cents(text: str) -> int:
        return round(float(text.replace("$", "").replace(",", "")) * 100)

    return AccountData(
        external_id=row["account_id"],
        full_name=row["full_name"],
        phone=row["phone"],
        birth_date=date.fromisoformat(row["birth_date"]),
        creditor=row["creditor"],
        product=row["product"],
        principal_cents=cents(row["principal"]),
        interest_cents=cents(row["interest"]),
        fees_cents=cents(row["fees"]),
        due_date=date.fromisoformat(row["due_date"]),
        minimum_payment_cents=cents(row["minimum_payment"]) if row["minimum_payment"] else None,
        currency=row["currency"] or "MXN",
        email=row["email"] or None,
        timezone=row["timezone"] or None,
    )


def _ledger(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with session_factory(url)() as session:
        debtors = session.scalars(select(Debtor).order_by(Debtor.id)).all()
        contacts = session.scalars(select(ContactPoint).order_by(ContactPoint.id)).all()
        accounts = session.scalars(select(Account).order_by(Account.id)).all()
        return {
            "debtors": [
                (d.id, d.full_name, d.birth_date, d.email, d.timezone, d.deceased, d.bankrupt)
                for d in debtors
            ],
            "contacts": [(c.id, c.debtor_id, c.channel, c.address, c.preferred) for c in contacts],
            "accounts": [
                (
                    a.id,
                    a.external_id,
                    a.debtor_id,
                    a.principal_cents,
                    a.interest_cents,
                    a.fees_cents,
                    a.minimum_payment_cents,
                    a.currency,
                    a.due_date,
                    a.amounts_as_of,
                    a.status,
                    a.dispute_open,
                    a.created_at,
                    a.updated_at,
                )
                for a in accounts
            ],
        }
