"""No knowledge answer travels before verification (issue 13, point 4).

The attack: a reminder's link opens a page titled ``Pago … TDC-00045678``; whoever holds the
phone (or a forwarded reminder) reads the last 4 digits off it and answers the identity
question with them. Now no link, page or reminder shows the account number, and a creditor
can ask for both factors (``identity.mode: birth_date_then_last4``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from actions.verification import ActionAskIdentityAnswer, ValidateVerificationForm
from bot.campaigns.runner import run_campaign
from bot.clock import Clock
from bot.config import Settings, get_settings
from bot.console_users import create_console_user
from bot.db.engine import session_factory
from bot.db.models import Account, Conversation, Message, PaymentCode
from bot.domain import agent_ledger, handoff
from bot.domain.conversations import (
    VerificationOutcome,
    check_identity,
    get_or_create_conversation,
    is_verified,
    request_handoff,
)
from bot.domain.handoff import HandoffError
from bot.payments import get_provider, read_payment_link_token
from bot.policy import Policy, load_policy
from tests.campaign_support import LINK_SECRET, add_account, at, campaign_ctx
from tests.conftest import REPO_ROOT

pytest_plugins = ["tests.conftest_gateway"]

EXTERNAL_ID = "TDC-00045678"
LAST4 = "5678"
PHONE = "+525512340001"
BIRTH_DATE = date(1985, 3, 15)


def no_account_number(text: str) -> bool:
    return EXTERNAL_ID not in text and "45678" not in text and LAST4 not in text


@pytest.fixture
def code(
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
    gateway_settings: Settings,
) -> PaymentCode:
    account = make_account(external_id=EXTERNAL_ID, phone=PHONE)
    issued = get_provider(gateway_settings).issue_code(
        session, clock, policy, account, amount_cents=125_000, method="oxxo"
    )
    session.commit()
    return issued


def test_a_forwarded_payment_link_does_not_show_the_account_number(
    gateway: TestClient, code: PaymentCode
) -> None:
    assert no_account_number(code.concept)
    page = gateway.get(f"/pay/{code.token}")
    assert page.status_code == 200
    assert "Tarjeta de crédito" in page.text and "Banco Ejemplo" in page.text
    assert no_account_number(page.text)


def test_a_code_issued_with_the_old_concept_is_shown_masked(
    gateway: TestClient, code: PaymentCode, db_url: str
) -> None:
    with session_factory(db_url)() as s:  # as codes were issued before this fix
        s.execute(
            update(PaymentCode).values(
                concept=f"Pago Tarjeta de crédito Banco Ejemplo {EXTERNAL_ID}"
            )
        )
        s.commit()
    page = gateway.get(f"/pay/{code.token}").text
    assert "Pago Tarjeta de crédito Banco Ejemplo" in page
    assert no_account_number(page)


def test_a_reminder_and_the_page_it_links_carry_no_account_number(
    session: Session, policy: Policy
) -> None:
    moment = "2026-11-23T10:00:00-06:00"
    clock = at(moment)
    account = add_account(session, clock, external_id=EXTERNAL_ID, due_date=date(2026, 11, 26))
    run_campaign(session, campaign_ctx(clock, policy))
    session.commit()
    (message,) = session.scalars(select(Message).where(Message.author == "campaign")).all()
    body = json.dumps(message.payload, ensure_ascii=False) + (message.text or "")
    assert no_account_number(body)
    link = next(p for p in body.split('"') if p.startswith("http://testserver/pay/"))
    code = session.get(PaymentCode, read_payment_link_token(link.rsplit("/", 1)[1], LINK_SECRET))
    assert code is not None and code.account_id == account.id
    assert no_account_number(code.concept)


# --- identity.mode: birth_date_then_last4 -----------------------------------------------


@pytest.fixture
def both_policy(tmp_path: Path) -> Path:
    data = yaml.safe_load((REPO_ROOT / "policy.yml").read_text(encoding="utf-8"))
    data["identity"]["mode"] = "birth_date_then_last4"
    target = tmp_path / "policy.yml"
    target.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return target


@pytest.fixture
def account(make_account: Callable[..., Account]) -> Account:
    return make_account(external_id=EXTERNAL_ID, phone=PHONE, birth_date=BIRTH_DATE)


def test_with_both_factors_the_last_4_alone_never_verifies(
    session: Session, clock: Clock, both_policy: Path, account: Account
) -> None:
    policy = load_policy(both_policy)
    conversation = get_or_create_conversation(session, clock, "whatsapp", PHONE)

    alone = check_identity(session, clock, policy, conversation, last4=LAST4)
    assert alone.outcome is VerificationOutcome.FAILED  # and it counts as a failure
    half = check_identity(session, clock, policy, conversation, birth_date=BIRTH_DATE)
    assert half.outcome is VerificationOutcome.NEEDS_LAST4
    assert not is_verified(conversation, clock, policy)
    wrong = check_identity(
        session, clock, policy, conversation, birth_date=BIRTH_DATE, last4="0000"
    )
    assert (wrong.outcome, wrong.tries_left) == (VerificationOutcome.FAILED, 1)
    assert not is_verified(conversation, clock, policy)


def test_with_both_factors_birth_date_then_last_4_verifies(
    session: Session, clock: Clock, both_policy: Path, account: Account
) -> None:
    policy = load_policy(both_policy)
    conversation = get_or_create_conversation(session, clock, "whatsapp", PHONE)
    both = check_identity(session, clock, policy, conversation, birth_date=BIRTH_DATE, last4=LAST4)
    assert both.outcome is VerificationOutcome.VERIFIED
    assert is_verified(conversation, clock, policy)


@pytest.fixture
def action_env(
    monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Path, both_policy: Path
) -> Iterator[None]:
    monkeypatch.setenv("ACUERDO_DATABASE_URL", db_url)
    monkeypatch.setenv("ACUERDO_SANDBOX", "1")
    monkeypatch.setenv("ACUERDO_NOW", "2026-11-23")
    monkeypatch.setenv("ACUERDO_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("ACUERDO_SECRET_KEY", "test-secret")
    monkeypatch.setenv("ACUERDO_POLICY_FILE", str(both_policy))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def tracker(text: str, slots: dict[str, Any] | None = None) -> Tracker:
    latest = {
        "text": text,
        "intent": {"name": "inform", "confidence": 0.99},
        "entities": [],
        "metadata": {"channel": "whatsapp"},
    }
    return Tracker(PHONE, slots or {}, latest, [], False, None, {}, "action_listen")


def test_the_bot_asks_the_birth_date_then_the_last_4(
    action_env: None, account: Account, db_url: str
) -> None:
    form = ValidateVerificationForm()
    asked = CollectingDispatcher()
    ActionAskIdentityAnswer().run(asked, tracker(""), {})
    assert [m["response"] for m in asked.messages] == ["utter_ask_identity_birth_date"]

    # The last 4 digits first are not taken as the answer to "¿tu fecha de nacimiento?".
    told = CollectingDispatcher()
    assert form.validate_identity_answer(LAST4, told, tracker(LAST4), {}) == {
        "identity_answer": None
    }
    assert told.messages[0]["response"] == "utter_identity_birth_date_not_understood"

    first = form.validate_identity_answer("15/03/1985", CollectingDispatcher(), tracker(""), {})
    assert first == {"identity_answer": "birth_date:1985-03-15"}
    with session_factory(db_url)() as s:
        assert s.scalars(select(Conversation)).one().verified_at is None
    second = form.validate_identity_last4(LAST4, CollectingDispatcher(), tracker(LAST4, first), {})
    assert second["identity_answer"] == "verified"
    with session_factory(db_url)() as s:
        assert s.scalars(select(Conversation)).one().verified_at is not None


def test_a_wrong_last_4_after_the_birth_date_starts_over(
    action_env: None, account: Account, db_url: str
) -> None:
    form = ValidateVerificationForm()
    told = CollectingDispatcher()
    answer = form.validate_identity_last4(
        "0000", told, tracker("0000", {"identity_answer": "birth_date:1985-03-15"}), {}
    )
    assert answer == {"identity_answer": None, "identity_last4": None}
    assert told.messages[0]["response"] == "utter_identity_failed_start_over"
    assert told.messages[0]["tries_left"] == 2
    with session_factory(db_url)() as s:
        assert s.scalars(select(Conversation)).one().verified_at is None


def test_a_forged_first_step_still_needs_the_real_birth_date(
    action_env: None, account: Account, db_url: str
) -> None:
    """The slot is only a reminder of the first answer: the ledger checks both again."""
    answer = ValidateVerificationForm().validate_identity_last4(
        LAST4,
        CollectingDispatcher(),
        tracker(LAST4, {"identity_answer": "birth_date:1990-01-01"}),
        {},
    )
    assert answer["identity_answer"] is None
    with session_factory(db_url)() as s:
        assert s.scalars(select(Conversation)).one().verified_at is None


def test_an_agent_must_type_both_answers_when_the_policy_asks_for_both(
    session: Session, clock: Clock, both_policy: Path, account: Account
) -> None:
    policy = load_policy(both_policy)
    agent = create_console_user(session, clock, "lucia", "clave-segura-1", "agent")
    conversation = get_or_create_conversation(session, clock, "whatsapp", PHONE)
    request_handoff(session, clock, conversation, reason="debtor_request", priority=30)
    handoff.claim(session, clock, conversation, agent)
    with pytest.raises(HandoffError) as refused:
        agent_ledger.check_identity_for_agent(
            session, clock, policy, conversation, agent, birth_date=BIRTH_DATE
        )
    assert refused.value.reason == "both_answers"
    assert not is_verified(conversation, clock, policy)
    outcome = agent_ledger.check_identity_for_agent(
        session, clock, policy, conversation, agent, birth_date=BIRTH_DATE, last4=LAST4
    )
    assert outcome is VerificationOutcome.VERIFIED
