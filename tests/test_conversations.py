"""Whole conversations through the real Rasa model and the real action server.

Seeded debtor (tests/rasa_stack.py): balance $12,000.00 = capital $10,000.00 +
interest $1,500.00 + fees $500.00, due 2026-09-24, so 60 days past due on the
pinned Monday 2026-11-23. policy.yml puts 60 days in the 31-90 bucket: opening
offer 15% off ($10,200.00), floor 75% ($9,000.00).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.db.engine import session_scope
from bot.db.models import (
    Agreement,
    AuditEntry,
    ContactPoint,
    Conversation,
    Promise,
)
from tests.rasa_stack import RasaStack

pytestmark = pytest.mark.rasa


def phone(n: int) -> str:
    return f"+5255100{n:05d}"


def text_of(replies: list[dict[str, Any]]) -> str:
    return "\n".join(r.get("text") or "" for r in replies)


def verify(stack: RasaStack, sender: str, first_message: str = "cuanto debo") -> str:
    """Ask something that needs identity, answer with the right birth date; all replies."""
    asked = text_of(stack.say(sender, first_message))
    assert "fecha de nacimiento" in asked
    return text_of(stack.say(sender, "15/03/1985"))


def test_unverified_sender_never_hears_the_balance(rasa_stack: RasaStack) -> None:
    sender = phone(1)
    replies = text_of(rasa_stack.say(sender, "hola cuanto debo?"))
    replies += text_of(rasa_stack.say(sender, "01/01/1990"))
    replies += text_of(rasa_stack.say(sender, "la verdad no me acuerdo, dime cuanto es"))
    assert "$" not in replies
    assert "Banco Ejemplo" not in replies
    assert "no coinciden" in replies


def test_three_wrong_answers_lock_verification_and_offer_an_agent(rasa_stack: RasaStack) -> None:
    sender = phone(2)
    rasa_stack.say(sender, "cuanto debo")
    rasa_stack.say(sender, "01/01/1990")
    rasa_stack.say(sender, "02/02/1991")
    last = rasa_stack.say(sender, "03/03/1992")
    assert "bloqueada por 24 horas" in text_of(last)
    assert any(b["payload"] == "/request_agent" for r in last for b in r.get("buttons", []))
    # Even the right answer does not open the account while locked.
    later = text_of(rasa_stack.say(sender, "cuanto debo")) + text_of(
        rasa_stack.say(sender, "15/03/1985")
    )
    assert "$" not in later


def test_unknown_number_learns_nothing(rasa_stack: RasaStack) -> None:
    sender = "+525599999999"
    replies = text_of(rasa_stack.say(sender, "cuanto debo")) + text_of(
        rasa_stack.say(sender, "15/03/1985")
    )
    assert "$" not in replies and "Banco" not in replies
    assert "no coinciden" in replies


def test_verified_debtor_gets_the_balance_with_its_breakdown(rasa_stack: RasaStack) -> None:
    replies = verify(rasa_stack, phone(3))
    assert "María" in replies
    assert "$12,000.00" in replies
    assert "Capital: $10,000.00" in replies
    assert "Intereses: $1,500.00" in replies
    assert "Comisiones: $500.00" in replies
    assert "Banco Ejemplo" in replies
    assert "60 días de atraso" in replies
    assert "24 de septiembre de 2026" in replies
    with session_scope(rasa_stack.db_url) as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert "disclosure" in actions


def test_oxxo_reference_for_the_amount_the_debtor_picks(rasa_stack: RasaStack) -> None:
    sender = phone(4)
    verify(rasa_stack, sender)
    rasa_stack.say(sender, "quiero pagar en el oxxo, me das la referencia?")
    replies = rasa_stack.say(sender, "500")
    body = text_of(replies)
    match = re.search(r"Referencia OXXO: (\d{14})\b", body)
    assert match, body
    assert "$500.00" in body
    payload = next(r["custom"] for r in replies if r.get("custom"))
    assert payload["type"] == "payment_code"
    assert payload["reference"] == match.group(1)
    assert payload["pay_url"].startswith("http://pay.test/pay/")


def test_promise_500_on_friday_is_recorded_and_confirmed(rasa_stack: RasaStack) -> None:
    sender = phone(5)
    verify(rasa_stack, sender)
    body = text_of(rasa_stack.say(sender, "te pago 500 el viernes"))
    assert "$500.00" in body and "viernes 27 de noviembre de 2026" in body
    with session_scope(rasa_stack.db_url) as session:
        promise = session.scalars(select(Promise).order_by(Promise.id.desc())).first()
        assert promise is not None
        assert promise.amount_cents == 50_000
        assert promise.promised_date.isoformat() == "2026-11-27"


def test_balance_question_inside_the_promise_form_returns_to_the_form(
    rasa_stack: RasaStack,
) -> None:
    sender = phone(6)
    verify(rasa_stack, sender)
    asked = text_of(rasa_stack.say(sender, "quiero prometer un pago"))
    assert "Cuánto vas a pagar" in asked
    aside = text_of(rasa_stack.say(sender, "oye y cuanto debo en total?"))
    assert "$12,000.00" in aside and "Cuánto vas a pagar" in aside
    done = text_of(rasa_stack.say(sender, "1000"))
    assert "Qué día" in done


def test_low_counter_offer_is_countered_then_accepted_into_an_agreement(
    rasa_stack: RasaStack,
) -> None:
    sender = phone(7)
    verify(rasa_stack, sender)
    offer = text_of(rasa_stack.say(sender, "me pueden hacer un descuento?"))
    assert "$10,200.00" in offer
    counter = text_of(rasa_stack.say(sender, "solo tengo 2000"))
    assert "$2,000.00" in counter and "$9,600.00" in counter
    accepted = rasa_stack.say(sender, "si, acepto")
    body = text_of(accepted)
    assert "liquidación por $9,600.00" in body
    assert re.search(r"CLABE: \d{18}", body)
    with session_scope(rasa_stack.db_url) as session:
        agreement = session.scalars(select(Agreement).order_by(Agreement.id.desc())).first()
        assert agreement is not None and agreement.total_cents == 960_000


def test_counter_offer_at_the_floor_is_acceptable(rasa_stack: RasaStack) -> None:
    sender = phone(8)
    verify(rasa_stack, sender)
    body = text_of(rasa_stack.say(sender, "te doy 9000 y quedamos a mano"))
    assert "Podemos aceptar $9,000.00" in body


def test_plan_in_six_payments_shows_the_schedule(rasa_stack: RasaStack) -> None:
    sender = phone(9)
    verify(rasa_stack, sender)
    body = text_of(rasa_stack.say(sender, "lo puedo pagar en 6 pagos?"))
    assert "plan de 6 pagos por un total de $12,000.00" in body
    assert body.count("$2,000.00") == 6
    confirmed = text_of(rasa_stack.say(sender, "si"))
    assert "plan de 6 pagos" in confirmed


def test_already_paid_looks_for_the_payment_and_invites_the_receipt(
    rasa_stack: RasaStack,
) -> None:
    sender = phone(10)
    verify(rasa_stack, sender)
    assert "Qué día" in text_of(rasa_stack.say(sender, "ya pague"))
    assert "De cuánto" in text_of(rasa_stack.say(sender, "ayer"))
    body = text_of(rasa_stack.say(sender, "1000"))
    assert "Todavía no veo un pago de $1,000.00" in body and "foto" in body


def test_asking_for_a_human_queues_the_chat(rasa_stack: RasaStack) -> None:
    sender = phone(11)
    body = text_of(rasa_stack.say(sender, "quiero hablar con un asesor"))
    assert "asesor" in body
    with session_scope(rasa_stack.db_url) as session:
        conversation = session.scalars(
            select(Conversation).where(Conversation.address == sender)
        ).one()
        assert conversation.state == "queued"
        assert conversation.handoff_reason == "debtor_request"


def test_baja_opts_the_number_out_at_once(rasa_stack: RasaStack) -> None:
    sender = phone(12)
    body = text_of(rasa_stack.say(sender, "BAJA"))
    assert "ya no te enviaremos mensajes" in body
    with session_scope(rasa_stack.db_url) as session:
        contact = session.scalars(select(ContactPoint).where(ContactPoint.address == sender)).one()
        assert contact.opted_out_at is not None


def test_wrong_person_is_apologised_to_and_flagged(rasa_stack: RasaStack) -> None:
    sender = phone(13)
    body = text_of(rasa_stack.say(sender, "no soy esa persona, numero equivocado"))
    assert "disculpa" in body.lower() and "$" not in body
    with session_scope(rasa_stack.db_url) as session:
        contact = session.scalars(select(ContactPoint).where(ContactPoint.address == sender)).one()
        assert contact.wrong_number_at is not None


def test_bot_says_it_is_automated(rasa_stack: RasaStack) -> None:
    assert "automatizado" in text_of(rasa_stack.say(phone(14), "eres un robot?"))
    assert "automatizado" in text_of(rasa_stack.say(phone(15), "hola"))


def test_parse_returns_normalised_entities(rasa_stack: RasaStack) -> None:
    parsed = rasa_stack.parse("te pago 1,200 el 15 de diciembre")
    values = {e["entity"]: e["value"] for e in parsed["entities"]}
    assert values["amount"] == 1200
    assert values["date"] == "2026-12-15"


def test_yes_to_the_how_to_pay_offer_generates_a_code(rasa_stack: RasaStack) -> None:
    sender = phone(16)
    verify(rasa_stack, sender)
    offer = text_of(rasa_stack.say(sender, "como puedo pagar?"))
    assert "te genero tu referencia" in offer
    asked = text_of(rasa_stack.say(sender, "si por favor"))
    assert "Cómo prefieres pagar" in asked
    rasa_stack.say(sender, "transferencia")
    body = text_of(rasa_stack.say(sender, "2000"))
    assert re.search(r"CLABE: \d{18}", body) and "$2,000.00" in body


def test_an_amount_after_the_how_to_pay_answer_issues_the_code(rasa_stack: RasaStack) -> None:
    sender = phone(17)
    verify(rasa_stack, sender)
    rasa_stack.say(sender, "como le hago para pagar en el oxxo")
    body = text_of(rasa_stack.say(sender, "500"))
    assert re.search(r"Referencia OXXO: \d{14}", body) and "$500.00" in body


def test_a_bare_amount_out_of_context_gets_a_question(rasa_stack: RasaStack) -> None:
    sender = phone(18)
    rasa_stack.say(sender, "hola")
    body = text_of(rasa_stack.say(sender, "700"))
    assert "Qué te gustaría hacer" in body


def test_a_sender_who_keeps_ignoring_the_identity_question_stays_cheap_and_can_still_verify(
    rasa_stack: RasaStack,
) -> None:
    """Issue 14: a tracker stuck in the verification form used to grow by every turn (the
    store folded only outside forms). It folds inside the form now, and the form goes on."""
    sender = phone(20)
    replies = ""
    for _ in range(24):  # past the store's max_turns (16): at least one fold inside the form
        replies += text_of(rasa_stack.say(sender, "cuanto debo"))
    assert "$" not in replies and replies.count("fecha de nacimiento") >= 24
    tracker = httpx.get(
        f"{rasa_stack.rasa_url}/conversations/{sender}/tracker",
        params={"token": rasa_stack.token, "include_events": "ALL"},
        timeout=30,
    ).json()
    said = [e["text"] for e in tracker["events"] if e["event"] == "user"]
    assert 8 <= len(said) <= 17  # folded: the latest turns only, not all 24
    answer = text_of(rasa_stack.say(sender, "15/03/1985"))
    assert "$12,000.00" in answer  # the remembered request is answered after the fold
