"""RCS Business Messaging webhook bodies → common :class:`Delivery`, and their signature.

RBM delivers through Google Pub/Sub push: ``{"message": {"data": <base64 JSON>, ...}}``.
The decoded data is one UserMessage (text, suggestion response, location, file), one
UserEvent (DELIVERED, READ, IS_TYPING, subscription changes) or one server event
(``TTL_EXPIRATION_REVOKED`` …). ``X-Goog-Signature`` is base64(HMAC-SHA512) of the *decoded*
data bytes with the agent's client token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from datetime import datetime, timezone
from typing import Any

from bot.channels.base import (
    Delivery,
    InboundKind,
    InboundMessage,
    InvalidDelivery,
    SendOutcome,
    StatusUpdate,
)
from bot.channels.json_parse import load_webhook_json
from bot.domain.errors import InvalidPhone
from bot.domain.phones import normalize_phone

CHANNEL = "rcs"
SIGNATURE_HEADER = "X-Goog-Signature"
MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 8192
TTL_EXPIRED_CODE = "ttl_expired"

_RECEIPTS = {"DELIVERED": "delivered", "READ": "read"}
# Google Messages lets a person stop (and restart) an agent; honoured as an opt-out.
SUBSCRIPTION_EVENTS = frozenset({"UNSUBSCRIBE", "SUBSCRIBE"})
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")


class _Reject(ValueError):
    """The pushed item is malformed."""


def sign_data(client_token: str, data: bytes) -> str:
    """The ``X-Goog-Signature`` RBM sends for the decoded ``message.data`` bytes."""
    digest = hmac.new(client_token.encode("utf-8"), data, hashlib.sha512).digest()
    return base64.b64encode(digest).decode("ascii")


def _b64decode(value: str) -> bytes:
    padded = value + "=" * (-len(value) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return base64.urlsafe_b64decode(padded)  # Pub/Sub may use the URL-safe alphabet


def push_data(raw_body: bytes) -> bytes:
    """The decoded ``message.data`` of a Pub/Sub push, or :class:`InvalidDelivery`."""
    try:
        envelope = load_webhook_json(raw_body)
    except ValueError:  # UnicodeDecodeError included
        raise InvalidDelivery("body is not UTF-8 JSON") from None
    message = envelope.get("message") if isinstance(envelope, dict) else None
    data = message.get("data") if isinstance(message, dict) else None
    if not isinstance(data, str) or not data:
        raise InvalidDelivery("'message.data' must be a base64 string")
    try:
        return _b64decode(data)
    except (binascii.Error, ValueError):
        raise InvalidDelivery("'message.data' is not base64") from None


def verify_rbm_signature(raw_body: bytes, header: str | None, client_token: str) -> bool:
    """Constant-time check of ``X-Goog-Signature`` over the decoded push data."""
    if not header or not client_token:
        return False
    try:
        data = push_data(raw_body)
    except InvalidDelivery:
        return False
    expected = sign_data(client_token, data)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("utf-8", "replace"))


def handshake_secret(raw_body: bytes) -> tuple[str, str] | None:
    """``(clientToken, secret)`` when the body is RBM's webhook verification request."""
    try:
        data = load_webhook_json(raw_body)
    except ValueError:
        return None
    if not isinstance(data, dict) or "clientToken" not in data or "secret" not in data:
        return None
    return str(data["clientToken"]), str(data["secret"])


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 instant (``…T10:15:29.812345678Z``) as an aware datetime."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value.strip())
    if match is None:
        return None
    whole, fraction, offset = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    offset = "+00:00" if offset == "Z" else offset
    try:
        return datetime.fromisoformat(f"{whole}.{micro}{offset}").astimezone(timezone.utc)
    except ValueError:
        return None


def _string(container: dict[str, Any], key: str) -> str | None:
    value = container.get(key)
    return value if isinstance(value, str) and value.strip() else None


def _event_id(data: dict[str, Any]) -> str:
    # The reference shows messageId; the guide's examples show eventId. Take either.
    value = _string(data, "messageId") or _string(data, "eventId")
    if value is None:
        raise _Reject("no 'messageId' or 'eventId'")
    if len(value) > MAX_ID_LENGTH:
        raise _Reject("message id too long")
    return value


def _phone(data: dict[str, Any], key: str) -> str:
    raw = _string(data, key)
    if raw is None:
        raise _Reject(f"'{key}' missing")
    try:
        return normalize_phone(raw)
    except InvalidPhone:
        raise _Reject(f"'{key}' is not a phone number") from None


def _file_kind(mime: str) -> InboundKind:
    if mime.startswith("image/"):
        return InboundKind.IMAGE
    if mime.startswith("video/"):
        return InboundKind.VIDEO
    if mime.startswith("audio/"):
        return InboundKind.AUDIO
    return InboundKind.DOCUMENT


