"""Common bot responses → WhatsApp Cloud API message bodies, within WhatsApp's limits.

- text: split at 4,096 characters (on a paragraph, line or word break when there is one);
- ≤ 3 options: reply buttons (title ≤ 20, id ≤ 256, body ≤ 1,024);
- 4–10 options: a list (row title ≤ 24, description ≤ 72, id ≤ 200, body ≤ 4,096);
- more: a numbered text menu, whose numbers map back to the options;
- an image by link with a caption ≤ 1,024;
- a document (a PDF) by link with its file name (≤ 240) and a caption ≤ 1,024;
- a template with body parameters and quick-reply payloads.

Limits are applied here, when the outbox row is built, never at send time.
"""

from __future__ import annotations

from typing import Any

from bot.channels.base import Button, OutboundMessage, RenderedMessage, TemplateMessage
from bot.channels.labels import channel_labels
from bot.channels.text_limits import shorten
from bot.channels.text_limits import split_text as split_pieces

TEXT_LIMIT = 4096
BUTTON_BODY_LIMIT = 1024
BUTTON_TITLE_LIMIT = 20
BUTTON_ID_LIMIT = 256
MAX_BUTTONS = 3
LIST_BODY_LIMIT = 4096
LIST_ROW_TITLE_LIMIT = 24
LIST_ROW_DESCRIPTION_LIMIT = 72
LIST_ROW_ID_LIMIT = 200
MAX_LIST_ROWS = 10
CAPTION_LIMIT = 1024
FILENAME_LIMIT = 240


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pieces of at most ``limit`` characters, cut at a paragraph, line or word break."""
    return split_pieces(text, limit)


def _option_id(button: Button, limit: int) -> str:
    """The payload travels as the option id; a payload too long for it travels as the title."""
    payload = button.payload.strip()
    if payload and len(payload) <= limit:
        return payload
    return button.title.strip()[:limit] or "opcion"


def _unique(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    result = []
    for value in ids:
        candidate, n = value, 2
        while candidate in seen:
            candidate = f"{value[: LIST_ROW_ID_LIMIT - 4]}~{n}"
            n += 1
        seen.add(candidate)
        result.append(candidate)
    return result


def _text_messages(text: str) -> list[RenderedMessage]:
    return [
        RenderedMessage(kind="text", text=piece, body={"type": "text", "text": {"body": piece}})
        for piece in split_text(text)
    ]


def _body_and_lead(text: str | None, limit: int) -> tuple[list[RenderedMessage], str]:
    """The interactive body; text longer than ``limit`` goes first as plain messages."""
    labels = channel_labels()
    text = (text or "").strip()
    if not text:
        return [], labels["choose_option"]
    if len(text) <= limit:
        return [], text
    return _text_messages(text), labels["choose_option"]


def _reply_buttons(text: str | None, buttons: tuple[Button, ...]) -> list[RenderedMessage]:
    lead, body = _body_and_lead(text, BUTTON_BODY_LIMIT)
    ids = _unique([_option_id(b, BUTTON_ID_LIMIT) for b in buttons])
    titles = _unique([shorten(b.title, BUTTON_TITLE_LIMIT) for b in buttons])
    wire: dict[str, Any] = {
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": i, "title": t[:BUTTON_TITLE_LIMIT]}}
                    for i, t in zip(ids, titles, strict=True)
                ]
            },
        },
    }
    shown = body + "\n" + "\n".join(f"[{t}]" for t in titles)
    return [*lead, RenderedMessage(kind="interactive", text=shown, body=wire)]


def _list(text: str | None, buttons: tuple[Button, ...]) -> list[RenderedMessage]:
    lead, body = _body_and_lead(text, LIST_BODY_LIMIT)
    ids = _unique([_option_id(b, LIST_ROW_ID_LIMIT) for b in buttons])
    rows = []
    for row_id, button in zip(ids, buttons, strict=True):
        title = shorten(button.title, LIST_ROW_TITLE_LIMIT)
        description = button.description or (button.title if title != button.title else None)
        row: dict[str, Any] = {"id": row_id, "title": title}
        if description:
            row["description"] = shorten(description, LIST_ROW_DESCRIPTION_LIMIT)
        rows.append(row)
    wire = {
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": body},
            "action": {
                "button": shorten(channel_labels()["list_button"], BUTTON_TITLE_LIMIT),
                "sections": [{"rows": rows}],
            },
        },
    }
    shown = body + "\n" + "\n".join(f"• {row['title']}" for row in rows)
    return [*lead, RenderedMessage(kind="interactive", text=shown, body=wire)]


def _numbered(text: str | None, buttons: tuple[Button, ...]) -> list[RenderedMessage]:
    labels = channel_labels()
    lines = [f"{n}. {b.title}" for n, b in enumerate(buttons, start=1)]
    full = "\n\n".join(part for part in ((text or "").strip(), "\n".join(lines)) if part)
    full += "\n\n" + labels["numbered_hint"]
    messages = _text_messages(full)
    last = messages[-1]
    messages[-1] = RenderedMessage(kind=last.kind, text=last.text, body=last.body, options=buttons)
    return messages


def _image(url: str, caption: str | None) -> list[RenderedMessage]:
    caption = (caption or "").strip()
    image: dict[str, Any] = {"link": url}
    lead: list[RenderedMessage] = []
    if caption and len(caption) <= CAPTION_LIMIT:
        image["caption"] = caption
    elif caption:
        lead = _text_messages(caption)
    shown = caption or "[imagen]"
    return [
        *lead,
        RenderedMessage(kind="image", text=shown, body={"type": "image", "image": image}),
    ]


def _document(url: str, name: str | None, caption: str | None) -> list[RenderedMessage]:
    caption = (caption or "").strip()
    filename = shorten((name or "").strip() or "documento.pdf", FILENAME_LIMIT)
    document: dict[str, Any] = {"link": url, "filename": filename}
    lead: list[RenderedMessage] = []
    if caption and len(caption) <= CAPTION_LIMIT:
        document["caption"] = caption
    elif caption:
        lead = _text_messages(caption)
    shown = "\n".join(part for part in (caption, f"📄 {filename}") if part)
    body = {"type": "document", "document": document}
    return [*lead, RenderedMessage(kind="document", text=shown, body=body)]


def _template(template: TemplateMessage) -> RenderedMessage:
    components: list[dict[str, Any]] = []
    if template.params:
        components.append(
            {
                "type": "body",
                "parameters": [{"type": "text", "text": p} for p in template.params],
            }
        )
    for index, payload in enumerate(template.button_payloads):
        components.append(
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": str(index),
                "parameters": [{"type": "payload", "payload": payload}],
            }
        )
    wire: dict[str, Any] = {
        "type": "template",
        "template": {
            "name": template.name,
            "language": {"policy": "deterministic", "code": template.language},
        },
    }
    if components:
        wire["template"]["components"] = components
    titles = template.button_titles or template.button_payloads
    options = tuple(
        Button(title, payload)
        for title, payload in zip(titles, template.button_payloads, strict=False)
    )
    return RenderedMessage(
        kind="template", text=template.preview or template.name, body=wire, options=options
    )


def render_whatsapp(message: OutboundMessage) -> list[RenderedMessage]:
    """The WhatsApp bodies for one response (empty when the response carries nothing)."""
    if message.template is not None:
        return [_template(message.template)]
    if message.image_url:
        return _image(message.image_url, message.text)
    if message.document_url:
        return _document(message.document_url, message.document_name, message.text)
    buttons = message.buttons
    if not buttons:
        return _text_messages(message.text) if message.text and message.text.strip() else []
    if len(buttons) <= MAX_BUTTONS:
        return _reply_buttons(message.text, buttons)
    if len(buttons) <= MAX_LIST_ROWS:
        return _list(message.text, buttons)
    return _numbered(message.text, buttons)
