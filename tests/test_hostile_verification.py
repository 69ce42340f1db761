"""A verification ends (issue 13, point 5): idle, at a hard limit, on "no soy esa persona", when
WhatsApp says the number changed, when an agent ends it, and it never crosses channels.

Each test is an attack that used to work: ``verified_at`` was set once and never cleared, and
``is_verified`` meant "ever, on any channel". policy.yml: a verification lasts 30 minutes after
the person's last message, and never more than 8 hours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from itertools import count
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.account import ActionTellBalance
from bot.channels.base import Delivery, InboundKind, InboundMessage
from bot.clock import Clock
from bot.config import get_settings
from bot.conversation.inbox import store_delivery
from bot.db.engine import session_factory
from bot.db.models import Account, AuditEntry, ConsoleUser, Conversation
from bot.domain import agent_ledger, handoff
from bot.domain.conversations import (
    VerificationOutcome,
    check_identity,
    flag_wrong_number,
    get_or_create_conversation,
    is_verified,
    request_handoff,
)
from bot.domain.handoff import HandoffError
from bot.payments import PaymentProvider
from bot.policy import Policy
from tests.test_console_access import login

pytest_plugins = ["tests.test_domain_handoff", "tests.test_console_access"]

PHONE = "+525512340001"
BIRTH_DATE = date(1985, 3, 15)
VERIFIED_AT = datetime(2026, 11, 23, 16, 0, tzinfo=timezone.utc)  # 10:00 in Mexico City
_wamids = count(1)


def at(moment: datetime) -> Clock:
    return Clock.from_setting(moment.isoformat(), "America/Mexico_City")


def after(**delta: float) -> Clock:
    return at(VERIFIED_AT + timedelta(**delta))


def writes(
    session: Session, clock: Clock, policy: Policy, text: str = "hola", **details: Any
) -> None:
    """A message from the debtor's phone reaches the inbox, as the webhook stores it."""
    message = InboundMessage(
        channel="whatsapp",
        external_id=f"wamid.verification.{next(_wamids)}",
        sender=PHONE,
        kind=InboundKind.SYSTEM if details else InboundKind.TEXT,
        text=text,
        details=details,
    )
    store_delivery(session, clock, Delivery(messages=[message]), policy=policy)
    session.commit()


def ended(session: Session) -> list[tuple[str, str]]:
    return [
        (e.actor, e.details["reason"])
        for e in session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "verification_ended")
            .order_by(AuditEntry.id)
        )
    ]


@pytest.fixture
def verified(
    session: Session, policy: Policy, make_account: Callable[..., Account]
) -> Conversation:
    """The debtor answered the identity question at 10:00 on WhatsApp."""
    make_account(phone=PHONE, birth_date=BIRTH_DATE)
    clock = at(VERIFIED_AT)
    conversation = get_or_create_conversation(session, clock, "whatsapp", PHONE)
    conversation.last_inbound_at = VERIFIED_AT
    result = check_identity(session, clock, policy, conversation, birth_date=BIRTH_DATE)
    assert result.outcome is VerificationOutcome.VERIFIED
    session.commit()
    return conversation


def test_a_phone_left_on_a_table_is_not_verified_half_an_hour_later(
    session: Session, policy: Policy, verified: Conversation
) -> None:
    assert is_verified(verified, after(minutes=29), policy)
    assert not is_verified(verified, after(minutes=31), policy)


def test_writing_again_after_the_idle_limit_does_not_revive_the_verification(
    session: Session, policy: Policy, verified: Conversation
) -> None:
    # Without the inbox ending it first, this message would move "last seen" forward and
    # make the old verification count again.
    writes(session, after(minutes=40), policy, "cuanto debo")
    session.refresh(verified)
    assert verified.verified_at is None
    assert not is_verified(verified, after(minutes=41), policy)
    assert ended(session) == [("bot", "expired")]


def test_a_busy_conversation_still_answers_again_after_the_hard_limit(
    session: Session, policy: Policy, verified: Conversation
) -> None:
    for minutes in range(20, 8 * 60, 20):  # a message every 20 minutes all day
        writes(session, after(minutes=minutes), policy)
    session.refresh(verified)
    assert is_verified(verified, after(hours=7, minutes=59), policy)
    assert not is_verified(verified, after(hours=8, minutes=1), policy)


def test_no_soy_esa_persona_ends_the_verification(
    session: Session, policy: Policy, verified: Conversation
) -> None:
    clock = after(minutes=5)
    flag_wrong_number(session, clock, "whatsapp", PHONE, conversation_id=verified.id)
    session.commit()
    assert not is_verified(verified, clock, policy)
    assert ended(session) == [("bot", "wrong_person")]