def _user_message(data: dict[str, Any]) -> InboundMessage:
    base: dict[str, Any] = {
        "channel": CHANNEL,
        "external_id": _event_id(data),
        "sender": _phone(data, "senderPhoneNumber"),
        "timestamp": parse_time(data.get("sendTime")),
    }
    details: dict[str, Any] = {}
    if "text" in data:
        text = data["text"]
        if not isinstance(text, str):
            raise _Reject("'text' must be a string")
        details["type"] = "text"
        return InboundMessage(
            kind=InboundKind.TEXT, text=text[:MAX_TEXT_LENGTH], details=details, **base
        )
    if "suggestionResponse" in data:
        response = data["suggestionResponse"]
        if not isinstance(response, dict):
            raise _Reject("'suggestionResponse' must be an object")
        postback = _string(response, "postbackData")
        title = _string(response, "text")
        title = title[:MAX_TEXT_LENGTH] if title is not None else None
        kind_name = str(response.get("type") or "REPLY").upper()
        details.update({"type": "suggestion", "suggestion_type": kind_name})
        if kind_name == "ACTION":
            # The person opened a link or dialled from a chip: nothing to answer.
            details["postback"] = (postback or "")[:MAX_ID_LENGTH]
            return InboundMessage(kind=InboundKind.SYSTEM, text=title, details=details, **base)
        if postback is None and title is None:
            raise _Reject("'suggestionResponse' needs 'postbackData' or 'text'")
        return InboundMessage(
            kind=InboundKind.BUTTON, payload=postback or title, text=title, details=details, **base
        )
    if "location" in data:
        location = data["location"]
        if not isinstance(location, dict):
            raise _Reject("'location' must be an object")
        details.update(
            {"type": "location", **{k: location.get(k) for k in ("latitude", "longitude")}}
        )
        return InboundMessage(kind=InboundKind.LOCATION, details=details, **base)
    if "userFile" in data:
        user_file = data["userFile"]
        payload = user_file.get("payload") if isinstance(user_file, dict) else None
        if not isinstance(payload, dict):
            raise _Reject("'userFile.payload' must be an object")
        uri = _string(payload, "fileUri")
        if uri is None:
            raise _Reject("'userFile.payload.fileUri' missing")
        mime = _string(payload, "mimeType") or "application/octet-stream"
        details["type"] = "file"
        for key in ("fileName", "fileSizeBytes"):
            if key in payload:
                details[key] = payload[key]
        return InboundMessage(
            kind=_file_kind(mime), media_id=uri, media_mime=mime, details=details, **base
        )
    raise _Reject("unknown message type")


def _user_event(data: dict[str, Any], delivery: Delivery) -> None:
    event = str(data.get("eventType") or "").upper()
    if event in _RECEIPTS:
        message_id = _string(data, "messageId")
        if message_id is None:
            raise _Reject(f"{event} event without 'messageId'")
        delivery.statuses.append(
            StatusUpdate(
                channel=CHANNEL,
                external_id=message_id,
                status=_RECEIPTS[event],
                timestamp=parse_time(data.get("sendTime")),
            )
        )
    elif event in SUBSCRIPTION_EVENTS:
        event_id = _string(data, "eventId") or _event_id(data)
        delivery.messages.append(
            InboundMessage(
                channel=CHANNEL,
                external_id=event_id,
                sender=_phone(data, "senderPhoneNumber"),
                kind=InboundKind.SYSTEM,
                timestamp=parse_time(data.get("sendTime")),
                details={"type": "event", "event_type": event},
                opts_out=event == "UNSUBSCRIBE",
            )
        )
    else:  # IS_TYPING and anything Google adds later: nothing to keep
        delivery.ignored += 1


def _server_event(data: dict[str, Any], delivery: Delivery) -> None:
    event = str(data.get("eventType") or "").upper()
    message_id = _string(data, "messageId")
    if event == "TTL_EXPIRATION_REVOKED" and message_id is not None:
        delivery.statuses.append(
            StatusUpdate(
                channel=CHANNEL,
                external_id=message_id,
                status="failed",
                timestamp=parse_time(data.get("sendTime")),
                error_code=TTL_EXPIRED_CODE,
                error_title="expired before delivery and revoked",
                outcome=SendOutcome.UNDELIVERABLE,
            )
        )
    else:  # TTL_EXPIRATION_REVOKE_FAILED (may still arrive), launch-state events, …
        delivery.ignored += 1


def parse_rbm_delivery(raw_body: bytes, agent_id: str | None) -> Delivery:
    """Read a (verified) Pub/Sub push. Events for another agent are ignored, not rejected."""
    try:
        data = load_webhook_json(push_data(raw_body))
    except ValueError:
        raise InvalidDelivery("'message.data' is not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise InvalidDelivery("'message.data' must hold a JSON object")
    delivery = Delivery()
    target = data.get("agentId")
    if agent_id and isinstance(target, str) and target != agent_id:
        delivery.ignored += 1
        return delivery
    try:
        if "senderPhoneNumber" in data and "eventType" in data:
            _user_event(data, delivery)
        elif "senderPhoneNumber" in data:
            delivery.messages.append(_user_message(data))
        elif "eventType" in data:
            _server_event(data, delivery)
        else:
            raise _Reject("neither a user message nor an event")
    except _Reject as exc:
        delivery.rejected.append(str(exc))
    return delivery
