"""``acuerdo campaign run [--dry-run]``.

Exit codes: 0 when the run finished (whatever it sent, delayed or suppressed), 2 when it
cannot run (settings, policy or profile problems, database not set up).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from bot.campaigns.runner import CampaignReport
    from bot.config import Settings
    from bot.gateway.runtime import GatewayRuntime

# The database, rich and the campaign modules are imported inside the functions: every
# ``acuerdo`` invocation registers these commands, most never run them.


def register(app: typer.Typer) -> None:
    """Add ``campaign run`` to the ``acuerdo`` app."""
    campaign_app = typer.Typer(
        help="Reminder campaigns: due-date reminders and promise follow-ups.",
        no_args_is_help=True,
    )
    campaign_app.command("run")(run_command)
    app.add_typer(campaign_app, name="campaign")


def run_once(settings: Settings, *, dry_run: bool) -> CampaignReport:
    """One run against the database of ``settings``, with the gateway's adapters."""
    from bot.campaigns.runner import run_campaign
    from bot.campaigns.scheduler import campaign_context
    from bot.gateway.runtime import GatewayRuntime

    runtime = GatewayRuntime(settings)
    try:
        with runtime.sessions() as session:
            return run_campaign(session, campaign_context(runtime), dry_run=dry_run)
    finally:
        asyncio.run(_close(runtime))


async def _close(runtime: GatewayRuntime) -> None:
    for adapter in runtime.adapters.values():
        await adapter.aclose()
    await runtime.rasa.aclose()


def _database_ready(url: str) -> bool:
    from sqlalchemy import inspect

    from bot.db.engine import engine_for

    return "campaign_sends" in inspect(engine_for(url)).get_table_names()


def run_command(
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Show what would be sent, delayed or suppressed, and why; send and record nothing.",
    ),
) -> None:
    """Send the reminders due now, through the compliance gate.

    Due: the step of the reminder schedule in force for each account's due
    date, the reminder of a promise due tomorrow, and the follow-up of a
    promise broken yesterday. Each goes out at most once.

    Outside contact hours, on holidays or above the weekly cap a reminder is
    delayed (listed with when it may go); to opted-out, wrong or do-not-contact
    numbers, disputed or paid accounts and deceased or bankrupt debtors it is
    suppressed (listed with the reason). Both are written to the audit log.

    Exit code 2 when the campaign cannot run (settings, policy, database).
    """
    from rich.console import Console

    from bot.campaigns.report import print_report
    from bot.campaigns.runner import CampaignError
    from bot.compliance import ComplianceConfigError
    from bot.config import SettingsError, load_serving_settings
    from bot.gateway.logging import configure_logging

    configure_logging("WARNING")
    try:
        settings = load_serving_settings()
    except SettingsError as exc:
        typer.secho(str(exc), err=True, fg="red")
        raise typer.Exit(2) from None
    if not _database_ready(settings.database_url):
        typer.secho(
            "The database is not set up for campaigns: run `acuerdo migrate` first.",
            err=True,
            fg="red",
        )
        raise typer.Exit(2)
    try:
        report = run_once(settings, dry_run=dry_run)
    except (CampaignError, ComplianceConfigError) as exc:
        typer.secho(f"Cannot run the campaign: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None
    print_report(report, Console(width=160))
