"""Issue 7's "done when", end to end with the real command, gateway and dashboard.

With the clock pinned to Monday 21:30 Mexico City, ``acuerdo campaign run --dry-run``
sends nothing and lists every due reminder as delayed to 07:00; pinned to 10:00 the same
messages go out once (to the Graph stand-in), opted-out and disputed accounts are listed as
suppressed with their reason, and the dashboard counts them.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.console_users import create_console_user
from bot.db.models import CampaignSend, ContactPoint
from bot.domain.conversations import open_dispute, opt_out
from bot.domain.phones import whatsapp_id
from tests.campaign_support import add_account, at, company_messages, sign_in
from tests.conftest import REPO_ROOT
from tests.conftest_gateway import rows, wait_outbound_settled
from tests.graph_stub import GraphStub

ACUERDO = REPO_ROOT / ".venv" / "bin" / "acuerdo"
MONDAY = date(2026, 11, 23)
NIGHT = "2026-11-23T21:30:00-06:00"
MORNING = "2026-11-23T10:00:00-06:00"
OFFSETS = (-3, 0, 3, 7, 15, 30)


def acuerdo(db_url: str, now: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACUERDO_", "WHATSAPP_"))}
    env.update(
        ACUERDO_DATABASE_URL=db_url,
        ACUERDO_SANDBOX="1",  # the sandbox's built-in secrets
        ACUERDO_NOW=now,
        ACUERDO_POLICY_FILE=str(REPO_ROOT / "policy.yml"),
        ACUERDO_VAR_DIR=str(tmp_path / "var"),
        ACUERDO_SECRET_KEY="test-secret-key",
        ACUERDO_PUBLIC_URL="http://testserver",
        NO_COLOR="1",
        COLUMNS="200",
    )
    return subprocess.run(
        [str(ACUERDO), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def line_of(output: str, account: str) -> str:
    (line,) = [line for line in output.splitlines() if account in line]
    return line


@pytest.fixture
def portfolio(session: Session) -> dict[str, list[str]]:
    """Six accounts with a reminder due on Monday, one opted out, one disputed."""
    clock = at("2026-11-20T10:00:00-06:00")
    due = [
        add_account(session, clock, due_date=MONDAY - timedelta(days=offset)) for offset in OFFSETS
    ]
    quiet = add_account(session, clock, due_date=MONDAY - timedelta(days=7))
    disputed = add_account(session, clock, due_date=MONDAY)
    contact = session.scalars(
        select(ContactPoint).where(ContactPoint.debtor_id == quiet.debtor_id)
    ).one()
    opt_out(session, clock, contact.channel, contact.address)
    open_dispute(session, clock, disputed, reason="no reconozco el cargo")
    create_console_user(session, clock, "supervisora", "clave-segura-2026", "supervisor")
    session.commit()
    phones = [
        session.scalars(
            select(ContactPoint.address).where(ContactPoint.debtor_id == a.debtor_id)
        ).one()
        for a in due
    ]
    return {
        "due": [a.external_id for a in due],
        "phones": phones,
        "opted_out": [quiet.external_id],
        "disputed": [disputed.external_id],
    }


def test_monday_night_dry_run_then_ten_oclock_sends_once_and_the_dashboard_counts(
    db_url: str,
    session: Session,
    portfolio: dict[str, list[str]],
    graph_server: GraphStub,
    start_gateway,
    tmp_path: Path,
) -> None:
    # 21:30: nothing goes; every due reminder waits for 07:00, the others are suppressed.
    night = acuerdo(db_url, NIGHT, tmp_path, "campaign", "run", "--dry-run")
    assert night.returncode == 0, night.stderr
    assert "DRY RUN" in night.stdout
    for account in portfolio["due"]:
        line = line_of(night.stdout, account)
        assert "delayed" in line and "outside contact hours" in line
        assert "Tue 2026-11-24 07:00 CST" in line
    assert "opted out (opted_out)" in line_of(night.stdout, portfolio["opted_out"][0])
    assert "dispute open (dispute_open)" in line_of(night.stdout, portfolio["disputed"][0])
    assert "would send 0 · delayed 6 · suppressed 2" in night.stdout
    assert company_messages(session) == []
    assert session.scalars(select(CampaignSend)).all() == []

    # 10:00: the same six go out, once.
    morning = acuerdo(db_url, MORNING, tmp_path, "campaign", "run")
    assert morning.returncode == 0, morning.stderr
    assert "sent 6 · delayed 0 · suppressed 2" in morning.stdout
    for account in portfolio["due"]:
        assert " sent " in line_of(morning.stdout, account)
    assert "opted out (opted_out)" in line_of(morning.stdout, portfolio["opted_out"][0])
    assert "dispute open (dispute_open)" in line_of(morning.stdout, portfolio["disputed"][0])

    gateway = start_gateway()
    graph_server.wait_for_sends(6)
    wait_outbound_settled(db_url)
    assert sorted(r.body["to"] for r in graph_server.sends) == sorted(
        whatsapp_id(phone) for phone in portfolio["phones"]
    )
    assert all(r.body["type"] == "template" for r in graph_server.sends)

    # Running again the same day sends nothing twice.
    again = acuerdo(db_url, "2026-11-23T15:00:00-06:00", tmp_path, "campaign", "run")
    assert "sent 0 · delayed 0 · suppressed 2 · skipped 0 · already sent 6" in again.stdout
    assert len([r for r in rows(db_url, "out")]) == 6
    assert len(graph_server.sends) == 6

    # The dashboard counts them.
    sign_in(gateway, "supervisora", "clave-segura-2026")
    page = gateway.get("/dashboard?days=7")
    assert page.status_code == 200
    exported = gateway.get("/dashboard/export.csv?days=7")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    monday = [row for row in table if row["day"] == "2026-11-23"]
    assert sum(int(row["sent"]) for row in monday) == 6
    assert sum(int(row["suppressed"]) for row in monday) == 2
    assert sum(int(row["suppressed_opted_out"]) for row in monday) == 1
    assert sum(int(row["suppressed_dispute_open"]) for row in monday) == 1
    assert "Disputa abierta" in page.text and "Pidió la baja" in page.text
