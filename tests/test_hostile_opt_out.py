"""Opt-out always wins: a stop word is recorded with its message, whatever state the chat is in.

A real gateway (lifespan and workers) on a real SQLite ledger, the Graph API stand-in
recording what is sent, and the Rasa stand-in recording what the engine was asked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.base import Delivery, InboundKind, InboundMessage
from bot.clock import Clock
from bot.compliance.stop_words import is_stop_request
from bot.conversation.inbox import store_delivery
from bot.conversation.replies import load_replies
from bot.db.engine import session_factory
from bot.db.models import AuditEntry, ContactPoint, Conversation
from bot.policy import Policy
from tests.conftest_gateway import (
    FAST,
    PHONE,
    WA_ID,
    envelope,
    hand_to_agent,
    rows,
    signed_post,
    text,
    wait_inbound_settled,
    wait_outbound_settled,
)
from tests.graph_stub import GraphStub, wait_until
from tests.rasa_standin import RasaStandIn
from tests.test_console_access import login

pytest_plugins = ["tests.conftest_gateway", "tests.test_console_access"]

CONFIRMATION = "ya no te enviaremos mensajes"
FLOODED = dataclasses.replace(FAST, rate_limit_messages=3, rate_limit_seconds=60.0)


def opted_out_at(db_url: str, channel: str, address: str) -> datetime | None:
    with session_factory(db_url)() as session:
        contact = session.scalars(
            select(ContactPoint).where(
                ContactPoint.channel == channel, ContactPoint.address == address
            )
        ).first()
        return contact.opted_out_at if contact else None


@pytest.mark.parametrize(
    "words",
    ["BAJA", "baja.", "  Alto ", "STOP", "Ya no me escriban por favor", "ya no me escriban 🙏"],
)
def test_stop_words_are_recognised_as_people_type_them(words: str) -> None:
    assert is_stop_request(words)


@pytest.mark.parametrize(
    "words", ["hola", "quiero pagar", "cuanto debo", "la baja de intereses?", "", None]
)
def test_ordinary_messages_are_not_stop_words(words: str | None) -> None:
    assert not is_stop_request(words)


def test_the_policys_own_stop_words_count_too(policy: Policy) -> None:
    own = {"words": policy.contact.stop_words, "phrases": policy.contact.stop_phrases}
    assert policy.contact.stop_words and policy.contact.stop_phrases  # policy.yml ships some
    assert is_stop_request("No molestar!", **own)
    assert is_stop_request("Ya NO quiero recibir mensajes de ustedes", **own)
    assert not is_stop_request("No molestar")  # not a built-in one: the policy's
    assert not is_stop_request("no molestar a mi mamá, por favor", **own)  # a whole message


def test_a_policy_stop_word_while_an_agent_holds_the_chat_is_recorded_and_confirmed(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub, db_url: str
) -> None:
    hand_to_agent(gateway, graph_server, db_url)
    signed_post(gateway, envelope([text("No molestar")]))
    wait_until(lambda: rows(db_url, "in")[-1].status == "done", what="the stop word handled")
    assert opted_out_at(db_url, "whatsapp", PHONE) is not None
    sends = graph_server.wait_for_sends(2)
    assert CONFIRMATION in str(sends[-1].body)
    assert len(rasa_standin.requests) == 1


def test_baja_while_an_agent_holds_the_chat_is_recorded_and_confirmed(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub, db_url: str
) -> None:
    hand_to_agent(gateway, graph_server, db_url)
    signed_post(gateway, envelope([text("BAJA")]))
    wait_until(lambda: rows(db_url, "in")[-1].status == "done", what="the BAJA handled")
    assert opted_out_at(db_url, "whatsapp", PHONE) is not None
    sends = graph_server.wait_for_sends(2)
    assert CONFIRMATION in str(sends[-1].body)
    assert len(rasa_standin.requests) == 1  # Rasa never heard it; the agent still holds it
    with session_factory(db_url)() as session:
        assert session.scalars(select(Conversation.state)).one() == "agent"


def test_baja_inside_a_flood_is_recorded_and_confirmed(
    start_gateway: Callable[..., TestClient], graph_server: GraphStub, db_url: str
) -> None:
    gateway = start_gateway(tuning=FLOODED)
    flood = [text(f"oye {n}") for n in range(1, 7)] + [text("ALTO")]
    signed_post(gateway, envelope(flood))
    wait_inbound_settled(db_url)
    assert opted_out_at(db_url, "whatsapp", PHONE) is not None
    wait_until(
        lambda: any(CONFIRMATION in str(s.body) for s in graph_server.sends),
        what="the opt-out confirmation",
    )
    confirmations = [s for s in graph_server.sends if CONFIRMATION in str(s.body)]
    assert len(confirmations) == 1  # confirmed once


def test_a_stop_word_is_stored_with_its_opt_out_in_one_transaction(
    session: Session, clock: Clock, policy: Policy
) -> None:
    delivery = Delivery(
        messages=[
            InboundMessage(
                channel="whatsapp",
                external_id="wamid.stop-1",
                sender=PHONE,
                kind=InboundKind.TEXT,
                text="Baja",
                timestamp=datetime(2026, 11, 23, 18, 0, tzinfo=timezone.utc),
            ),
            InboundMessage(
                channel="rcs",
                external_id="rbm-event-1",
                sender=PHONE,
                kind=InboundKind.SYSTEM,
                details={"type": "event", "event_type": "UNSUBSCRIBE"},
                opts_out=True,
            ),
        ]
    )
    result = store_delivery(session, clock, delivery, policy=policy)
    assert result.stored == 2
    # One commit: nothing between storing the messages and recording the opt-outs.
    for channel in ("whatsapp", "rcs"):
        contact = session.scalars(
            select(ContactPoint).where(
                ContactPoint.channel == channel, ContactPoint.address == PHONE
            )
        ).one()
        assert contact.opted_out_at is not None, channel


def test_the_confirmation_says_what_happens_next_in_plain_words() -> None:
    confirmation = load_replies().opt_out_confirmed
    assert CONFIRMATION in confirmation and "escribes" in confirmation
    assert WA_ID  # the stand-in addresses the same person


def test_an_agent_records_an_opt_out_the_debtor_asked_for_in_other_words(
    gateway: TestClient,
    graph_server: GraphStub,
    people: dict[str, str],
    escalated: Conversation,
    db_url: str,
) -> None:
    """ "Ya no quiero saber nada de ustedes" is no stop word: the agent reads it and records it."""
    chat = f"/console/chats/{escalated.id}"
    csrf = login(gateway, "lucia")
    assert gateway.post(f"{chat}/claim", data={"csrf_token": csrf}).status_code == 200
    assert "Registrar baja" in gateway.get(chat).text

    first = gateway.post(f"{chat}/opt-out", data={"csrf_token": csrf}, follow_redirects=False)
    assert first.headers["location"] == f"{chat}?aviso=opt_out_confirmed"
    assert opted_out_at(db_url, "whatsapp", escalated.address) is not None
    sends = graph_server.wait_for_sends(1)
    assert CONFIRMATION in str(sends[-1].body)
    with session_factory(db_url)() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "opt_out")).one()
        assert entry.actor == "agent:lucia"

    again = gateway.post(f"{chat}/opt-out", data={"csrf_token": csrf}, follow_redirects=False)
    assert again.headers["location"] == f"{chat}?aviso=already_opted_out"
    page = gateway.get(chat).text
    assert "Pidió no recibir mensajes" in page and "Registrar baja" not in page
    wait_outbound_settled(db_url)
    assert sum(CONFIRMATION in str(s.body) for s in graph_server.sends) == 1  # confirmed once
