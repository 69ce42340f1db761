"""The WhatsApp adapter without a server: rendering within limits, error mapping, log scrubbing."""

from __future__ import annotations

import httpx
import pytest

from bot.channels.base import Button, OutboundMessage, SendOutcome, TemplateMessage
from bot.channels.whatsapp import classify_failure, sign_body, verify_meta_signature
from bot.channels.whatsapp_render import render_whatsapp, shorten, split_text
from bot.gateway.logging import scrub


def buttons(count: int, title: str = "Opción") -> tuple[Button, ...]:
    return tuple(Button(f"{title} {n}", f'/inform{{"n": {n}}}') for n in range(1, count + 1))


def test_up_to_three_options_are_reply_buttons_with_titles_of_at_most_20() -> None:
    options = (
        Button("Sí, confirmo", "/affirm"),
        Button("Quiero hablar con un asesor humano", "/request_agent"),
        Button("No", "/deny"),
    )
    (message,) = render_whatsapp(OutboundMessage(text="¿Confirmas tu promesa?", buttons=options))
    interactive = message.body["interactive"]
    assert interactive["type"] == "button"
    replies = [b["reply"] for b in interactive["action"]["buttons"]]
    assert [r["id"] for r in replies] == ["/affirm", "/request_agent", "/deny"]
    assert all(len(r["title"]) <= 20 for r in replies)
    assert replies[1]["title"].endswith("…")
    assert interactive["body"]["text"] == "¿Confirmas tu promesa?"


def test_four_to_ten_options_are_a_list_within_its_limits() -> None:
    long = Button("Plan de seis pagos mensuales sin intereses adicionales", "/plan_6", "x" * 100)
    for count in (4, 10):
        options = (*buttons(count - 1), long)
        (message,) = render_whatsapp(OutboundMessage(text="Elige", buttons=options))
        interactive = message.body["interactive"]
        assert interactive["type"] == "list"
        rows = interactive["action"]["sections"][0]["rows"]
        assert len(rows) == count
        assert all(len(r["title"]) <= 24 for r in rows)
        assert all(len(r.get("description", "")) <= 72 for r in rows)
        assert len(interactive["action"]["button"]) <= 20
        assert rows[-1]["id"] == "/plan_6"


def test_a_truncated_list_title_keeps_its_full_text_in_the_description() -> None:
    options = (*buttons(3), Button("Plan de seis pagos mensuales fijos", "/plan_6"))
    (message,) = render_whatsapp(OutboundMessage(text="Elige", buttons=options))
    row = message.body["interactive"]["action"]["sections"][0]["rows"][-1]
    assert row["description"] == "Plan de seis pagos mensuales fijos"


def test_more_than_ten_options_are_a_numbered_text_menu_that_remembers_the_payloads() -> None:
    options = buttons(12)
    messages = render_whatsapp(OutboundMessage(text="¿Qué día te queda?", buttons=options))
    body = messages[-1].body["text"]["body"]
    assert body.startswith("¿Qué día te queda?")
    assert "1. Opción 1" in body and "12. Opción 12" in body
    assert messages[-1].options == options


def test_long_text_is_split_at_4096_on_word_boundaries() -> None:
    words = " ".join(f"palabra{n}" for n in range(2000))  # about 20,000 characters
    parts = render_whatsapp(OutboundMessage(text=words))
    assert len(parts) >= 5
    assert all(len(p.body["text"]["body"]) <= 4096 for p in parts)
    assert " ".join(p.body["text"]["body"] for p in parts) == words
    assert split_text("a" * 5000) == ["a" * 4096, "a" * 904]


def test_text_too_long_for_a_button_body_goes_first_as_plain_text() -> None:
    text = "Detalle. " * 200  # 1,800 characters, over the 1,024 of a button body
    messages = render_whatsapp(OutboundMessage(text=text, buttons=buttons(2)))
    assert [m.kind for m in messages] == ["text", "interactive"]
    assert len(messages[1].body["interactive"]["body"]["text"]) <= 1024


