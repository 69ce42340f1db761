"""``acuerdo payments report --date D``: the day's processor events and what they did."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``payments`` commands to the ``acuerdo`` app."""
    payments_app = typer.Typer(help="Payment processor events.", no_args_is_help=True)
    payments_app.command("report")(report_command)
    app.add_typer(payments_app, name="payments")


def report_command(
    day: str = typer.Option(..., "--date", help="The day, YYYY-MM-DD, in ACUERDO_TIMEZONE."),
    out: Path | None = typer.Option(None, "--out", help="Write the CSV here (default: stdout)."),
) -> None:
    """Every processor event received that day and what it did to the ledger, as CSV.

    Outcomes: applied (a new payment), duplicate (a redelivery), status (an expiry,
    cancellation or refund on its code), unmatched (no payment code has its reference:
    needs_attention=yes). Exit code 1 when any event was unmatched.
    """
    from bot.cli import settings_or_exit
    from bot.db.engine import session_scope
    from bot.payments.event_log import EventOutcome, events_received_on, report_csv

    try:
        wanted = date.fromisoformat(day)
    except ValueError:
        typer.secho(f"--date must be YYYY-MM-DD, not '{day}'", err=True, fg="red")
        raise typer.Exit(2) from None
    settings = settings_or_exit()
    clock = settings.clock()
    with session_scope(settings.database_url) as session:
        events = events_received_on(session, clock, wanted)
        text = report_csv(session, clock, events)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
    unmatched = sum(e.outcome == EventOutcome.UNMATCHED.value for e in events)
    typer.echo(f"{len(events)} events on {wanted.isoformat()}, {unmatched} unmatched", err=True)
    if unmatched:
        raise typer.Exit(1)
