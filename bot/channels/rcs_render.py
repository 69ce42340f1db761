"""Common bot responses → RBM ``AgentMessage`` bodies, within RBM's limits.

- text: split at 3,072 characters;
- options: suggested replies (≤ 11 per message, text ≤ 25, postbackData ≤ 2,048); more than
  11 become a numbered text menu whose numbers map back to the options;
- link actions: suggested actions (open a URL, dial a number);
- an image (the payment QR): a standalone rich card (title ≤ 200, description ≤ 2,000,
  ≤ 4 suggestions) with the image as its media;
- a document (a PDF): its caption as text with an "open" chip for the link, then the file
  by URL (RBM takes one file per message, without text, and fetches it itself);
- a template (company-started): its text with the buttons as suggested replies and a TTL,
  so that a reminder nobody received is revoked and falls back to the next channel.

Limits are applied here, when the outbox row is built, never at send time.
"""

from __future__ import annotations

from typing import Any

from bot.channels.base import Button, LinkAction, OutboundMessage, RenderedMessage
from bot.channels.labels import channel_labels
from bot.channels.text_limits import shorten, split_text

TEXT_LIMIT = 3072
MAX_SUGGESTIONS = 11
MAX_CARD_SUGGESTIONS = 4
SUGGESTION_TEXT_LIMIT = 25
POSTBACK_LIMIT = 2048
CARD_TITLE_LIMIT = 200
CARD_DESCRIPTION_LIMIT = 2000
# A company-started message not delivered within a day is revoked (TTL_EXPIRATION_REVOKED)
# and goes out on the next channel of the fallback chain.
TEMPLATE_TTL = "86400s"
ACTION_POSTBACK = "acuerdo:action"


def _postback(button: Button) -> str:
    payload = button.payload.strip()
    if payload and len(payload) <= POSTBACK_LIMIT:
        return payload
    return button.title.strip()[:POSTBACK_LIMIT] or "opcion"


def _reply(button: Button) -> dict[str, Any]:
    return {
        "reply": {
            "text": shorten(button.title, SUGGESTION_TEXT_LIMIT),
            "postbackData": _postback(button),
        }
    }


def _action(action: LinkAction) -> dict[str, Any] | None:
    suggestion: dict[str, Any] = {
        "text": shorten(action.title, SUGGESTION_TEXT_LIMIT),
        "postbackData": ACTION_POSTBACK,
    }
    if action.url:
        suggestion["openUrlAction"] = {"url": action.url}
    elif action.phone:
        suggestion["dialAction"] = {"phoneNumber": action.phone}
    else:
        return None
    return {"action": suggestion}


def suggestions(
    buttons: tuple[Button, ...], actions: tuple[LinkAction, ...], limit: int
) -> list[dict[str, Any]]:
    """Suggested replies then suggested actions, at most ``limit``."""
    chips = [_reply(button) for button in buttons]
    chips += [chip for chip in (_action(action) for action in actions) if chip is not None]
    return chips[:limit]


def _chip_line(chips: list[dict[str, Any]]) -> str:
    titles = [next(iter(chip.values()))["text"] for chip in chips]
    return "\n" + " ".join(f"[{title}]" for title in titles) if titles else ""


def _texts(text: str) -> list[RenderedMessage]:
    return [
        RenderedMessage(kind="text", text=piece, body={"contentMessage": {"text": piece}})
        for piece in split_text(text, TEXT_LIMIT)
    ]


def _text_with_chips(text: str | None, chips: list[dict[str, Any]]) -> list[RenderedMessage]:
    pieces = split_text(text or "", TEXT_LIMIT) or [channel_labels()["choose_option"]]
    lead = [
        RenderedMessage(kind="text", text=piece, body={"contentMessage": {"text": piece}})
        for piece in pieces[:-1]
    ]
    last = pieces[-1]
    body = {"contentMessage": {"text": last, "suggestions": chips}}
    return [
        *lead,
        RenderedMessage(kind="interactive", text=last + _chip_line(chips), body=body),
    ]


def _numbered(message: OutboundMessage) -> list[RenderedMessage]:
    labels = channel_labels()
    lines = [f"{n}. {b.title}" for n, b in enumerate(message.buttons, start=1)]
    full = "\n\n".join(part for part in ((message.text or "").strip(), "\n".join(lines)) if part)
    full += "\n\n" + labels["numbered_hint"]
    messages = _texts(full)
    last = messages[-1]
    messages[-1] = RenderedMessage(
        kind=last.kind, text=last.text, body=last.body, options=message.buttons
    )
    return messages


def _card(message: OutboundMessage, image_url: str) -> list[RenderedMessage]:
    text = (message.text or "").strip()
    title = shorten(message.title, CARD_TITLE_LIMIT) if message.title else None
    if title and text.startswith(message.title or ""):
        text = text[len(message.title or "") :].strip()  # the title is already on the card
    lead: list[RenderedMessage] = []
    if len(text) > CARD_DESCRIPTION_LIMIT:
        lead, text = _texts(text), ""
    chips = suggestions(message.buttons, message.actions, MAX_CARD_SUGGESTIONS)
    content: dict[str, Any] = {
        "media": {
            "height": "MEDIUM",
            "contentInfo": {"fileUrl": image_url, "forceRefresh": False},
        }
    }
    if title:
        content["title"] = title
    if text:
        content["description"] = text
    if chips:
        content["suggestions"] = chips
    body = {
        "contentMessage": {
            "richCard": {"standaloneCard": {"cardOrientation": "VERTICAL", "cardContent": content}}
        }
    }
    shown = "\n".join(part for part in (title, text) if part) or "[imagen]"
    return [*lead, RenderedMessage(kind="card", text=shown + _chip_line(chips), body=body)]


def _document(message: OutboundMessage, url: str) -> list[RenderedMessage]:
    name = (message.document_name or "").strip() or "documento.pdf"
    chips = suggestions(
        message.buttons,
        (*message.actions, LinkAction(channel_labels()["open_document"], url=url)),
        MAX_SUGGESTIONS,
    )
    caption = (message.text or "").strip() or name
    file_body = {"contentMessage": {"contentInfo": {"fileUrl": url, "forceRefresh": False}}}
    return [
        *_text_with_chips(caption, chips),
        RenderedMessage(kind="document", text=f"📄 {name}\n{url}", body=file_body),
    ]


def _template(message: OutboundMessage) -> RenderedMessage:
    template = message.template
    assert template is not None
    titles = template.button_titles or template.button_payloads
    buttons = tuple(
        Button(title, payload)
        for title, payload in zip(titles, template.button_payloads, strict=False)
    )
    text = shorten(template.preview or template.name, TEXT_LIMIT)
    content: dict[str, Any] = {"text": text}
    chips = suggestions(buttons, message.actions, MAX_SUGGESTIONS)
    if chips:
        content["suggestions"] = chips
    body = {"contentMessage": content, "ttl": TEMPLATE_TTL}
    return RenderedMessage(kind="template", text=text + _chip_line(chips), body=body)


def render_rcs(message: OutboundMessage) -> list[RenderedMessage]:
    """The RBM bodies for one response (empty when the response carries nothing)."""
    if message.template is not None:
        return [_template(message)]
    if message.image_url:
        return _card(message, message.image_url)
    if message.document_url:
        return _document(message, message.document_url)
    if len(message.buttons) > MAX_SUGGESTIONS:
        return _numbered(message)
    chips = suggestions(message.buttons, message.actions, MAX_SUGGESTIONS)
    if chips:
        return _text_with_chips(message.text, chips)
    return _texts(message.text) if message.text and message.text.strip() else []
