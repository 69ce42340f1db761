"""The readable table ``acuerdo campaign run`` prints."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bot.campaigns.runner import CampaignLine, CampaignReport, Outcome

OUTCOME_LABELS = {
    Outcome.SENT: "sent",
    Outcome.WOULD_SEND: "would send",
    Outcome.DELAYED: "delayed",
    Outcome.SUPPRESSED: "suppressed",
    Outcome.SKIPPED: "skipped",
    Outcome.ALREADY_SENT: "already sent",
}
OUTCOME_STYLES = {
    Outcome.SENT: "green",
    Outcome.WOULD_SEND: "green",
    Outcome.DELAYED: "yellow",
    Outcome.SUPPRESSED: "red",
    Outcome.SKIPPED: "cyan",
    Outcome.ALREADY_SENT: "dim",
}
# What each reason means, for the person reading the table.
REASONS = {
    "outside_hours": "outside contact hours",
    "holiday": "holiday",
    "not_a_contact_day": "no contact on this weekday",
    "weekly_cap": "weekly message cap reached",
    "opted_out": "opted out",
    "wrong_number": "wrong number",
    "do_not_contact": "do not contact",
    "unreachable": "number cannot receive on this channel",
    "deceased": "debtor deceased",
    "bankrupt": "debtor bankrupt",
    "dispute_open": "dispute open",
    "account_paid": "account paid",
    "account_settled": "account settled",
    "nothing_owed": "nothing owed",
    "no_contact_point": "no contact number",
    "not_the_debtors_contact": "number belongs to someone else",
    "no_adapter": "channel not configured",
    "pending_promise": "promise to pay pending",
    "active_agreement": "payment agreement active",
    "with_agent": "an agent holds the chat",
    "already_contacted_today": "another message went today",
    "sent_by_another_run": "another run sent it",
}


def describe_reason(line: CampaignLine) -> str:
    if line.reason is None:
        return ""
    text = REASONS.get(line.reason, line.reason.replace("_", " "))
    return f"{text} ({line.reason})"


def until_text(line: CampaignLine) -> str:
    if line.until is None:
        return ""
    return f"{line.until:%a %Y-%m-%d %H:%M} {line.until.tzname()}"


def summary(report: CampaignReport) -> str:
    first = Outcome.WOULD_SEND if report.dry_run else Outcome.SENT
    parts = [f"{OUTCOME_LABELS[first]} {report.count(first)}"]
    for outcome in (Outcome.DELAYED, Outcome.SUPPRESSED, Outcome.SKIPPED, Outcome.ALREADY_SENT):
        parts.append(f"{OUTCOME_LABELS[outcome]} {report.count(outcome)}")
    promises = f"promises judged: {report.promises_kept} kept, {report.promises_broken} broken"
    return " · ".join(parts) + f"  ({promises})"


def print_report(report: CampaignReport, console: Console) -> None:
    """The run's header, one row per due item, and the totals."""
    mode = "DRY RUN — nothing was sent or recorded" if report.dry_run else "messages queued"
    console.print(
        f"Campaign run at {report.ran_at:%a %Y-%m-%d %H:%M} {report.ran_at.tzname()} ({mode})"
    )
    if not report.lines:
        console.print("Nothing is due.")
    else:
        table = Table(show_lines=False, header_style="bold")
        for column in ("account", "phone", "step", "segment", "template", "result", "why", "until"):
            table.add_column(column, overflow="fold")
        for line in report.lines:
            table.add_row(
                line.account,
                line.phone,
                line.step,
                line.segment,
                line.template,
                f"[{OUTCOME_STYLES[line.outcome]}]{OUTCOME_LABELS[line.outcome]}[/]",
                describe_reason(line),
                until_text(line),
            )
        console.print(table)
    console.print(summary(report))
    if not report.dry_run and report.queued:
        console.print("The gateway's outbox sends the queued messages (acuerdo up).")