def test_whatsapps_number_change_notice_ends_the_verification(
    session: Session, policy: Policy, verified: Conversation
) -> None:
    clock = after(minutes=5)
    writes(session, clock, policy, "", system_type="user_changed_number")
    session.refresh(verified)
    assert not is_verified(verified, clock, policy)
    assert ended(session) == [("bot", "number_changed")]


def test_a_recycled_number_months_later_starts_from_nothing(
    session: Session, policy: Policy, verified: Conversation
) -> None:
    months_later = after(days=120)
    writes(session, months_later, policy, "hola, ¿quién es?")
    session.refresh(verified)
    assert not is_verified(verified, months_later, policy)


def test_the_same_phone_on_rcs_does_not_borrow_the_whatsapp_verification(
    session: Session, policy: Policy, verified: Conversation
) -> None:
    clock = after(minutes=1)
    rcs = get_or_create_conversation(session, clock, "rcs", PHONE)
    assert rcs.debtor_id == verified.debtor_id
    assert is_verified(verified, clock, policy) and not is_verified(rcs, clock, policy)


@pytest.fixture
def action_env(monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Any) -> Iterator[None]:
    monkeypatch.setenv("ACUERDO_DATABASE_URL", db_url)
    monkeypatch.setenv("ACUERDO_SANDBOX", "1")
    monkeypatch.setenv("ACUERDO_NOW", (VERIFIED_AT + timedelta(minutes=45)).isoformat())
    monkeypatch.setenv("ACUERDO_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("ACUERDO_SECRET_KEY", "test-secret")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_bot_asks_again_when_the_dialogue_still_believes_an_expired_verification(
    action_env: None, verified: Conversation
) -> None:
    """Rasa's slot says verified (its session has not expired); the ledger says the
    verification ran out 15 minutes ago: no balance, the question again."""
    latest = {
        "text": "cuanto debo",
        "intent": {"name": "ask_balance", "confidence": 0.99},
        "entities": [],
        "metadata": {"channel": "whatsapp", "phone": PHONE},
    }
    tracker = Tracker(PHONE, {"verified": True}, latest, [], False, None, {}, "action_listen")
    dispatcher = CollectingDispatcher()
    events = ActionTellBalance().run(dispatcher, tracker, {})
    assert dispatcher.messages == []
    assert {"event": "slot", "name": "verified", "value": False} in [
        {k: e.get(k) for k in ("event", "name", "value")} for e in events
    ]
    assert {"event": "followup", "name": "verification_form"} in [
        {"event": e["event"], "name": e.get("name")} for e in events
    ]


def test_an_agent_cannot_send_a_code_once_the_verification_is_over(
    session: Session,
    policy: Policy,
    provider: PaymentProvider,
    users: dict[str, ConsoleUser],
    verified: Conversation,
) -> None:
    clock = after(minutes=10)
    request_handoff(session, clock, verified, reason="debtor_request", priority=30)
    handoff.claim(session, clock, verified, users["lucia"])
    agent_ledger.issue_code_for_agent(
        session,
        clock,
        policy,
        provider,
        verified,
        users["lucia"],
        amount_cents=50_000,
        method="spei",
    )
    later = after(minutes=45)
    with pytest.raises(HandoffError) as refused:
        agent_ledger.issue_code_for_agent(
            session,
            later,
            policy,
            provider,
            verified,
            users["lucia"],
            amount_cents=60_000,
            method="spei",
        )
    assert refused.value.reason == "not_verified"


def test_an_agent_who_doubts_the_sender_ends_the_verification_from_the_console(
    gateway: TestClient,
    people: dict[str, str],
    escalated: Conversation,
    db_url: str,
) -> None:
    chat = f"/console/chats/{escalated.id}"
    csrf = login(gateway, "lucia")
    assert gateway.post(f"{chat}/claim", data={"csrf_token": csrf}).status_code == 200
    page = gateway.get(chat)
    assert "Identidad verificada hasta" in page.text
    assert "Terminar verificación" in page.text

    answer = gateway.post(
        f"{chat}/end-verification", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{chat}?aviso=verification_ended"
    page = gateway.get(answer.headers["location"])
    assert "Identidad sin verificar" in page.text
    assert "confirmar su identidad otra vez" in page.text
    with session_factory(db_url)() as s:
        assert s.get(Conversation, escalated.id).verified_at is None  # type: ignore[union-attr]
        assert ended(s) == [("agent:lucia", "agent")]
    code = gateway.post(
        f"{chat}/code",
        data={"csrf_token": csrf, "amount": "500", "method": "spei"},
        follow_redirects=False,
    )
    assert code.headers["location"] == f"{chat}?error=not_verified"
