"""A document (the carta finiquito's PDF) in every channel's wire format, and from Rasa."""

from __future__ import annotations

from bot.channels.base import OutboundMessage
from bot.channels.rcs_render import render_rcs
from bot.channels.sms import render_sms
from bot.channels.whatsapp_render import CAPTION_LIMIT, render_whatsapp
from bot.clock import Clock
from bot.conversation.replies import load_replies
from bot.conversation.responses import outbound_from_rasa

URL = "https://cobranza.example.mx/constancias/7K3D-9QXA-M2PB-4HTR/pdf"
NAME = "constancia-liquidacion-5678.pdf"
LETTER = OutboundMessage(text="Aquí tienes tu constancia.", document_url=URL, document_name=NAME)


def test_whatsapp_sends_a_document_message_by_link_with_its_name_and_caption() -> None:
    (rendered,) = render_whatsapp(LETTER)

    assert rendered.kind == "document"
    assert rendered.body == {
        "type": "document",
        "document": {"link": URL, "filename": NAME, "caption": "Aquí tienes tu constancia."},
    }
    assert NAME in rendered.text  # what the console and the transcript show


def test_a_caption_too_long_for_whatsapp_goes_first_as_text() -> None:
    long = OutboundMessage(text="x " * CAPTION_LIMIT, document_url=URL, document_name=NAME)

    *lead, document = render_whatsapp(long)

    assert lead and all(m.kind == "text" for m in lead)
    assert document.kind == "document" and "caption" not in document.body["document"]


def test_rcs_sends_the_caption_with_an_open_chip_then_the_file_itself() -> None:
    caption, file = render_rcs(LETTER)

    content = caption.body["contentMessage"]
    assert content["text"] == "Aquí tienes tu constancia."
    (chip,) = content["suggestions"]
    assert chip["action"]["openUrlAction"] == {"url": URL}
    assert file.kind == "document"
    assert file.body == {"contentMessage": {"contentInfo": {"fileUrl": URL, "forceRefresh": False}}}


def test_sms_sends_the_link_in_the_text() -> None:
    (rendered,) = render_sms(LETTER)

    assert rendered.body["text"].startswith("Aquí tienes tu constancia.\n" + URL)
    assert "BAJA" in rendered.body["text"]


def test_the_letter_an_action_sends_becomes_a_document_with_the_caption_of_replies(
    clock: Clock,
) -> None:
    custom = {
        "type": "settlement_letter",
        "pdf_url": URL,
        "verify_url": URL.removesuffix("/pdf"),
        "file_name": NAME,
        "product": "Tarjeta de crédito",
        "last4": "5678",
        "creditor": "Banco Ejemplo",
    }

    (message,) = outbound_from_rasa([{"custom": custom}], load_replies(), clock)

    assert (message.document_url, message.document_name) == (URL, NAME)
    assert message.text is not None
    assert "terminación 5678" in message.text and URL.removesuffix("/pdf") in message.text
    bad = {**custom, "pdf_url": "javascript:alert(1)"}
    assert outbound_from_rasa([{"custom": bad}], load_replies(), clock) == []
