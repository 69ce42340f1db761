"""``acuerdo import-portfolio`` and ``acuerdo import-payments``.

Exit codes: 0 when every row was loaded, 1 when some rows were rejected (the
valid ones are still loaded), 2 when the file itself cannot be used (missing,
not UTF-8, required columns absent) or the database is not set up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from bot.clock import Clock
from bot.config import Settings
from bot.importers.csv_rows import FileUnusable, open_csv
from bot.importers.report import ImportReport

if TYPE_CHECKING:
    from bot.policy import Policy

# The database, rich and the importers are imported inside the functions that use
# them: every ``acuerdo`` invocation registers these commands, most never run them.

# Above this many rows a progress bar is shown even when stderr is not a terminal.
PROGRESS_THRESHOLD = 5_000


class DatabaseNotReady(Exception):
    """The database cannot be written to yet; the message says what to run."""


def register(app: typer.Typer) -> None:
    """Add the import commands to the ``acuerdo`` app."""
    app.command("import-portfolio")(import_portfolio_command)
    app.command("import-payments")(import_payments_command)


def import_portfolio_command(
    file: Path = typer.Argument(
        ...,
        metavar="FILE.csv",
        help="Portfolio CSV (UTF-8, comma or semicolon separated, header row first).",
        show_default=False,
    ),
) -> None:
    """Load or update accounts from a portfolio CSV (upsert by account_id).

    Required columns: account_id, full_name, phone, birth_date, creditor,
    product, principal, interest, fees, due_date.
    Optional columns: minimum_payment, currency (MXN), email, timezone.

    Dates are YYYY-MM-DD; amounts are pesos (1234.50 or $1,234.50); phones are
    Mexican (+52 1 55..., +52 55... and 55... are the same line).

    Without a timezone the debtor's zone comes from the phone (+52 664 is Tijuana).
    A row whose phone belongs to a debtor with another name or birth date is
    rejected and that debtor is left as it was.

    Every rejected row is listed with its line, column and reason; the valid
    rows are still loaded. Exit code 1 when any row was rejected, 2 when the
    file cannot be used.
    """
    settings = _settings()
    report = _run_or_exit(
        lambda: run_portfolio_import(file, settings.database_url, settings.clock())
    )
    _finish(report)


def import_payments_command(
    file: Path = typer.Argument(
        ...,
        metavar="FILE.csv",
        help="Payments CSV (UTF-8, comma or semicolon separated, header row first).",
        show_default=False,
    ),
) -> None:
    """Apply the payments a creditor reports: account_id, amount, paid_at, reference.

    paid_at is a date (YYYY-MM-DD, read as noon in ACUERDO_TIMEZONE) or a
    date-time; amount is pesos, more than 0. A payment is known by its account
    and reference, so importing a file again applies nothing twice (those rows
    are reported as already applied). Payments settle pending promises and
    payment-plan installments.

    Exit code 1 when any row was rejected, 2 when the file cannot be used.
    """
    from bot.policy import load_policy

    settings = _settings()
    policy = load_policy(settings.policy_file)
    report = _run_or_exit(
        lambda: run_payments_import(file, settings.database_url, settings.clock(), policy)
    )
    _finish(report)


def run_portfolio_import(
    path: Path, database_url: str, clock: Clock, *, show_progress: bool | None = None
) -> ImportReport:
    """Check the file and the database, then import the portfolio (the command's work)."""
    from bot.db.engine import session_factory
    from bot.importers import portfolio

    table = open_csv(path, portfolio.REQUIRED_COLUMNS, portfolio.OPTIONAL_COLUMNS)
    check_database(database_url)
    with progress_bar(table.row_count, "Importing portfolio", show=show_progress) as advance:
        return portfolio.import_portfolio(
            session_factory(database_url), clock, table, on_progress=advance
        )


def run_payments_import(
    path: Path,
    database_url: str,
    clock: Clock,
    policy: Policy,
    *,
    show_progress: bool | None = None,
) -> ImportReport:
    """Check the file and the database, then apply the payments (the command's work)."""
    from bot.db.engine import session_factory
    from bot.importers import payments

    table = open_csv(path, payments.REQUIRED_COLUMNS)
    check_database(database_url)
    with progress_bar(table.row_count, "Applying payments", show=show_progress) as advance:
        return payments.import_payments(
            session_factory(database_url), clock, policy, table, on_progress=advance
        )


def check_database(database_url: str) -> None:
    """Refuse to import into a database without Acuerdo's tables."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    from bot.db.engine import engine_for

    try:
        ready = inspect(engine_for(database_url)).has_table("accounts")
    except SQLAlchemyError as exc:
        raise DatabaseNotReady(f"cannot open the database: {exc.__class__.__name__}") from exc
    if not ready:
        raise DatabaseNotReady("the database has no Acuerdo tables yet; run 'acuerdo migrate'")


@contextmanager
def progress_bar(
    total: int, label: str, *, show: bool | None = None
) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr (for terminals and large files); stdout stays clean."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if show is None:
        show = console.is_terminal or total > PROGRESS_THRESHOLD
    if not show:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(label, total=total)
        yield lambda rows: progress.advance(task, rows)


def _settings() -> Settings:
    """The settings, or exit 2 with the line naming the bad variable."""
    from bot.cli import settings_or_exit

    return settings_or_exit()


def _run_or_exit(work: Callable[[], ImportReport]) -> ImportReport:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return work()
    except (FileUnusable, DatabaseNotReady) as exc:
        typer.secho(f"Error: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        typer.secho(
            f"Error: the database refused the import ({cause}); the chunks already written "
            "are kept and importing the file again is safe",
            err=True,
            fg="red",
        )
        raise typer.Exit(2) from None


def _finish(report: ImportReport) -> None:
    typer.echo(report.summary())
    for line in report.error_lines():
        typer.echo(line)
    if report.rejected:
        raise typer.Exit(1)
