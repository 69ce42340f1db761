"""POST/GET /webhooks/whatsapp: handshake, signatures, malformed bodies, every payload type."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from bot.channels.whatsapp import SIGNATURE_HEADER, sign_body
from bot.config import SANDBOX_VERIFY_TOKEN
from tests.conftest_gateway import (
    envelope,
    message,
    rows,
    signed_post,
    text,
    wait_inbound_settled,
)

pytest_plugins = ["tests.conftest_gateway"]


def test_handshake_echoes_the_challenge_as_plain_text(gateway: TestClient) -> None:
    response = gateway.get(
        "/webhooks/whatsapp",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": SANDBOX_VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": SANDBOX_VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.verify_token": SANDBOX_VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": SANDBOX_VERIFY_TOKEN},
        {},
    ],
)
def test_handshake_refuses_anything_else(gateway: TestClient, params: dict[str, str]) -> None:
    assert gateway.get("/webhooks/whatsapp", params=params).status_code == 403


def test_missing_signature_is_refused_and_nothing_is_stored(
    gateway: TestClient, db_url: str
) -> None:
    raw = json.dumps(envelope([text("hola")])).encode()
    response = gateway.post(
        "/webhooks/whatsapp", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert rows(db_url) == []


@pytest.mark.parametrize(
    "header",
    [
        "sha256=" + "0" * 64,
        "sha1=abcdef",
        "",
        "sha256=",
        sign_body("another-app-secret", b"{}"),
    ],
)
def test_wrong_signature_is_refused_and_nothing_is_stored(
    gateway: TestClient, db_url: str, header: str
) -> None:
    raw = json.dumps(envelope([text("hola")])).encode()
    response = gateway.post(
        "/webhooks/whatsapp",
        content=raw,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: header},
    )
    assert response.status_code == 401
    assert rows(db_url) == []


def test_signature_of_another_body_is_refused(gateway: TestClient, db_url: str) -> None:
    raw = json.dumps(envelope([text("hola")])).encode()
    forged = sign_body("acuerdo-sandbox-app-secret", raw + b" ")
    response = gateway.post(
        "/webhooks/whatsapp",
        content=raw,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: forged},
    )
    assert response.status_code == 401
    assert rows(db_url) == []


def _unknown_type() -> bytes:
    return json.dumps(envelope([message("hologram", {"x": 1})])).encode()


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"\xff\xfe\x00", "application/json", 400),
        (b"[1, 2, 3]", "application/json", 400),
        (b'"text"', "application/json", 400),
        (b"null", "application/json", 400),
        (json.dumps({"object": "page", "entry": []}).encode(), "application/json", 400),
        (json.dumps({"object": "whatsapp_business_account"}).encode(), "application/json", 400),
        (
            json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": 3}]}).encode(),
            "application/json",
            400,
        ),
        (
            json.dumps(
                {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": 1}]}]}
            ).encode(),
            "application/json",
            400,
        ),
        (_unknown_type(), "application/json", 422),
        (
            json.dumps(envelope([{"type": "text", "text": {"body": "x"}}])).encode(),
            "application/json",
            422,
        ),
        (json.dumps(envelope([message("text")])).encode(), "application/json", 422),
        (
            json.dumps(envelope([text("hola", wa_id="not-a-phone")])).encode(),
            "application/json",
            422,
        ),
        (
            json.dumps(envelope(statuses=[{"id": "wamid.x", "status": "exploded"}])).encode(),
            "application/json",
            422,
        ),
        (json.dumps(envelope([text("hola")])).encode(), "text/plain", 415),
        (json.dumps(envelope([text("hola")])).encode(), "application/x-www-form-urlencoded", 415),
    ],
)
def test_malformed_bodies_get_a_4xx_with_a_reason_never_a_5xx(
    gateway: TestClient, db_url: str, raw: bytes, content_type: str, status: int
) -> None:
    response = gateway.post(
        "/webhooks/whatsapp",
        content=raw,
        headers={
            "Content-Type": content_type,
            SIGNATURE_HEADER: sign_body("acuerdo-sandbox-app-secret", raw),
        },
    )
    assert response.status_code == status
    assert response.json()["detail"]
    assert rows(db_url) == []


def test_oversized_body_is_refused_before_it_is_read(gateway: TestClient, db_url: str) -> None:
    raw = json.dumps(envelope([text("a" * (4 * 1024 * 1024))])).encode()
    response = signed_post(gateway, raw)
    assert response.status_code == 413
    assert rows(db_url) == []


def test_a_valid_message_next_to_a_broken_one_is_stored_and_answered(
    gateway: TestClient, db_url: str, graph_server
) -> None:
    body = envelope([message("hologram", {"x": 1}), text("hola")])
    response = signed_post(gateway, body)
    assert response.status_code == 422
    assert response.json()["stored"] == 1
    (stored,) = wait_inbound_settled(db_url)
    assert stored.text == "hola"
    graph_server.wait_for_sends(1)


def test_other_webhook_fields_and_numbers_are_acknowledged_and_ignored(
    gateway: TestClient, db_url: str
) -> None:
    body = envelope([text("hola")])
    body["entry"][0]["changes"][0]["field"] = "account_update"
    other_number = envelope([text("hola")], phone_number_id="999")
    for payload in (body, other_number):
        response = signed_post(gateway, payload)
        assert response.status_code == 200
        assert response.json()["ignored"] >= 1
    assert rows(db_url) == []


def test_a_delivery_is_committed_before_the_answer(gateway: TestClient, db_url: str) -> None:
    wamid_message = text("hola")
    response = signed_post(gateway, envelope([wamid_message]))
    assert response.status_code == 200
    assert response.json()["stored"] == 1
    stored = rows(db_url, "in")  # read right after the 200: already there
    assert [r.external_id for r in stored] == [wamid_message["id"]]
    assert stored[0].author == "debtor"


PAYLOADS = [
    ("text", text("hola"), "text"),
    (
        "button_reply",
        message(
            "interactive",
            {"type": "button_reply", "button_reply": {"id": "/affirm", "title": "Sí"}},
        ),
        "button",
    ),
    (
        "list_reply",
        message(
            "interactive",
            {
                "type": "list_reply",
                "list_reply": {"id": "/ask_balance", "title": "Mi saldo", "description": "x"},
            },
        ),
        "button",
    ),
    (
        "template button",
        message("button", {"payload": "/request_agent", "text": "Hablar con asesor"}),
        "button",
    ),
    (
        "image",
        message(
            "image",
            {"id": "MEDIA1", "mime_type": "image/jpeg", "sha256": "x", "caption": "mi pago"},
        ),
        "image",
    ),
    (
        "document",
        message(
            "document", {"id": "MEDIA2", "mime_type": "application/pdf", "filename": "ticket.pdf"}
        ),
        "document",
    ),
    (
        "audio",
        message("audio", {"id": "MEDIA3", "mime_type": "audio/ogg; codecs=opus", "voice": True}),
        "audio",
    ),
    ("video", message("video", {"id": "MEDIA4", "mime_type": "video/mp4"}), "video"),
    (
        "sticker",
        message("sticker", {"id": "MEDIA5", "mime_type": "image/webp", "animated": False}),
        "sticker",
    ),
    ("location", message("location", {"latitude": 19.43, "longitude": -99.13}), "location"),
    ("reaction", message("reaction", {"message_id": "wamid.out.1", "emoji": "👍"}), "reaction"),
    (
        "contacts",
        message("contacts", [{"name": {"formatted_name": "Ana"}, "phones": []}]),
        "contacts",
    ),
    (
        "unsupported",
        message(
            "unsupported",
            {"type": "poll_update"},
            errors=[{"code": 131051, "title": "Message type unknown"}],
        ),
        "unsupported",
    ),
    (
        "system",
        message(
            "system",
            {"body": "cambió de número", "wa_id": "5215599999999", "type": "user_changed_number"},
        ),
        "system",
    ),
    ("order", message("order", {"catalog_id": "1", "product_items": []}), "unsupported"),
    (
        "interactive nfm_reply",
        message("interactive", {"type": "nfm_reply", "nfm_reply": {}}),
        "unsupported",
    ),
]


@pytest.mark.parametrize(("name", "payload", "kind"), PAYLOADS, ids=[p[0] for p in PAYLOADS])
def test_every_payload_type_is_stored_with_its_kind(
    gateway: TestClient, db_url: str, name: str, payload: dict, kind: str
) -> None:
    response = signed_post(gateway, envelope([payload]))
    assert response.status_code == 200, response.text
    (stored,) = rows(db_url, "in")
    assert stored.kind == kind
    assert stored.external_id == payload["id"]
    assert stored.payload["profile_name"] == "Laura Méndez"
    if kind in ("image", "document"):
        assert stored.payload["media_id"].startswith("MEDIA")
        assert stored.payload["media_mime"]
        assert stored.payload["evidence"] is True
    if kind == "button":
        assert stored.payload["reply_id"].startswith("/")


def test_several_messages_and_entries_in_one_delivery_are_all_stored(
    gateway: TestClient, db_url: str
) -> None:
    body = envelope([text("uno"), text("dos")])
    second = envelope([text("tres", wa_id="5215512340002")], name="Otro")
    body["entry"].append(second["entry"][0])
    response = signed_post(gateway, body)
    assert response.json()["stored"] == 3
    assert sorted(r.text for r in rows(db_url, "in")) == ["dos", "tres", "uno"]


def test_a_sender_outside_mexico_is_read_as_an_international_number(
    gateway: TestClient, db_url: str
) -> None:
    response = signed_post(
        gateway, envelope([text("hello", wa_id="16505551234")], wa_id="16505551234")
    )
    assert response.status_code == 200
    from bot.db.engine import session_factory
    from bot.db.models import Conversation

    with session_factory(db_url)() as session:
        (conversation,) = session.query(Conversation).all()
        assert conversation.address == "+16505551234"
