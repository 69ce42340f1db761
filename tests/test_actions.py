"""Custom actions called directly (no Rasa), against a real SQLite ledger."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.account import ActionTellBalance
from actions.care import ActionOptOut
from actions.negotiation import ActionCounterOffer
from actions.promises import ActionRecordPromise
from actions.verification import ActionAfterVerification, ValidateVerificationForm
from bot.config import get_settings
from bot.db.engine import session_factory
from bot.db.models import Account, AuditEntry, ContactPoint, Conversation, Promise
from bot.domain.payments import apply_payment
from bot.domain.settlement_letters import grouped_code
from bot.policy import load_policy

PHONE = "+525512340001"


@pytest.fixture(autouse=True)
def ledger_env(monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Any) -> Iterator[None]:
    """The action server reads its settings from the environment, like in production."""
    monkeypatch.setenv("ACUERDO_DATABASE_URL", db_url)
    monkeypatch.setenv("ACUERDO_SANDBOX", "1")  # the sandbox's built-in secrets
    monkeypatch.setenv("ACUERDO_NOW", "2026-11-23")
    monkeypatch.setenv("ACUERDO_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("ACUERDO_SECRET_KEY", "test-secret")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def account(make_account: Callable[..., Account]) -> Account:
    # $12,000.00 owed, due 2026-09-24: 60 days past due on the pinned Monday.
    return make_account(phone=PHONE, due_date=date(2026, 9, 24), external_id="ACC-00005678")


def tracker(
    text: str = "",
    intent: str = "inform",
    slots: dict[str, Any] | None = None,
    entities: list[dict[str, Any]] | None = None,
) -> Tracker:
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.99},
        "entities": entities or [],
        "metadata": {"channel": "whatsapp", "phone": PHONE},
    }
    return Tracker(PHONE, slots or {}, latest, [], False, None, {}, "action_listen")


def run(action: Any, t: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, t, {})
    return list(events), dispatcher.messages


def verify(session: Session) -> None:
    validation = ValidateVerificationForm().validate_identity_answer(
        "15/03/1985", CollectingDispatcher(), tracker("15/03/1985"), {}
    )
    assert validation == {"identity_answer": "verified"}


def test_balance_is_refused_without_verification_even_if_a_rule_slips(
    account: Account, session: Session
) -> None:
    events, messages = run(
        ActionTellBalance(), tracker("cuanto debo", "ask_balance", {"verified": True})
    )
    assert messages == []
    assert {"event": "followup", "name": "verification_form"} in [
        {"event": e["event"], "name": e.get("name")} for e in events
    ]


def test_a_wrong_birth_date_counts_down_and_the_right_one_verifies(
    account: Account, db_url: str
) -> None:
    dispatcher = CollectingDispatcher()
    wrong = ValidateVerificationForm().validate_identity_answer(
        "01/01/1990", dispatcher, tracker("01/01/1990"), {}
    )
    assert wrong == {"identity_answer": None}
    assert dispatcher.messages[0]["response"] == "utter_identity_failed"
    assert dispatcher.messages[0]["tries_left"] == 2
    with session_factory(db_url)() as session:
        verify(session)
        conversation = session.scalars(select(Conversation)).one()
        assert conversation.verified_at is not None
    events, messages = run(
        ActionAfterVerification(), tracker("15/03/1985", slots={"identity_answer": "verified"})
    )
    assert {"event": "slot", "name": "verified", "value": True} in [
        {k: e.get(k) for k in ("event", "name", "value")} for e in events
    ]


def test_verified_balance_is_told_and_audited(account: Account, db_url: str) -> None:
    with session_factory(db_url)() as session:
        verify(session)
    _, messages = run(
        ActionTellBalance(), tracker("cuanto debo", "ask_balance", {"verified": True})
    )
    (message,) = messages
    assert message["response"] == "utter_balance"
    assert message["total"] == "$12,000.00"
    assert message["principal"] == "$10,000.00"
    assert message["days_past_due_text"] == "60 días de atraso"
    with session_factory(db_url)() as session:
        assert session.scalars(select(AuditEntry.action)).all().count("disclosure") == 1


def test_a_paid_off_balance_comes_with_the_carta_finiquito(
    account: Account, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACUERDO_PUBLIC_URL", "https://cobranza.example.mx")
    get_settings.cache_clear()
    with session_factory(db_url)() as session:
        paid = session.get(Account, account.id)
        assert paid is not None
        settings = get_settings()
        applied = apply_payment(
            session, settings.clock(), load_policy(settings.policy_file), paid,
            amount_cents=1_200_000, paid_at=settings.clock().now_utc(), reference="R-1",
            source="import",
        )  # fmt: skip
        session.commit()
        assert applied.letter is not None
        code = grouped_code(applied.letter.verification_code)
        verify(session)

    _, messages = run(
        ActionTellBalance(), tracker("cuanto debo", "ask_balance", {"verified": True})
    )

    balance, letter = messages
    assert balance["response"] == "utter_balance_zero"
    custom = letter["custom"]
    assert custom["type"] == "settlement_letter"
    assert custom["pdf_url"] == f"https://cobranza.example.mx/constancias/{code}/pdf"
    assert custom["file_name"] == "constancia-liquidacion-5678.pdf"


def test_a_promise_is_recorded_from_the_form_slots(account: Account, db_url: str) -> None:
    with session_factory(db_url)() as session:
        verify(session)
    _, messages = run(
        ActionRecordPromise(),
        tracker(
            "te pago 500 el viernes",
            "promise_to_pay",
            {"verified": True, "promise_amount": 500.0, "promise_date": "2026-11-27"},
        ),
    )
    assert messages[0]["response"] == "utter_promise_recorded"
    assert messages[0]["date"] == "viernes 27 de noviembre de 2026"
    with session_factory(db_url)() as session:
        promise = session.scalars(select(Promise)).one()
        assert (promise.amount_cents, promise.promised_date) == (50_000, date(2026, 11, 27))


def test_a_counter_offer_below_the_floor_is_countered(account: Account, db_url: str) -> None:
    with session_factory(db_url)() as session:
        verify(session)
    # 60 days past due: opening 15% off = $10,200.00, floor 75% = $9,000.00; the bot
    # concedes half the distance to the floor: $9,600.00.
    _, messages = run(
        ActionCounterOffer(),
        tracker(
            "solo tengo 2000",
            "propose_amount",
            {"verified": True},
            [{"entity": "amount", "value": 2000}],
        ),
    )
    assert messages[0]["response"] == "utter_counter_offer"
    assert (messages[0]["proposed"], messages[0]["amount"]) == ("$2,000.00", "$9,600.00")


def test_opt_out_is_recorded_at_once(account: Account, db_url: str) -> None:
    _, messages = run(ActionOptOut(), tracker("BAJA", "opt_out"))
    assert messages[0]["response"] == "utter_opt_out_confirmed"
    with session_factory(db_url)() as session:
        contact = session.scalars(select(ContactPoint).where(ContactPoint.address == PHONE)).one()
        assert contact.opted_out_at is not None
