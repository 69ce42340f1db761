"""The outbound-only SMS adapter: rendering with the opt-out line, Twilio-style sends and errors."""

from __future__ import annotations

import asyncio
import base64

import pytest

from bot.channels.base import (
    Button,
    InvalidDelivery,
    LinkAction,
    OutboundMessage,
    SendError,
    SendOutcome,
    TemplateMessage,
)
from bot.channels.sms import SmsAdapter, TwilioSms, render_sms, sms_adapter_from_settings
from bot.config import Settings
from tests.rbm_stub import SMS_FROM, SMS_SID, SMS_TOKEN, RbmStub

OPT_OUT = "Responde BAJA para no recibir más mensajes."


def test_every_sms_ends_with_the_opt_out_instruction() -> None:
    (rendered,) = render_sms(OutboundMessage(text="Hola, te recordamos tu pago."))
    assert rendered.body == {"text": f"Hola, te recordamos tu pago.\n{OPT_OUT}"}
    template = TemplateMessage(
        name="recordatorio_preventivo",
        language="es_MX",
        preview="Hola Laura, tu pago vence el 26/11/2026.",
        button_payloads=("Pagar ahora",),
        button_titles=("Pagar ahora",),
    )
    (reminder,) = render_sms(OutboundMessage(template=template))
    assert reminder.kind == "template"
    assert reminder.text == f"Hola Laura, tu pago vence el 26/11/2026.\n{OPT_OUT}"


def test_links_are_written_out_and_buttons_dropped() -> None:
    message = OutboundMessage(
        text="Tu referencia está lista.",
        buttons=(Button("Sí", "/affirm"),),
        actions=(LinkAction("Ver cómo pagar", url="https://pay.test/pay/abc"),),
    )
    (rendered,) = render_sms(message)
    assert "Ver cómo pagar: https://pay.test/pay/abc" in rendered.text
    assert "/affirm" not in rendered.text


def test_a_long_text_is_split_and_only_the_last_part_carries_the_opt_out() -> None:
    parts = render_sms(OutboundMessage(text="palabra " * 300))
    assert len(parts) == 2
    assert all(len(p.text) <= 1600 for p in parts)
    assert parts[-1].text.endswith(OPT_OUT) and OPT_OUT not in parts[0].text
    assert render_sms(OutboundMessage(text="  ")) == []


def test_the_sms_channel_accepts_nothing_from_outside() -> None:
    adapter = SmsAdapter(TwilioSms(account_sid="AC1", auth_token="t", sender="+1"))
    assert adapter.verify_signature({}, b"{}") is False
    with pytest.raises(InvalidDelivery):
        adapter.parse_delivery(b"{}")
    asyncio.run(adapter.aclose())


def test_sms_is_off_until_the_account_is_configured(gateway_settings: Settings) -> None:
    assert sms_adapter_from_settings(gateway_settings) is None
    configured = gateway_settings.model_copy(
        update={"sms_account_sid": SMS_SID, "sms_auth_token": SMS_TOKEN, "sms_from": SMS_FROM}
    )
    assert configured.sms_enabled
    adapter = sms_adapter_from_settings(configured)
    assert adapter is not None
    asyncio.run(adapter.aclose())


def _send(rbm: RbmStub, text: str = "hola", *, token: str = SMS_TOKEN) -> str:
    async def scenario() -> str:
        adapter = SmsAdapter(
            TwilioSms(
                account_sid=SMS_SID,
                auth_token=token,
                sender=SMS_FROM,
                api_base_url=rbm.sms_url,
                timeout=2.0,
            )
        )
        try:
            return (await adapter.send("+52 55 1234 0001", {"text": text})).external_id
        finally:
            await adapter.aclose()

    return asyncio.run(scenario())


def test_a_send_is_a_form_encoded_post_with_basic_auth(rbm_server: RbmStub) -> None:
    sid = _send(rbm_server, f"Hola\n{OPT_OUT}")
    (request,) = rbm_server.sms
    assert sid.startswith("SM")
    assert request.path == f"/2010-04-01/Accounts/{SMS_SID}/Messages.json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.body == {"To": "+525512340001", "From": SMS_FROM, "Body": f"Hola\n{OPT_OUT}"}
    expected = base64.b64encode(f"{SMS_SID}:{SMS_TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (400, 21610, SendOutcome.UNDELIVERABLE),  # the person replied STOP
        (400, 21614, SendOutcome.UNDELIVERABLE),  # not a mobile number
        (429, 20429, SendOutcome.RETRY),
        (503, None, SendOutcome.RETRY),
        (400, 21602, SendOutcome.REJECTED),  # message body is required
    ],
)
def test_provider_errors_map_to_outbox_outcomes(
    rbm_server: RbmStub, status: int, code: int | None, outcome: SendOutcome
) -> None:
    rbm_server.fail_next_sms(status, code)
    with pytest.raises(SendError) as raised:
        _send(rbm_server)
    assert raised.value.outcome is outcome


def test_refused_credentials_halt_sending(rbm_server: RbmStub) -> None:
    with pytest.raises(SendError) as raised:
        _send(rbm_server, token="wrong")
    assert raised.value.outcome is SendOutcome.HALT and raised.value.code == "20003"


def test_a_templates_opt_out_footer_gives_way_to_the_sms_instruction() -> None:
    template = TemplateMessage(
        name="recordatorio_preventivo",
        language="es_MX",
        preview="Hola Laura, tu pago vence pronto.\n\nSi ya no quieres recibir estos mensajes, "
        "responde BAJA.",
    )
    (rendered,) = render_sms(OutboundMessage(template=template))
    assert rendered.text == f"Hola Laura, tu pago vence pronto.\n{OPT_OUT}"
    assert rendered.text.count("BAJA") == 1
