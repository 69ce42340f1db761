"""The RBM adapter alone: signatures, parsing every message and event, rendering within limits,
sending with a service-account token and idempotent message ids (against the stand-in)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path

import pytest

from bot.channels.base import (
    Button,
    InboundKind,
    InvalidDelivery,
    LinkAction,
    OutboundMessage,
    SendError,
    SendOutcome,
    TemplateMessage,
)
from bot.channels.rcs import RcsAdapter, message_id_for, rcs_adapter_from_settings
from bot.channels.rcs_auth import ServiceAccountTokens
from bot.channels.rcs_parse import (
    handshake_secret,
    parse_rbm_delivery,
    parse_time,
    sign_data,
    verify_rbm_signature,
)
from bot.channels.rcs_render import (
    MAX_CARD_SUGGESTIONS,
    MAX_SUGGESTIONS,
    SUGGESTION_TEXT_LIMIT,
    TEMPLATE_TTL,
    render_rcs,
)
from bot.config import Settings, SettingsError
from tests.rbm_stub import (
    AGENT_ID,
    CLIENT_TOKEN,
    Fault,
    RbmStub,
    push,
    signed_headers,
    user_event,
    user_message,
)

PHONE = "+525512340001"


# -- signature and handshake -----------------------------------------------------------------
def test_the_signature_is_hmac_sha512_of_the_decoded_data_in_base64() -> None:
    raw = push(user_message(PHONE, text="hola"))
    header = signed_headers(raw)["X-Goog-Signature"]
    data = base64.b64decode(json.loads(raw)["message"]["data"])
    assert header == sign_data(CLIENT_TOKEN, data)
    assert len(base64.b64decode(header)) == 64  # SHA-512
    assert verify_rbm_signature(raw, header, CLIENT_TOKEN)


@pytest.mark.parametrize(
    "header",
    [None, "", "not-base64", sign_data("another-token", b"x")],
)
def test_a_missing_or_wrong_signature_is_refused(header: str | None) -> None:
    raw = push(user_message(PHONE, text="hola"))
    assert not verify_rbm_signature(raw, header, CLIENT_TOKEN)


def test_a_signature_over_other_data_is_refused() -> None:
    raw = push(user_message(PHONE, text="hola"))
    other = push(user_message(PHONE, text="cuánto debo"))
    assert not verify_rbm_signature(other, signed_headers(raw)["X-Goog-Signature"], CLIENT_TOKEN)
    assert not verify_rbm_signature(b"{not json", "abc", CLIENT_TOKEN)


def test_the_handshake_body_is_recognised() -> None:
    body = json.dumps({"clientToken": "SJENCPGJESMGUFPY", "secret": "1234567890"}).encode()
    assert handshake_secret(body) == ("SJENCPGJESMGUFPY", "1234567890")
    assert handshake_secret(push(user_message(PHONE, text="hola"))) is None


# -- parsing ------------------------------------------------------------------------------
def test_a_text_message_becomes_a_common_text() -> None:
    data = user_message("+52 1 55 1234 0001", text="¿Cuánto debo?")
    (message,) = parse_rbm_delivery(push(data), AGENT_ID).messages
    assert message.channel == "rcs" and message.kind is InboundKind.TEXT
    assert message.sender == PHONE and message.text == "¿Cuánto debo?"
    assert message.external_id == data["messageId"]
    assert message.timestamp is not None and message.timestamp.microsecond == 123456


def test_the_guides_event_id_is_a_dedup_key_too() -> None:
    data = user_message(PHONE, text="hola")
    data["eventId"] = data.pop("messageId")
    (message,) = parse_rbm_delivery(push(data), AGENT_ID).messages
    assert message.external_id == data["eventId"]


def test_a_suggestion_tap_carries_its_postback_data() -> None:
    data = user_message(
        PHONE,
        suggestionResponse={
            "postbackData": "/ask_balance",
            "text": "Consultar saldo",
            "type": "REPLY",
        },
    )
    (message,) = parse_rbm_delivery(push(data), AGENT_ID).messages
    assert message.kind is InboundKind.BUTTON
    assert message.payload == "/ask_balance" and message.text == "Consultar saldo"


def test_a_tap_on_an_action_chip_is_recorded_but_not_a_conversation_turn() -> None:
    data = user_message(
        PHONE,
        suggestionResponse={
            "postbackData": "acuerdo:action",
            "text": "Ver cómo pagar",
            "type": "ACTION",
        },
    )
    (message,) = parse_rbm_delivery(push(data), AGENT_ID).messages
    assert message.kind is InboundKind.SYSTEM


def test_a_location_and_files_are_read() -> None:
    location = user_message(PHONE, location={"latitude": 19.43, "longitude": -99.13})
    image = user_message(
        PHONE,
        userFile={
            "payload": {
                "mimeType": "image/jpeg",
                "fileSizeBytes": 52000,
                "fileUri": "https://storage.googleapis.com/rbm/recibo.jpg",
                "fileName": "recibo.jpg",
            }
        },
    )
    pdf = user_message(
        PHONE,
        userFile={"payload": {"mimeType": "application/pdf", "fileUri": "https://x/y.pdf"}},
    )
    (loc,) = parse_rbm_delivery(push(location), AGENT_ID).messages
    assert loc.kind is InboundKind.LOCATION and loc.details["latitude"] == 19.43
    (img,) = parse_rbm_delivery(push(image), AGENT_ID).messages
    assert img.kind is InboundKind.IMAGE and img.media_mime == "image/jpeg"
    assert img.media_id == "https://storage.googleapis.com/rbm/recibo.jpg"
    (doc,) = parse_rbm_delivery(push(pdf), AGENT_ID).messages
    assert doc.kind is InboundKind.DOCUMENT


def test_delivered_and_read_events_are_receipts_and_typing_is_ignored() -> None:
    delivered = parse_rbm_delivery(push(user_event(PHONE, "DELIVERED", "m-1")), AGENT_ID)
    read = parse_rbm_delivery(push(user_event(PHONE, "READ", "m-1")), AGENT_ID)
    typing = parse_rbm_delivery(push(user_event(PHONE, "IS_TYPING")), AGENT_ID)
    assert [(s.external_id, s.status) for s in delivered.statuses] == [("m-1", "delivered")]
    assert [(s.external_id, s.status) for s in read.statuses] == [("m-1", "read")]
    assert typing.statuses == [] and typing.messages == [] and typing.ignored == 1


def test_an_unsubscribe_event_is_kept_as_a_system_message() -> None:
    (message,) = parse_rbm_delivery(push(user_event(PHONE, "UNSUBSCRIBE")), AGENT_ID).messages
    assert message.kind is InboundKind.SYSTEM and message.details["event_type"] == "UNSUBSCRIBE"


def test_a_ttl_revocation_is_an_undeliverable_failure() -> None:
    event = {
        "phoneNumber": PHONE,
        "messageId": "our-message",
        "agentId": AGENT_ID,
        "eventType": "TTL_EXPIRATION_REVOKED",
        "eventId": "ev-1",
        "sendTime": "2026-11-24T18:00:00Z",
    }
    (status,) = parse_rbm_delivery(push(event), AGENT_ID).statuses
    assert status.status == "failed" and status.outcome is SendOutcome.UNDELIVERABLE
    assert status.error_code == "ttl_expired"
    event["eventType"] = "TTL_EXPIRATION_REVOKE_FAILED"
    assert parse_rbm_delivery(push(event), AGENT_ID).ignored == 1


def test_unknown_and_broken_items_are_rejected_and_other_agents_ignored() -> None:
    unknown = parse_rbm_delivery(push(user_message(PHONE, sticker={"id": 1})), AGENT_ID)
    assert unknown.rejected == ["unknown message type"]
    no_id = user_message(PHONE, text="hola")
    del no_id["messageId"]
    assert parse_rbm_delivery(push(no_id), AGENT_ID).rejected
    not_a_phone = parse_rbm_delivery(push(user_message("hola", text="x")), AGENT_ID)
    assert not_a_phone.rejected == ["'senderPhoneNumber' is not a phone number"]
    other = user_message(PHONE, text="hola")
    other["agentId"] = "someone-else@rbm.goog"
    assert parse_rbm_delivery(push(other), AGENT_ID).ignored == 1
    with pytest.raises(InvalidDelivery):
        parse_rbm_delivery(b'{"message": {}}', AGENT_ID)
    with pytest.raises(InvalidDelivery):
        parse_rbm_delivery(b"[]", AGENT_ID)


def test_rfc3339_times_with_nanoseconds_and_offsets() -> None:
    assert parse_time("2026-09-01T10:15:29.812345678Z") is not None
    assert parse_time("2026-09-01T10:15:29-06:00").hour == 16  # type: ignore[union-attr]
    assert parse_time("yesterday") is None


# -- rendering ----------------------------------------------------------------------------
def test_options_become_suggested_replies_within_rbm_limits() -> None:
    buttons = tuple(Button(f"Opción número {n} con un título largo", f"/opt{n}") for n in range(9))
    (rendered,) = render_rcs(OutboundMessage(text="¿Qué prefieres?", buttons=buttons))
    content = rendered.body["contentMessage"]
    assert content["text"] == "¿Qué prefieres?"
    chips = content["suggestions"]
    assert len(chips) == 9
    assert all(len(c["reply"]["text"]) <= SUGGESTION_TEXT_LIMIT for c in chips)
    assert [c["reply"]["postbackData"] for c in chips] == [f"/opt{n}" for n in range(9)]


def test_more_than_eleven_options_become_a_numbered_menu() -> None:
    buttons = tuple(Button(f"Opción {n}", f"/opt{n}") for n in range(MAX_SUGGESTIONS + 1))
    messages = render_rcs(OutboundMessage(text="Elige", buttons=buttons))
    last = messages[-1]
    assert "suggestions" not in last.body["contentMessage"]
    assert "12. Opción 11" in last.body["contentMessage"]["text"]
    assert last.options == buttons  # a reply "12" maps back to the last option


def test_link_actions_become_open_url_and_dial_suggestions() -> None:
    message = OutboundMessage(
        text="Tu saldo es de $1,250.00",
        buttons=(Button("Pagar", "/request_payment_code"),),
        actions=(
            LinkAction("Ver cómo pagar", url="https://pay.test/pay/abc"),
            LinkAction("Llamar a un asesor", phone="+525550000000"),
        ),
    )
    (rendered,) = render_rcs(message)
    reply, open_url, dial = rendered.body["contentMessage"]["suggestions"]
    assert reply == {"reply": {"text": "Pagar", "postbackData": "/request_payment_code"}}
    assert open_url["action"]["openUrlAction"] == {"url": "https://pay.test/pay/abc"}
    assert dial["action"]["dialAction"] == {"phoneNumber": "+525550000000"}


def test_a_payment_qr_is_a_standalone_rich_card() -> None:
    caption = "Pago en efectivo en OXXO\nMonto: $500.00\nReferencia: 1234"
    message = OutboundMessage(
        text=caption,
        image_url="https://pay.test/pay/abc/qr.png",
        title="Pago en efectivo en OXXO",
        actions=(LinkAction("Ver cómo pagar", url="https://pay.test/pay/abc"),),
    )
    (rendered,) = render_rcs(message)
    assert rendered.kind == "card"
    card = rendered.body["contentMessage"]["richCard"]["standaloneCard"]
    assert card["cardOrientation"] == "VERTICAL"
    content = card["cardContent"]
    assert content["title"] == "Pago en efectivo en OXXO"
    assert content["description"] == "Monto: $500.00\nReferencia: 1234"
    assert content["media"]["contentInfo"]["fileUrl"] == "https://pay.test/pay/abc/qr.png"
    assert len(content["suggestions"]) <= MAX_CARD_SUGGESTIONS
    assert content["suggestions"][0]["action"]["openUrlAction"]["url"] == "https://pay.test/pay/abc"


def test_long_text_is_split_and_a_template_gets_a_ttl() -> None:
    pieces = render_rcs(OutboundMessage(text="palabra " * 1000))
    assert len(pieces) == 3 and all(len(p.body["contentMessage"]["text"]) <= 3072 for p in pieces)
    template = TemplateMessage(
        name="recordatorio_preventivo",
        language="es_MX",
        params=("Laura",),
        button_payloads=("Pagar ahora", "Otra fecha"),
        preview="Hola Laura, te recordamos tu pago.",
        button_titles=("Pagar ahora", "Otra fecha"),
    )
    (rendered,) = render_rcs(OutboundMessage(template=template))
    assert rendered.body["ttl"] == TEMPLATE_TTL
    assert rendered.body["contentMessage"]["text"] == "Hola Laura, te recordamos tu pago."
    assert len(rendered.body["contentMessage"]["suggestions"]) == 2


# -- sending ------------------------------------------------------------------------------
def _adapter(rbm: RbmStub, key_file: Path) -> RcsAdapter:
    return RcsAdapter(
        agent_id=AGENT_ID,
        client_token=CLIENT_TOKEN,
        api_base_url=rbm.rbm_url,
        tokens=ServiceAccountTokens(str(key_file)),
        timeout=2.0,
    )


def test_a_send_uses_a_service_account_token_and_the_rows_message_id(
    rbm_server: RbmStub, service_account_file: Path
) -> None:
    async def scenario() -> tuple[str, str]:
        adapter = _adapter(rbm_server, service_account_file)
        try:
            key = str(uuid.uuid4())
            body = {"contentMessage": {"text": "hola"}}
            first = await adapter.send(PHONE, body, idempotency_key=key)
            again = await adapter.send(PHONE, body, idempotency_key=key)  # a retry
            return first.external_id, again.external_id
        finally:
            await adapter.aclose()

    first, again = asyncio.run(scenario())
    assert first == again
    (sent,) = rbm_server.sends
    assert len(rbm_server.duplicates) == 1  # RBM ignored the retry: the person sees one
    assert sent.path == f"/v1/phones/{PHONE}/agentMessages"
    assert sent.query == {"messageId": first, "agentId": AGENT_ID}
    assert len(rbm_server.token_requests) == 1  # the token is cached


def test_send_failures_map_to_outbox_outcomes(
    rbm_server: RbmStub, service_account_file: Path
) -> None:
    rbm_server.not_rcs_capable.add("+525512349999")

    async def outcome(phone: str = PHONE) -> SendOutcome:
        adapter = _adapter(rbm_server, service_account_file)
        try:
            await adapter.send(phone, {"contentMessage": {"text": "x"}}, idempotency_key="k")
        except SendError as error:
            return error.outcome
        finally:
            await adapter.aclose()
        raise AssertionError("the send succeeded")

    assert asyncio.run(outcome("+525512349999")) is SendOutcome.UNDELIVERABLE
    rbm_server.fail_next(status=429)
    assert asyncio.run(outcome()) is SendOutcome.RETRY
    rbm_server.fail_next(status=503)
    assert asyncio.run(outcome()) is SendOutcome.RETRY
    rbm_server.fail_next(status=400)
    assert asyncio.run(outcome()) is SendOutcome.REJECTED
    rbm_server.token_faults.append(Fault(400))
    assert asyncio.run(outcome()) is SendOutcome.HALT  # the token endpoint refuses our key


def test_message_ids_are_uuids_derived_from_the_key() -> None:
    key = str(uuid.uuid4())
    assert message_id_for(key) == key
    assert message_id_for("row-7") == message_id_for("row-7")
    uuid.UUID(message_id_for("row-7"))
    assert message_id_for(None) != message_id_for(None)


def test_an_rcs_agent_without_a_usable_key_file_stops_start_up(
    gateway_settings: Settings, tmp_path: Path
) -> None:
    agent = gateway_settings.model_copy(
        update={"rcs_agent_id": AGENT_ID, "rcs_client_token": CLIENT_TOKEN}
    )
    with pytest.raises(SettingsError, match="RCS_SERVICE_ACCOUNT_FILE"):
        rcs_adapter_from_settings(agent)
    broken = tmp_path / "key.json"
    broken.write_text("{}")
    with pytest.raises(SettingsError, match="RCS_SERVICE_ACCOUNT_FILE"):
        rcs_adapter_from_settings(
            agent.model_copy(update={"rcs_service_account_file": str(broken)})
        )
    production = gateway_settings.model_copy(
        update={"whatsapp_app_secret": "real", "sandbox": False}
    )
    assert rcs_adapter_from_settings(production, sandbox_base_url="http://x") is None
