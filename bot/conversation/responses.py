"""Rasa's REST responses → common :class:`OutboundMessage` objects.

Rasa answers a list of ``{"text", "buttons": [{"title", "payload"}], "image", "custom"}``.
A ``custom`` payload of ``"type": "payment_code"`` (sent by the actions after a text)
becomes the QR image with a caption holding the reference, amount and expiry; one of
``"type": "settlement_letter"`` becomes the carta finiquito as a document.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog

from bot.channels.base import Button, LinkAction, OutboundMessage
from bot.clock import Clock
from bot.conversation.replies import Replies
from bot.domain.money import InvalidAmount, format_money, pesos_to_cents

log = structlog.get_logger("acuerdo.pipeline")


def _buttons(raw: Any) -> tuple[Button, ...]:
    if not isinstance(raw, list):
        return ()
    buttons = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        title = str(item.get("title") or "").strip()
        payload = str(item.get("payload") or title).strip()
        if title:
            description = item.get("description")
            buttons.append(
                Button(title, payload, str(description) if isinstance(description, str) else None)
            )
    return tuple(buttons)


def format_amount(custom: dict[str, Any]) -> str:
    """The amount of a payment-code payload as ``$1,250.00`` (pesos, a string, or cents)."""
    cents = custom.get("amount_cents")
    if isinstance(cents, int) and not isinstance(cents, bool):
        return format_money(cents)
    amount = custom.get("amount")
    if isinstance(amount, str) and amount.strip().startswith("$"):
        return amount.strip()
    try:
        return format_money(pesos_to_cents(Decimal(str(amount))))
    except (InvalidAmount, InvalidOperation, ValueError):
        return str(amount or "")


def format_expiry(value: Any, clock: Clock) -> str:
    """An ISO date-time as ``26/11/2026 a las 12:00`` in the default time zone."""
    if not isinstance(value, str):
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(clock.tz)
    return moment.strftime("%d/%m/%Y a las %H:%M")


def payment_code_message(custom: dict[str, Any], replies: Replies, clock: Clock) -> OutboundMessage:
    """The QR image (or, without one, a text) for a payment-code payload."""
    method = str(custom.get("method") or "")
    clabe = custom.get("clabe")
    caption = replies.payment_code_caption.format(
        method=replies.payment_methods.get(method, method),
        amount=format_amount(custom),
        reference=custom.get("reference") or "",
        clabe_line=replies.payment_code_clabe_line.format(clabe=clabe) if clabe else "",
        expires=format_expiry(custom.get("expires_at"), clock),
        pay_url=custom.get("pay_url") or "",
    )
    actions: list[LinkAction] = []
    pay_url = custom.get("pay_url")
    if isinstance(pay_url, str) and pay_url.startswith(("http://", "https://")):
        actions.append(LinkAction(replies.payment_code_open_link, url=pay_url))
    support_phone = custom.get("support_phone")
    if isinstance(support_phone, str) and support_phone.startswith("+"):
        actions.append(LinkAction(replies.payment_code_call, phone=support_phone))
    title = replies.payment_methods.get(method) or None
    image = custom.get("qr_png_url")
    if isinstance(image, str) and image.startswith(("http://", "https://")):
        return OutboundMessage(text=caption, image_url=image, title=title, actions=tuple(actions))
    return OutboundMessage(text=caption, actions=tuple(actions))


def settlement_letter_message(custom: dict[str, Any], replies: Replies) -> OutboundMessage | None:
    """The carta finiquito as a document with its caption (None without a usable link)."""
    url = custom.get("pdf_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    caption = replies.settlement_letter_caption.format(
        product=custom.get("product") or "",
        last4=custom.get("last4") or "",
        creditor=custom.get("creditor") or "",
        verify_url=custom.get("verify_url") or "",
    )
    name = custom.get("file_name")
    return OutboundMessage(
        text=caption, document_url=url, document_name=name if isinstance(name, str) else None
    )


def outbound_from_rasa(
    items: list[dict[str, Any]], replies: Replies, clock: Clock
) -> list[OutboundMessage]:
    """One :class:`OutboundMessage` per Rasa response that carries something to show."""
    messages: list[OutboundMessage] = []
    for item in items:
        text = item.get("text") if isinstance(item.get("text"), str) else None
        custom = item.get("custom")
        if isinstance(custom, dict):
            if custom.get("type") == "payment_code":
                if text:
                    messages.append(OutboundMessage(text=text))
                messages.append(payment_code_message(custom, replies, clock))
            elif custom.get("type") == "settlement_letter":
                letter = settlement_letter_message(custom, replies)
                if letter is not None:
                    messages.append(letter)
            elif isinstance(custom.get("text"), str):
                messages.append(
                    OutboundMessage(text=custom["text"], buttons=_buttons(custom.get("buttons")))
                )
            else:
                log.warning("rasa.custom_payload_ignored", payload_type=str(custom.get("type")))
            continue
        image = item.get("image")
        if isinstance(image, str) and image:
            messages.append(OutboundMessage(text=text, image_url=image))
            continue
        buttons = _buttons(item.get("buttons") or item.get("quick_replies"))
        if text or buttons:
            messages.append(OutboundMessage(text=text, buttons=buttons))
        elif item.get("attachment") is not None:
            log.warning("rasa.attachment_ignored")
    return messages
