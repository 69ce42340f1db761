"""The daily payments report: every processor event received, what it did, and the
events that matched nothing flagged (``acuerdo payments report --date D``)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
from collections.abc import Callable
from datetime import datetime, timezone

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.config import SANDBOX_PAYMENTS_SECRET, Settings
from bot.db.models import Account
from bot.payments import get_provider
from bot.payments.local import local_webhook_body, sign_local_webhook
from bot.policy import Policy
from tests.conftest import PINNED_NOW, REPO_ROOT

pytest_plugins = ["tests.conftest_gateway"]


def _post(gateway: TestClient, event_id: str, reference: str, amount_cents: int) -> int:
    raw = local_webhook_body(
        event_id=event_id,
        reference=reference,
        amount_cents=amount_cents,
        paid_at=datetime(2026, 11, 23, 17, 0, tzinfo=timezone.utc),
    )
    headers = {
        "Content-Type": "application/json",
        "X-Acuerdo-Signature": sign_local_webhook(SANDBOX_PAYMENTS_SECRET, raw),
    }
    return gateway.post("/webhooks/payments/local", content=raw, headers=headers).status_code


def _report(db_url: str, day: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ACUERDO_DATABASE_URL": db_url,
        "ACUERDO_NOW": PINNED_NOW,
        "ACUERDO_SANDBOX": "1",
    }
    return subprocess.run(
        [str(REPO_ROOT / ".venv/bin/acuerdo"), "payments", "report", "--date", day],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_the_days_report_lists_each_event_once_with_what_it_did_and_flags_the_unmatched(
    gateway: TestClient,
    gateway_settings: Settings,
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
    db_url: str,
) -> None:
    account = make_account(external_id="TC-0001-5678")
    code = get_provider(gateway_settings).issue_code(
        session, clock, policy, account, amount_cents=125_000, method="oxxo"
    )
    session.commit()

    assert _post(gateway, "evt-paid", code.reference, 125_000) == 200
    assert _post(gateway, "evt-paid", code.reference, 125_000) == 200  # redelivered
    assert _post(gateway, "evt-stray", "93999999999999", 40_000) == 422  # matches nothing
    assert _post(gateway, "evt-stray", "93999999999999", 40_000) == 422  # retried by them

    done = _report(db_url, "2026-11-23")

    assert done.returncode == 1, done.stderr  # something needs attention
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [(r["event_id"], r["outcome"], r["needs_attention"]) for r in rows] == [
        ("evt-paid", "applied", ""),
        ("evt-stray", "unmatched", "yes"),
    ]
    assert rows[0]["account_id"] == "TC-0001-5678" and rows[0]["amount"] == "1250.00"
    assert rows[0]["payment_id"] and rows[1]["account_id"] == ""
    assert rows[0]["received_at"].startswith("2026-11-23T12:00:00-06:00")
    assert "2 events on 2026-11-23, 1 unmatched" in done.stderr

    other_day = _report(db_url, "2026-11-24")
    assert other_day.returncode == 0 and other_day.stdout.count("\n") == 1  # the header only
    assert _report(db_url, "23/11/2026").returncode == 2
