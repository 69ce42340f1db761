"""The WhatsApp Cloud API adapter: signature, webhook parsing, rendering, sending.

Outbound goes to ``{WHATSAPP_API_BASE_URL}/{phone_number_id}/messages`` with the bearer
token. Graph errors are mapped to a :class:`SendOutcome` here, so the outbox never sees a
WhatsApp error code it has to interpret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx

from bot.channels.base import (
    Delivery,
    OutboundMessage,
    RenderedMessage,
    SendError,
    SendOutcome,
    SendResult,
    opaque_answer,
)
from bot.channels.whatsapp_errors import ERROR_OUTCOMES
from bot.channels.whatsapp_media import fetch_media
from bot.channels.whatsapp_parse import CHANNEL, parse_whatsapp_delivery
from bot.channels.whatsapp_render import render_whatsapp
from bot.domain.phones import whatsapp_id
from bot.outbound_http import async_client

SIGNATURE_HEADER = "X-Hub-Signature-256"
SERVICE_WINDOW = timedelta(hours=24)


def sign_body(app_secret: str, raw_body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``raw_body``."""
    return "sha256=" + hmac.new(app_secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()


def verify_meta_signature(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """Constant-time check of ``X-Hub-Signature-256`` over the exact bytes received."""
    if not header or not header.startswith("sha256="):
        return False
    expected = sign_body(app_secret, raw_body).removeprefix("sha256=")
    given = header.removeprefix("sha256=").strip().lower()
    return hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace"))


def _graph_error(response: httpx.Response) -> tuple[int | None, str]:
    try:
        data = response.json()
    except ValueError:
        return None, opaque_answer(response.status_code, response.headers.get("content-type"))
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None, ""
    raw_code = error.get("code")
    code = int(raw_code) if isinstance(raw_code, (int, str)) and str(raw_code).isdigit() else None
    detail = str(error.get("message") or error.get("title") or "")[:200]
    return code, detail


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def classify_failure(response: httpx.Response) -> SendError:
    """A non-2xx Graph answer as a :class:`SendError`."""
    code, detail = _graph_error(response)
    outcome = ERROR_OUTCOMES.get(code) if code is not None else None
    if outcome is None:
        retryable = response.status_code == 429 or response.status_code >= 500
        outcome = SendOutcome.RETRY if retryable else SendOutcome.REJECTED
        if response.status_code in (401, 403) and code is None:
            outcome = SendOutcome.HALT  # our credentials are refused: every send would fail
    return SendError(
        outcome,
        str(code if code is not None else response.status_code),
        detail,
        retry_after=_retry_after(response),
    )


class WhatsAppAdapter:
    """WhatsApp Cloud API: one phone number id, one access token."""

    name = CHANNEL
    service_window: timedelta | None = SERVICE_WINDOW

    def __init__(
        self,
        *,
        app_secret: str,
        access_token: str,
        phone_number_id: str,
        api_base_url: str,
        timeout: float = 15.0,
    ) -> None:
        self._app_secret = app_secret
        self._phone_number_id = phone_number_id
        self._api_base_url = api_base_url.rstrip("/")
        self._messages_url = f"{api_base_url.rstrip('/')}/{phone_number_id}/messages"
        self._client = async_client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"Authorization": f"Bearer {access_token}"},
        )

    def verify_signature(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        header = next(
            (v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), None
        )
        return verify_meta_signature(raw_body, header, self._app_secret)

    def parse_delivery(self, raw_body: bytes) -> Delivery:
        return parse_whatsapp_delivery(raw_body, self._phone_number_id)

    def render(self, message: OutboundMessage) -> list[RenderedMessage]:
        return render_whatsapp(message)

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        try:
            return await self._client.post(self._messages_url, json=body)
        except httpx.TimeoutException as exc:
            raise SendError(SendOutcome.RETRY, "timeout", type(exc).__name__) from None
        except httpx.TransportError as exc:
            raise SendError(SendOutcome.RETRY, "network", type(exc).__name__) from None

    async def send(
        self, recipient: str, body: dict[str, Any], *, idempotency_key: str | None = None
    ) -> SendResult:
        wire = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": whatsapp_id(recipient),
            **body,
        }
        if idempotency_key:
            # Echoed in this message's status webhooks; the same for every attempt of one
            # outbox row, so a duplicate send can be told from a second message.
            wire["biz_opaque_callback_data"] = idempotency_key
        response = await self._post(wire)
        if response.status_code // 100 != 2:
            raise classify_failure(response)
        try:
            message_id = response.json()["messages"][0]["id"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise SendError(SendOutcome.RETRY, "bad_response", "no message id") from None
        return SendResult(external_id=str(message_id))

    async def mark_read(self, external_id: str, recipient: str | None = None) -> None:
        response = await self._post(
            {
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": external_id,
                "typing_indicator": {"type": "text"},
            }
        )
        if response.status_code // 100 != 2:
            raise classify_failure(response)

    async def fetch_media(self, media_id: str) -> tuple[bytes, str]:
        """``(bytes, mime type)`` of an inbound file; :class:`MediaError` when it fails."""
        return await fetch_media(self._client, self._api_base_url, media_id)

    async def aclose(self) -> None:
        await self._client.aclose()
