"""Who may approve a settlement below the policy floor: a supervisor, never an agent alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.console.texts import console_texts
from bot.db.engine import session_factory
from bot.db.models import (
    Account,
    Agreement,
    AuditEntry,
    ConsoleUser,
    Conversation,
    Offer,
    PaymentCode,
)
from bot.domain import agent_ledger
from bot.domain.agent_ledger import SettlementNeedsSupervisor
from bot.domain.negotiation import settlement_terms
from bot.payments import PaymentProvider
from bot.policy import Policy
from tests.test_console_access import client_for, login

pytest_plugins = ["tests.test_domain_handoff", "tests.test_console_access"]


@pytest.fixture
def verified(session: Session, clock: Clock, held: Conversation) -> Conversation:
    """Lucía (an agent) holds the chat; the debtor proved who they are."""
    held.verified_at = clock.now_utc()
    session.commit()
    return held


def floor_of(session: Session, clock: Clock, policy: Policy, conversation: Conversation) -> int:
    account = session.get(Account, conversation.account_id)
    assert account is not None
    return settlement_terms(session, clock, policy, account).floor_cents


def approve(
    session: Session,
    clock: Clock,
    policy: Policy,
    provider: PaymentProvider,
    conversation: Conversation,
    user: ConsoleUser,
    amount_cents: int,
) -> agent_ledger.ApprovedSettlement:
    return agent_ledger.approve_settlement(
        session,
        clock,
        policy,
        provider,
        conversation,
        user,
        amount_cents=amount_cents,
        deadline=clock.today() + timedelta(days=10),
    )


def count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_an_agent_is_refused_below_the_floor_and_nothing_is_recorded(
    session: Session,
    clock: Clock,
    policy: Policy,
    provider: PaymentProvider,
    users: dict[str, ConsoleUser],
    verified: Conversation,
) -> None:
    floor = floor_of(session, clock, policy, verified)
    audited = count(session, AuditEntry)

    with pytest.raises(SettlementNeedsSupervisor) as refused:
        approve(session, clock, policy, provider, verified, users["lucia"], floor - 1)

    assert refused.value.reason == "below_floor_needs_supervisor"
    assert (refused.value.amount_cents, refused.value.floor_cents) == (floor - 1, floor)
    assert "supervisor" in str(refused.value) and "floor" in str(refused.value)
    session.flush()
    assert (count(session, Offer), count(session, Agreement), count(session, PaymentCode)) == (
        0,
        0,
        0,
    )
    assert count(session, AuditEntry) == audited


def test_a_supervisor_approves_below_the_floor_and_it_is_audited(
    session: Session,
    clock: Clock,
    policy: Policy,
    provider: PaymentProvider,
    users: dict[str, ConsoleUser],
    verified: Conversation,
) -> None:
    approved = approve(session, clock, policy, provider, verified, users["sara"], 500_000)

    assert approved.below_floor
    assert approved.agreement.approved_by == "agent:sara"
    offer_entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "offer")).one()
    assert offer_entry.actor == "agent:sara"
    assert offer_entry.details["below_floor"] is True
    assert offer_entry.details["total_cents"] == 500_000


@pytest.mark.parametrize("above", [0, 1])
def test_an_agent_approves_at_or_above_the_floor(
    session: Session,
    clock: Clock,
    policy: Policy,
    provider: PaymentProvider,
    users: dict[str, ConsoleUser],
    verified: Conversation,
    above: int,
) -> None:
    floor = floor_of(session, clock, policy, verified)

    approved = approve(session, clock, policy, provider, verified, users["lucia"], floor + above)

    assert not approved.below_floor
    assert approved.agreement.approved_by == "agent:lucia"
    assert approved.code.amount_cents == floor + above


def test_the_console_shows_the_agent_why_and_lets_the_supervisor_approve(
    gateway: TestClient,
    people: dict[str, str],
    escalated: Conversation,
    db_url: str,
    clock: Clock,
) -> None:
    chat = f"/console/chats/{escalated.id}"
    form = {"amount": "5000", "deadline": (clock.today() + timedelta(days=10)).isoformat()}
    lucia_csrf = login(gateway, "lucia")
    assert gateway.post(f"{chat}/claim", data={"csrf_token": lucia_csrf}).status_code == 200

    refused = gateway.post(
        f"{chat}/settlement", data={"csrf_token": lucia_csrf, **form}, follow_redirects=False
    )
    assert refused.status_code == 303
    assert refused.headers["location"] == f"{chat}?error=below_floor_needs_supervisor"
    page = gateway.get(refused.headers["location"])
    assert console_texts().error("below_floor_needs_supervisor") in page.text
    assert "supervis" in console_texts().error("below_floor_needs_supervisor")
    with session_factory(db_url)() as s:
        assert count(s, Agreement) == 0 and count(s, Offer) == 0

    sara = client_for(gateway)
    sara_csrf = login(sara, "sara")
    approved = sara.post(
        f"{chat}/settlement", data={"csrf_token": sara_csrf, **form}, follow_redirects=False
    )
    assert approved.headers["location"] == f"{chat}?aviso=settlement_sent"
    with session_factory(db_url)() as s:
        (agreement,) = s.scalars(select(Agreement)).all()
        assert (agreement.total_cents, agreement.approved_by) == (500_000, "agent:sara")
