"""Helpers of the compliance, campaign and dashboard tests (plain functions, no fixtures)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.campaigns.compose import PaymentLinks
from bot.campaigns.runner import CampaignContext, CampaignReport, Outcome
from bot.channels.whatsapp import WhatsAppAdapter
from bot.clock import Clock
from bot.db.models import Account, AuditEntry, CampaignSend, Direction, Message
from bot.domain.debtors import AccountData, upsert_account
from bot.payments.local import LocalPaymentProvider
from bot.policy import Policy

ZONE = "America/Mexico_City"
LINK_SECRET = "test-secret-key"
PUBLIC_URL = "http://testserver"


def at(moment: str) -> Clock:
    """A clock pinned to ``moment`` (ISO date-time with offset, or a date read as noon)."""
    return Clock.from_setting(moment, ZONE)


def renderer() -> WhatsAppAdapter:
    """A WhatsApp adapter used only to render (it never sends in these tests)."""
    return WhatsAppAdapter(
        app_secret="secret",
        access_token="token",
        phone_number_id="100000000000001",
        api_base_url="http://127.0.0.1:9",
    )


def campaign_ctx(clock: Clock, policy: Policy) -> CampaignContext:
    provider = LocalPaymentProvider(webhook_secret="webhook-secret", link_secret=LINK_SECRET)
    return CampaignContext(
        clock=clock,
        policy=policy,
        adapters={"whatsapp": renderer()},
        links=PaymentLinks(provider, PUBLIC_URL),
    )


_counter = {"n": 0}


def add_account(session: Session, clock: Clock, **overrides: Any) -> Account:
    """An account with its debtor and WhatsApp number (committed)."""
    _counter["n"] += 1
    n = _counter["n"]
    values: dict[str, Any] = {
        "external_id": f"CMP-{n:05d}",
        "full_name": f"Ana Prueba {n}",
        "phone": f"+5255{n:08d}",
        "birth_date": date(1985, 3, 15),
        "creditor": "Banco Ejemplo",
        "product": "Tarjeta de crédito",
        "principal_cents": 1_000_000,
        "interest_cents": 150_000,
        "fees_cents": 50_000,
        "due_date": date(2026, 10, 24),
    }
    values.update(overrides)
    account, _ = upsert_account(session, clock, AccountData(**values))
    session.commit()
    return account


def outcomes(report: CampaignReport) -> dict[str, tuple[Outcome, str | None]]:
    """account id → (outcome, reason) of its first line."""
    found: dict[str, tuple[Outcome, str | None]] = {}
    for line in report.lines:
        found.setdefault(line.account, (line.outcome, line.reason))
    return found


def company_messages(session: Session) -> list[Message]:
    """Outbound rows queued as company-started messages."""
    rows = session.scalars(
        select(Message).where(Message.direction == Direction.OUT.value).order_by(Message.id)
    ).all()
    return [row for row in rows if (row.payload or {}).get("company_started")]


def sends(session: Session) -> list[CampaignSend]:
    return list(session.scalars(select(CampaignSend).order_by(CampaignSend.id)))


def audit(session: Session, action: str) -> list[AuditEntry]:
    return list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
    )


def sign_in(client: Any, username: str, password: str) -> None:
    """Sign in through the console's login form (the session cookie stays on ``client``)."""
    import re

    form = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, "the login form has no CSRF token"
    answer = client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
