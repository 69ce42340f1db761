"""``POST /webhooks/rcs`` end to end: the real gateway on a real SQLite file, Rasa stood in by
an echo, Google's RBM API and token endpoint stood in by ``tests/rbm_stub.py``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.config import Settings
from bot.db.engine import session_factory
from bot.db.models import AuditEntry, ContactPoint, Conversation
from tests.conftest_gateway import PHONE, rows, wait_inbound_settled, wait_outbound_settled
from tests.graph_stub import GraphStub, wait_until
from tests.rasa_standin import RasaStandIn
from tests.rbm_stub import (
    CLIENT_TOKEN,
    RbmStub,
    push,
    signed_headers,
    user_event,
    user_message,
)


@pytest.fixture
def rcs_gateway(start_gateway: Callable[..., TestClient], rcs_settings: Settings) -> TestClient:
    return start_gateway(rcs_settings)


def post(client: TestClient, data: dict[str, Any] | bytes, token: str = CLIENT_TOKEN) -> Any:
    raw = data if isinstance(data, bytes) else push(data)
    return client.post("/webhooks/rcs", content=raw, headers=signed_headers(raw, token))


def texts(rbm: RbmStub) -> list[str]:
    return [s.body["contentMessage"].get("text", "") for s in rbm.sends]


# -- handshake and signatures ---------------------------------------------------------------
def test_the_handshake_answers_the_secret_as_plain_text(rcs_gateway: TestClient) -> None:
    answer = rcs_gateway.post(
        "/webhooks/rcs", json={"clientToken": CLIENT_TOKEN, "secret": "1234567890"}
    )
    assert answer.status_code == 200
    assert answer.text == "1234567890"
    assert answer.headers["content-type"].startswith("text/plain")


def test_a_handshake_with_another_client_token_is_refused(rcs_gateway: TestClient) -> None:
    answer = rcs_gateway.post("/webhooks/rcs", json={"clientToken": "nope", "secret": "123"})
    assert answer.status_code == 403 and "123" not in answer.text


def test_a_bad_signature_gets_401_and_nothing_is_stored(
    rcs_gateway: TestClient, db_url: str, rasa_standin: RasaStandIn
) -> None:
    raw = push(user_message(PHONE, text="hola"))
    assert post(rcs_gateway, raw, token="someone-elses-token").status_code == 401
    unsigned = rcs_gateway.post(
        "/webhooks/rcs", content=raw, headers={"Content-Type": "application/json"}
    )
    assert unsigned.status_code == 401
    tampered = raw.replace(b'"data": "', b'"data": "AAAA')  # the original's signature
    moved = rcs_gateway.post("/webhooks/rcs", content=tampered, headers=signed_headers(raw))
    assert moved.status_code == 401
    assert rows(db_url) == []
    with session_factory(db_url)() as session:
        assert session.scalars(select(Conversation)).all() == []
    assert rasa_standin.requests == []


# -- messages ---------------------------------------------------------------------------------
def test_a_signed_text_is_stored_answered_through_rasa_and_sent_over_rbm(
    rcs_gateway: TestClient, rbm_server: RbmStub, rasa_standin: RasaStandIn, db_url: str
) -> None:
    data = user_message(PHONE, text="hola")
    answer = post(rcs_gateway, data)
    assert answer.status_code == 200 and answer.json()["stored"] == 1
    (sent,) = rbm_server.wait_for_sends(1)
    assert sent.path == f"/v1/phones/{PHONE}/agentMessages"
    assert sent.body == {"contentMessage": {"text": "eco: hola"}}
    assert sent.headers["Authorization"].removeprefix("Bearer ") in rbm_server.issued
    (request,) = rasa_standin.answered
    assert request["sender"] == PHONE  # the same Rasa sender as on WhatsApp
    assert request["metadata"]["channel"] == "rcs"
    (out,) = wait_outbound_settled(db_url)
    assert out.channel == "rcs" and out.status == "sent"
    assert out.external_id == sent.query["messageId"]
    assert out.external_id == out.payload["idempotency_key"]
    # Read receipt (and typing) for the person's message, best effort.
    wait_until(lambda: len(rbm_server.events) >= 2, what="agent events")
    read = next(e for e in rbm_server.events if e.body["eventType"] == "READ")
    assert read.body["messageId"] == data["messageId"]


def test_a_tapped_suggestion_reaches_rasa_as_its_postback_data(
    rcs_gateway: TestClient, rbm_server: RbmStub, rasa_standin: RasaStandIn
) -> None:
    tap = {"postbackData": "/ask_balance", "text": "Consultar saldo", "type": "REPLY"}
    assert post(rcs_gateway, user_message(PHONE, suggestionResponse=tap)).status_code == 200
    rbm_server.wait_for_sends(1)
    assert rasa_standin.messages() == ["/ask_balance"]


def test_rasa_buttons_arrive_as_suggestion_chips(
    rcs_gateway: TestClient, rbm_server: RbmStub, rasa_standin: RasaStandIn
) -> None:
    rasa_standin.responder = lambda body: [
        {
            "text": "¿Qué quieres hacer?",
            "buttons": [
                {"title": "Consultar saldo", "payload": "/ask_balance"},
                {"title": "Generar referencia de pago", "payload": "/request_payment_code"},
            ],
        }
    ]
    post(rcs_gateway, user_message(PHONE, text="hola"))
    (sent,) = rbm_server.wait_for_sends(1)
    chips = sent.body["contentMessage"]["suggestions"]
    assert [c["reply"]["postbackData"] for c in chips] == ["/ask_balance", "/request_payment_code"]
    assert all(len(c["reply"]["text"]) <= 25 for c in chips)


def test_a_location_gets_a_polite_note_and_a_file_is_kept_as_evidence(
    rcs_gateway: TestClient, rbm_server: RbmStub, rasa_standin: RasaStandIn, db_url: str
) -> None:
    post(rcs_gateway, user_message(PHONE, location={"latitude": 19.4, "longitude": -99.1}))
    receipt = {"payload": {"mimeType": "image/png", "fileUri": "https://files.test/recibo.png"}}
    post(rcs_gateway, user_message(PHONE, userFile=receipt))
    rbm_server.wait_for_sends(2)
    inbound = wait_inbound_settled(db_url)
    assert [r.kind for r in inbound] == ["location", "image"]
    assert inbound[1].payload["evidence"] is True
    assert inbound[1].payload["media_id"] == "https://files.test/recibo.png"
    assert "solo entiendo" in texts(rbm_server)[0] and "expediente" in texts(rbm_server)[1]
    assert rasa_standin.requests == []
    with session_factory(db_url)() as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert "evidence_received" in actions


def test_a_redelivered_push_is_stored_once_and_answered_once(
    rcs_gateway: TestClient, rbm_server: RbmStub, rasa_standin: RasaStandIn, db_url: str
) -> None:
    raw = push(user_message(PHONE, text="hola"))
    assert post(rcs_gateway, raw).json()["stored"] == 1
    assert post(rcs_gateway, raw).json()["duplicates"] == 1
    rbm_server.wait_for_sends(1)
    wait_outbound_settled(db_url)
    assert post(rcs_gateway, raw).json()["duplicates"] == 1
    wait_inbound_settled(db_url)
    assert len(rows(db_url, "in")) == 1
    assert len(rasa_standin.requests) == 1
    assert len(rbm_server.sends) == 1


def test_delivery_and_read_events_move_the_outbound_row_forward_only(
    rcs_gateway: TestClient, rbm_server: RbmStub, db_url: str
) -> None:
    post(rcs_gateway, user_message(PHONE, text="hola"))
    rbm_server.wait_for_sends(1)
    (out,) = wait_outbound_settled(db_url)
    our_id = out.external_id
    assert post(rcs_gateway, user_event(PHONE, "READ", our_id)).json()["statuses"] == 1
    assert post(rcs_gateway, user_event(PHONE, "DELIVERED", our_id)).json()["statuses"] == 0
    typing = post(rcs_gateway, user_event(PHONE, "IS_TYPING")).json()
    assert typing["ignored"] == 1 and typing["stored"] == 0
    (out,) = rows(db_url, "out")
    assert out.status == "read"


def test_an_unsubscribe_is_an_opt_out_of_company_messages_on_rcs(
    rcs_gateway: TestClient, db_url: str, rbm_server: RbmStub
) -> None:
    raw = push(user_event(PHONE, "UNSUBSCRIBE"))
    assert post(rcs_gateway, raw).json()["stored"] == 1
    assert post(rcs_gateway, raw).json()["duplicates"] == 1
    with session_factory(db_url)() as session:
        contact = session.scalars(
            select(ContactPoint).where(ContactPoint.channel == "rcs", ContactPoint.address == PHONE)
        ).one()
        assert contact.opted_out_at is not None
        opt_outs = session.scalars(select(AuditEntry).where(AuditEntry.action == "opt_out")).all()
        assert len(opt_outs) == 1
    wait_inbound_settled(db_url)
    assert rbm_server.sends == []  # nothing is said back to a "stop"


def test_bad_items_get_4xx_and_nothing_of_them_is_stored(
    rcs_gateway: TestClient, db_url: str
) -> None:
    unknown = post(rcs_gateway, user_message(PHONE, sticker={"id": "x"}))
    assert unknown.status_code == 422 and "unknown message type" in unknown.json()["detail"]
    no_object = push({"senderPhoneNumber": PHONE})
    assert post(rcs_gateway, no_object).status_code == 422
    not_json = rcs_gateway.post(
        "/webhooks/rcs", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 401  # nothing to verify a signature over
    raw = push(user_message(PHONE, text="hola"))
    wrong_type = rcs_gateway.post(
        "/webhooks/rcs", content=raw, headers={**signed_headers(raw), "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    assert rows(db_url) == []


# -- sending ------------------------------------------------------------------------------------
def test_rbm_rate_limits_and_server_errors_are_retried_with_the_same_message_id(
    rcs_gateway: TestClient, rbm_server: RbmStub, db_url: str
) -> None:
    rbm_server.fail_next(1, status=429, retry_after=0.05)
    rbm_server.fail_next(1, status=503)
    post(rcs_gateway, user_message(PHONE, text="hola"))
    rbm_server.wait_for_sends(1)
    (out,) = wait_outbound_settled(db_url)
    assert out.status == "sent" and out.attempts == 3
    ids = {attempt.query["messageId"] for attempt in rbm_server.attempts}
    assert len(rbm_server.attempts) == 3 and ids == {out.external_id}
    uuid.UUID(out.external_id or "")


def test_a_404_marks_the_number_as_not_rcs_capable(
    rcs_gateway: TestClient, rbm_server: RbmStub, db_url: str
) -> None:
    rbm_server.not_rcs_capable.add(PHONE)
    post(rcs_gateway, user_message(PHONE, text="hola"))
    (out,) = wait_outbound_settled(db_url)
    assert out.status == "failed" and out.error_code == "404"
    assert len(rbm_server.attempts) == 1  # never retried
    with session_factory(db_url)() as session:
        contact = session.scalars(
            select(ContactPoint).where(ContactPoint.channel == "rcs", ContactPoint.address == PHONE)
        ).one()
        assert contact.unreachable_at is not None and contact.unreachable_reason == "404"


def test_without_rcs_settings_outside_the_sandbox_the_endpoint_is_404(
    start_gateway: Callable[..., TestClient],
    live_gateway_settings: Settings,
    graph_server: GraphStub,
) -> None:
    client = start_gateway(live_gateway_settings)
    answer = client.post("/webhooks/rcs", content=json.dumps({"clientToken": "x", "secret": "y"}))
    assert answer.status_code == 404
