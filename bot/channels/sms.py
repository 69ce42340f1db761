"""SMS, outbound only: the last resort of the fallback chain for company-started messages.

The adapter is provider-neutral (:class:`SmsProvider`: send one text, get the provider's id);
:class:`TwilioSms` is the first provider, speaking Twilio's REST API
(``POST {base}/Accounts/{sid}/Messages.json``, form-encoded, basic auth). Every SMS ends with
the opt-out instruction (``labels.yml``: ``sms_opt_out``). Nothing comes in on this channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol

import httpx

from bot.channels.base import (
    Delivery,
    InvalidDelivery,
    OutboundMessage,
    RenderedMessage,
    SendError,
    SendOutcome,
    SendResult,
    opaque_answer,
)
from bot.channels.labels import channel_labels
from bot.channels.text_limits import split_text
from bot.config import Settings
from bot.domain.phones import normalize_phone
from bot.outbound_http import async_client

CHANNEL = "sms"
DEFAULT_TWILIO_BASE = "https://api.twilio.com/2010-04-01"
# Twilio accepts up to 1,600 characters and splits them into segments itself.
TEXT_LIMIT = 1600
# The word that stops company messages (CONTRACT: opt-out "BAJA / STOP").
OPT_OUT_WORD = "BAJA"

# Twilio error codes (https://www.twilio.com/docs/api/errors) → what the outbox does.
TWILIO_ERRORS: dict[int, SendOutcome] = {
    21211: SendOutcome.UNDELIVERABLE,  # invalid 'To' number
    21214: SendOutcome.UNDELIVERABLE,  # 'To' cannot be reached
    21408: SendOutcome.UNDELIVERABLE,  # no permission to send to that region
    21610: SendOutcome.UNDELIVERABLE,  # the person replied STOP to this sender
    21612: SendOutcome.UNDELIVERABLE,  # no route to that number from this sender
    21614: SendOutcome.UNDELIVERABLE,  # not a mobile number
    20003: SendOutcome.HALT,  # authentication failed
    20429: SendOutcome.RETRY,  # too many requests
    30001: SendOutcome.RETRY,  # queue overflow
}


class SmsProvider(Protocol):
    """What an SMS provider must offer the adapter."""

    async def send_text(self, to: str, text: str) -> str:
        """Send ``text`` to ``to`` (E.164); the provider's message id, or :class:`SendError`."""
        ...

    async def aclose(self) -> None: ...


class TwilioSms:
    """Twilio's Programmable Messaging REST API (or anything speaking it)."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        sender: str,
        api_base_url: str = DEFAULT_TWILIO_BASE,
        timeout: float = 15.0,
    ) -> None:
        self._url = f"{api_base_url.rstrip('/')}/Accounts/{account_sid}/Messages.json"
        self._sender = sender
        self._client = async_client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            auth=(account_sid, auth_token),
        )

    async def send_text(self, to: str, text: str) -> str:
        try:
            response = await self._client.post(
                self._url, data={"To": to, "From": self._sender, "Body": text}
            )
        except httpx.TimeoutException as exc:
            raise SendError(SendOutcome.RETRY, "timeout", type(exc).__name__) from None
        except httpx.TransportError as exc:
            raise SendError(SendOutcome.RETRY, "network", type(exc).__name__) from None
        if response.status_code // 100 != 2:
            raise classify_twilio_failure(response)
        try:
            return str(response.json()["sid"])
        except (ValueError, KeyError, TypeError):
            raise SendError(SendOutcome.RETRY, "bad_response", "no message sid") from None

    async def aclose(self) -> None:
        await self._client.aclose()


def classify_twilio_failure(response: httpx.Response) -> SendError:
    """A non-2xx Twilio answer as a :class:`SendError`."""
    code: int | None = None
    detail = ""
    try:
        data = response.json()
        if isinstance(data, dict):
            raw = data.get("code")
            code = int(raw) if isinstance(raw, (int, str)) and str(raw).isdigit() else None
            detail = str(data.get("message") or "")[:200]
    except ValueError:
        detail = opaque_answer(response.status_code, response.headers.get("content-type"))
    outcome = TWILIO_ERRORS.get(code) if code is not None else None
    if outcome is None:
        status = response.status_code
        if status == 429 or status >= 500:
            outcome = SendOutcome.RETRY
        elif status in (401, 403):
            outcome = SendOutcome.HALT
        else:
            outcome = SendOutcome.REJECTED
    retry_after = response.headers.get("Retry-After")
    return SendError(
        outcome,
        str(code if code is not None else response.status_code),
        detail,
        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
    )


def render_sms(message: OutboundMessage) -> list[RenderedMessage]:
    """Plain text with the links of the message's actions (and of its document), ending
    with the SMS opt-out instruction (which replaces a template's opt-out footer)."""
    if message.template is not None:
        text = message.template.preview or ""
        kind = "template"
    else:
        text = message.text or ""
        kind = "text"
    text = text.strip()
    for action in message.actions:
        if action.url and action.url not in text:
            text += f"\n{action.title}: {action.url}"
    if message.document_url and message.document_url not in text:
        text = f"{text}\n{message.document_url}".strip()
    if not text:
        return []
    opt_out = channel_labels()["sms_opt_out"]
    head, _, last = text.rpartition("\n\n")
    if head and OPT_OUT_WORD in last:
        text = head.rstrip()  # the template's footer says how to stop; SMS says it its own way
    pieces = split_text(text, TEXT_LIMIT - len(opt_out) - 1)
    pieces[-1] = f"{pieces[-1]}\n{opt_out}"
    return [RenderedMessage(kind=kind, text=piece, body={"text": piece}) for piece in pieces]


class SmsAdapter:
    """The SMS channel: render and send; it has no webhook."""

    name = CHANNEL
    service_window: timedelta | None = None

    def __init__(self, provider: SmsProvider) -> None:
        self._provider = provider

    def verify_signature(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        return False  # outbound only: nothing is ever accepted from outside

    def parse_delivery(self, raw_body: bytes) -> Delivery:
        raise InvalidDelivery("the SMS channel receives nothing")

    def render(self, message: OutboundMessage) -> list[RenderedMessage]:
        return render_sms(message)

    async def send(
        self, recipient: str, body: dict[str, Any], *, idempotency_key: str | None = None
    ) -> SendResult:
        text = body.get("text")
        if not isinstance(text, str) or not text:
            raise SendError(SendOutcome.REJECTED, "empty", "no text to send")
        return SendResult(
            external_id=await self._provider.send_text(normalize_phone(recipient), text)
        )

    async def mark_read(self, external_id: str, recipient: str | None = None) -> None:
        pass

    async def aclose(self) -> None:
        await self._provider.aclose()


def sms_adapter_from_settings(settings: Settings, *, timeout: float = 15.0) -> SmsAdapter | None:
    """The SMS adapter, when SMS_ACCOUNT_SID, SMS_AUTH_TOKEN and SMS_FROM are set."""
    if not settings.sms_enabled:
        return None
    return SmsAdapter(
        TwilioSms(
            account_sid=settings.sms_account_sid or "",
            auth_token=settings.sms_auth_token or "",
            sender=settings.sms_from or "",
            api_base_url=settings.sms_api_base_url or DEFAULT_TWILIO_BASE,
            timeout=timeout,
        )
    )
