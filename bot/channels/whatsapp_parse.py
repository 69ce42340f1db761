"""WhatsApp Cloud API webhook bodies → common :class:`Delivery`.

Every entry, change, message and status is read; nothing assumes ``[0]``. A broken
envelope raises :class:`InvalidDelivery`; a broken item is listed in ``rejected`` while the
good items of the same body are still returned (so they are stored, never lost).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from bot.channels.base import Delivery, InboundKind, InboundMessage, InvalidDelivery, StatusUpdate
from bot.channels.json_parse import load_webhook_json
from bot.channels.whatsapp_errors import ERROR_OUTCOMES
from bot.domain.errors import InvalidPhone
from bot.domain.phones import normalize_phone

CHANNEL = "whatsapp"
MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 8192

# Media types and the common kind each becomes.
_MEDIA_KINDS = {
    "image": InboundKind.IMAGE,
    "document": InboundKind.DOCUMENT,
    "audio": InboundKind.AUDIO,
    "video": InboundKind.VIDEO,
    "sticker": InboundKind.STICKER,
}
# Types WhatsApp documents that the bot does not handle: answered with a polite note.
_UNHANDLED_TYPES = frozenset(
    {"unsupported", "order", "request_welcome", "ephemeral", "unknown", "gif", "poll"}
)
KNOWN_STATUSES = frozenset({"sent", "delivered", "read", "failed", "played", "deleted", "warning"})


class _Reject(ValueError):
    """One item of the body is malformed."""


def _timestamp(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(str(value)), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _object(container: dict[str, Any], key: str) -> dict[str, Any]:
    value = container.get(key)
    if not isinstance(value, dict):
        raise _Reject(f"'{key}' object missing")
    return value


def _string(container: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = container.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise _Reject(f"'{key}' must be a non-empty string")
    return value


def _clip(text: str | None) -> str | None:
    """Typed text, titles and captions alike stop at MAX_TEXT_LENGTH characters."""
    return text[:MAX_TEXT_LENGTH] if text is not None else None


def _parse_message(raw: Any, profiles: dict[str, str]) -> InboundMessage:
    if not isinstance(raw, dict):
        raise _Reject("message is not an object")
    external_id = _string(raw, "id") or ""
    if len(external_id) > MAX_ID_LENGTH:
        raise _Reject("message id too long")
    sender_raw = _string(raw, "from") or ""
    try:  # wa_ids are full international numbers without the "+"
        sender = normalize_phone(sender_raw if sender_raw.startswith("+") else "+" + sender_raw)
    except InvalidPhone:
        raise _Reject("sender is not a phone number") from None
    kind_name = _string(raw, "type") or ""
    base: dict[str, Any] = {
        "channel": CHANNEL,
        "external_id": external_id,
        "sender": sender,
        "profile_name": profiles.get(sender_raw),
        "timestamp": _timestamp(raw.get("timestamp")),
    }
    details: dict[str, Any] = {"type": kind_name}
    context = raw.get("context")
    if isinstance(context, dict) and isinstance(context.get("id"), str):
        details["context_id"] = context["id"]

    if kind_name == "text":
        body = _string(_object(raw, "text"), "body", required=False) or ""
        return InboundMessage(
            kind=InboundKind.TEXT, text=body[:MAX_TEXT_LENGTH], details=details, **base
        )
    if kind_name == "interactive":
        interactive = _object(raw, "interactive")
        subtype = interactive.get("type")
        details["interactive_type"] = subtype
        if subtype in ("button_reply", "list_reply"):
            reply = _object(interactive, str(subtype))
            return InboundMessage(
                kind=InboundKind.BUTTON,
                payload=_string(reply, "id"),
                text=_clip(_string(reply, "title", required=False)),
                details=details,
                **base,
            )
        return InboundMessage(kind=InboundKind.UNSUPPORTED, details=details, **base)
    if kind_name == "button":  # a quick reply on a template
        button = _object(raw, "button")
        text = _string(button, "text", required=False)
        payload = _string(button, "payload", required=False) or text
        if not payload:
            raise _Reject("'button' needs a payload or a text")
        return InboundMessage(
            kind=InboundKind.BUTTON, payload=payload, text=_clip(text), details=details, **base
        )
    if kind_name in _MEDIA_KINDS:
        media = _object(raw, kind_name)
        for key in ("caption", "filename", "sha256", "voice", "animated"):
            if key in media:
                details[key] = media[key]
        caption = media.get("caption")
        return InboundMessage(
            kind=_MEDIA_KINDS[kind_name],
            media_id=_string(media, "id"),
            media_mime=_string(media, "mime_type", required=False),
            text=_clip(caption) if isinstance(caption, str) else None,
            details=details,
            **base,
        )
    if kind_name == "location":
        location = _object(raw, "location")
        details.update({k: location.get(k) for k in ("latitude", "longitude", "name", "address")})
        return InboundMessage(kind=InboundKind.LOCATION, details=details, **base)
    if kind_name == "reaction":
        reaction = _object(raw, "reaction")
        details["emoji"] = reaction.get("emoji") or ""
        details["reacted_to"] = reaction.get("message_id")
        return InboundMessage(kind=InboundKind.REACTION, details=details, **base)
    if kind_name == "contacts":
        if not isinstance(raw.get("contacts"), list):
            raise _Reject("'contacts' list missing")
        return InboundMessage(kind=InboundKind.CONTACTS, details=details, **base)
    if kind_name == "system":
        system = _object(raw, "system")
        details["system_type"] = system.get("type")
        return InboundMessage(kind=InboundKind.SYSTEM, details=details, **base)
    if kind_name in _UNHANDLED_TYPES:
        unsupported = raw.get("unsupported")
        if isinstance(unsupported, dict) and isinstance(unsupported.get("type"), str):
            details["unsupported_type"] = unsupported["type"]
        errors = raw.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            details["error_code"] = str(errors[0].get("code"))
        return InboundMessage(kind=InboundKind.UNSUPPORTED, details=details, **base)
    raise _Reject(f"unknown message type '{kind_name[:40]}'")


def _parse_status(raw: Any) -> StatusUpdate | None:
    if not isinstance(raw, dict):
        raise _Reject("status is not an object")
    external_id = _string(raw, "id") or ""
    status = (_string(raw, "status") or "").lower()
    if status not in KNOWN_STATUSES:
        raise _Reject(f"unknown status '{status[:40]}'")
    code = title = None
    errors = raw.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = str(errors[0].get("code")) if errors[0].get("code") is not None else None
        title = str(errors[0].get("title") or errors[0].get("message") or "")[:200] or None
    return StatusUpdate(
        channel=CHANNEL,
        external_id=external_id,
        status=status,
        timestamp=_timestamp(raw.get("timestamp")),
        error_code=code,
        error_title=title,
        outcome=ERROR_OUTCOMES.get(int(code)) if code and code.isdigit() else None,
    )


def parse_whatsapp_delivery(raw_body: bytes, phone_number_id: str | None) -> Delivery:
    """Read a webhook body. Changes for another phone number id are ignored, not rejected."""
    try:
        data = load_webhook_json(raw_body)
    except ValueError:  # UnicodeDecodeError included
        raise InvalidDelivery("body is not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise InvalidDelivery("body must be a JSON object")
    if data.get("object") != "whatsapp_business_account":
        raise InvalidDelivery("'object' must be 'whatsapp_business_account'")
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise InvalidDelivery("'entry' must be a list")
    delivery = Delivery()
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            raise InvalidDelivery("every entry needs a 'changes' list")
        for change in changes:
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                raise InvalidDelivery("every change needs a 'value' object")
            if change.get("field") != "messages":
                delivery.ignored += 1
                continue
            _read_value(change["value"], phone_number_id, delivery)
    return delivery


def _read_value(value: dict[str, Any], phone_number_id: str | None, delivery: Delivery) -> None:
    metadata = value.get("metadata")
    target = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    messages = value.get("messages", [])
    statuses = value.get("statuses", [])
    if not isinstance(messages, list) or not isinstance(statuses, list):
        delivery.rejected.append("'messages' and 'statuses' must be lists")
        return
    if phone_number_id and target is not None and str(target) != phone_number_id:
        delivery.ignored += len(messages) + len(statuses)
        return
    profiles: dict[str, str] = {}
    contacts = value.get("contacts")
    if isinstance(contacts, list):
        for contact in contacts:
            if not isinstance(contact, dict):
                continue
            profile = contact.get("profile")
            name = profile.get("name") if isinstance(profile, dict) else None
            if isinstance(contact.get("wa_id"), str) and isinstance(name, str):
                profiles[contact["wa_id"]] = name[:200]
    for raw in messages:
        try:
            delivery.messages.append(_parse_message(raw, profiles))
        except _Reject as exc:
            delivery.rejected.append(str(exc))
    for raw in statuses:
        try:
            status = _parse_status(raw)
        except _Reject as exc:
            delivery.rejected.append(str(exc))
            continue
        if status is not None:
            delivery.statuses.append(status)