def test_an_image_goes_by_link_with_its_caption() -> None:
    (message,) = render_whatsapp(
        OutboundMessage(text="Tu QR", image_url="https://pay.example/p/qr.png")
    )
    assert message.body == {
        "type": "image",
        "image": {"link": "https://pay.example/p/qr.png", "caption": "Tu QR"},
    }
    long_caption = render_whatsapp(OutboundMessage(text="x " * 700, image_url="https://a/q.png"))
    assert [m.kind for m in long_caption] == ["text", "image"]


def test_a_template_carries_its_language_parameters_and_quick_reply_payloads() -> None:
    template = TemplateMessage(
        "recordatorio", "es_MX", params=("Ana", "$500.00"), button_payloads=("/pay", "/agent")
    )
    (message,) = render_whatsapp(OutboundMessage(template=template))
    body = message.body["template"]
    assert body["name"] == "recordatorio"
    assert body["language"] == {"policy": "deterministic", "code": "es_MX"}
    params = body["components"][0]["parameters"]
    assert [p["text"] for p in params] == ["Ana", "$500.00"]
    quick = body["components"][1:]
    assert [q["index"] for q in quick] == ["0", "1"]
    assert quick[1]["parameters"][0] == {"type": "payload", "payload": "/agent"}


def test_duplicate_titles_and_oversized_payloads_still_give_valid_buttons() -> None:
    options = (Button("Sí", "/affirm"), Button("Sí", "/affirm"), Button("Otro", "/" + "x" * 300))
    (message,) = render_whatsapp(OutboundMessage(text="?", buttons=options))
    replies = [b["reply"] for b in message.body["interactive"]["action"]["buttons"]]
    assert len({r["id"] for r in replies}) == 3
    assert len({r["title"] for r in replies}) == 3
    assert all(len(r["id"]) <= 256 for r in replies)


def test_shorten_cuts_at_a_word_and_marks_it() -> None:
    assert shorten("Hablar con un asesor ahora mismo", 20) == "Hablar con un…"
    assert len(shorten("Hablar con un asesor ahora mismo", 20)) <= 20
    assert shorten("Corto", 20) == "Corto"


def test_the_signature_is_checked_in_constant_time_over_the_raw_bytes() -> None:
    raw = b'{"object":"whatsapp_business_account"}'
    good = sign_body("secret", raw)
    assert verify_meta_signature(raw, good, "secret")
    assert verify_meta_signature(raw, good.upper().replace("SHA256=", "sha256="), "secret")
    assert not verify_meta_signature(raw + b" ", good, "secret")
    assert not verify_meta_signature(raw, None, "secret")
    assert not verify_meta_signature(raw, "sha256=ñ", "secret")


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (400, 131047, SendOutcome.WINDOW_CLOSED),
        (400, 131026, SendOutcome.UNDELIVERABLE),
        (400, 131056, SendOutcome.PACE_RECIPIENT),
        (400, 368, SendOutcome.HALT),
        (403, 131031, SendOutcome.HALT),
        (401, 190, SendOutcome.HALT),
        (429, 130429, SendOutcome.RETRY),
        (429, None, SendOutcome.RETRY),
        (500, None, SendOutcome.RETRY),
        (503, 131016, SendOutcome.RETRY),
        (400, 100, SendOutcome.REJECTED),
        (400, None, SendOutcome.REJECTED),
    ],
)
def test_graph_errors_map_to_what_the_outbox_must_do(
    status: int, code: int | None, outcome: SendOutcome
) -> None:
    error = {"message": "x"} if code is None else {"message": "x", "code": code}
    response = httpx.Response(status, json={"error": error}, headers={"Retry-After": "2"})
    failure = classify_failure(response)
    assert failure.outcome == outcome
    assert failure.retry_after == 2.0


def test_logs_never_carry_full_phone_numbers_tokens_or_birth_dates() -> None:
    event = scrub(
        None,
        "info",
        {
            "event": "x",
            "sender": "+525512345678",
            "to": "5215512345678",
            "token": "EAAG-secret",
            "birth_date": "1985-03-15",
            "text": "mi fecha es 15/03/1985",
            "detail": "could not reach 5215512345678",
        },
    )
    assert event["sender"] == "+52 55 **** 5678"
    assert event["to"] == "+52 55 **** 5678"
    assert event["token"] == event["birth_date"] == event["text"] == "[redacted]"
    assert "5512345678" not in event["detail"]
