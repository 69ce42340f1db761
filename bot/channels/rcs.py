"""The RCS Business Messaging (RBM) adapter: signature, webhook parsing, rendering, sending.

Outbound goes to ``{RCS_API_BASE_URL}/phones/{E164}/agentMessages?messageId={uuid}&agentId=…``
with a service-account bearer token. The ``messageId`` is the outbox row's idempotency key,
so a retried send reuses it and RBM never shows the person the same message twice. RBM's
answers are mapped to a :class:`SendOutcome` here: 404 means the number cannot receive RCS
(the outbox marks it and falls back to the next channel).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
import structlog

from bot.channels.base import (
    Delivery,
    OutboundMessage,
    RenderedMessage,
    SendError,
    SendOutcome,
    SendResult,
    opaque_answer,
)
from bot.channels.rcs_auth import ServiceAccountTokens, StaticToken, TokenProvider
from bot.channels.rcs_parse import (
    CHANNEL,
    SIGNATURE_HEADER,
    parse_rbm_delivery,
    verify_rbm_signature,
)
from bot.channels.rcs_render import render_rcs
from bot.config import SANDBOX_RCS_AGENT_ID, SANDBOX_RCS_CLIENT_TOKEN, Settings, SettingsError
from bot.domain.phones import normalize_phone
from bot.outbound_http import async_client

log = structlog.get_logger("acuerdo.rcs")

DEFAULT_RBM_BASE = "https://rcsbusinessmessaging.googleapis.com/v1"
SANDBOX_RBM_PATH = "/sandbox/rbm/v1"
SANDBOX_RBM_TOKEN = "acuerdo-sandbox-rbm-token"
# Namespace of message ids derived from keys that are not UUIDs themselves.
_MESSAGE_ID_NAMESPACE = uuid.UUID("6f1b8a52-3c0e-4d8e-9a57-6c2d4a0e9b11")


def message_id_for(idempotency_key: str | None) -> str:
    """The RBM ``messageId`` (a UUID) for an outbox row's idempotency key."""
    if not idempotency_key:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(idempotency_key))
    except ValueError:
        return str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, idempotency_key))


def _google_error(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return opaque_answer(response.status_code, response.headers.get("content-type"))
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return ""
    return f"{error.get('status') or ''} {error.get('message') or ''}".strip()[:200]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def classify_failure(response: httpx.Response) -> SendError:
    """A non-2xx RBM answer as a :class:`SendError`."""
    status = response.status_code
    detail = _google_error(response)
    if status == 429 or status >= 500:
        outcome = SendOutcome.RETRY
    elif status in (404, 403):
        # 404: not RCS-enabled or unreachable; 403: the agent is not launched on that
        # person's carrier. Either way this number cannot get RCS now: fall back.
        outcome = SendOutcome.UNDELIVERABLE
    elif status == 401:
        outcome = SendOutcome.RETRY  # an expired token: the next try fetches a new one
    else:
        outcome = SendOutcome.REJECTED  # 400: a feature the device does not support, …
    return SendError(outcome, str(status), detail, retry_after=_retry_after(response))


class RcsAdapter:
    """RBM: one agent, one client token (webhook), one service account (API)."""

    name = CHANNEL
    service_window: timedelta | None = None  # RBM has no customer-service window

    def __init__(
        self,
        *,
        agent_id: str,
        client_token: str,
        api_base_url: str,
        tokens: TokenProvider,
        timeout: float = 15.0,
    ) -> None:
        self.agent_id = agent_id
        self._client_token = client_token
        self._base = api_base_url.rstrip("/")
        self._tokens = tokens
        self._client = async_client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))

    @property
    def client_token(self) -> str:
        return self._client_token

    def verify_signature(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        header = next(
            (v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), None
        )
        return verify_rbm_signature(raw_body, header, self._client_token)

    def parse_delivery(self, raw_body: bytes) -> Delivery:
        return parse_rbm_delivery(raw_body, self.agent_id)

    def render(self, message: OutboundMessage) -> list[RenderedMessage]:
        return render_rcs(message)

    async def _post(
        self, path: str, params: dict[str, str], body: dict[str, Any]
    ) -> httpx.Response:
        token = await self._tokens.token()
        try:
            response = await self._client.post(
                f"{self._base}{path}",
                params=params,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.TimeoutException as exc:
            raise SendError(SendOutcome.RETRY, "timeout", type(exc).__name__) from None
        except httpx.TransportError as exc:
            raise SendError(SendOutcome.RETRY, "network", type(exc).__name__) from None
        if response.status_code == 401:
            self._tokens.invalidate()
        return response

    async def send(
        self, recipient: str, body: dict[str, Any], *, idempotency_key: str | None = None
    ) -> SendResult:
        message_id = message_id_for(idempotency_key)
        phone = normalize_phone(recipient)
        response = await self._post(
            f"/phones/{phone}/agentMessages",
            {"messageId": message_id, "agentId": self.agent_id},
            body,
        )
        if response.status_code == 409:
            # ALREADY_EXISTS: an earlier try of this very row was accepted (same messageId).
            return SendResult(external_id=message_id)
        if response.status_code // 100 != 2:
            raise classify_failure(response)
        return SendResult(external_id=message_id)

    async def mark_read(self, external_id: str, recipient: str | None = None) -> None:
        if not recipient:
            return
        phone = normalize_phone(recipient)
        for event in ({"eventType": "READ", "messageId": external_id}, {"eventType": "IS_TYPING"}):
            response = await self._post(
                f"/phones/{phone}/agentEvents",
                {"eventId": str(uuid.uuid4()), "agentId": self.agent_id},
                event,
            )
            if response.status_code // 100 != 2:
                raise classify_failure(response)

    async def aclose(self) -> None:
        await self._client.aclose()


def rcs_adapter_from_settings(
    settings: Settings, *, timeout: float = 15.0, sandbox_base_url: str | None = None
) -> RcsAdapter | None:
    """The RBM adapter the settings ask for: the real agent, the sandbox's, or none.

    With RCS_* unset and the sandbox on, RBM sends go to the sandbox's built-in sink at
    ``sandbox_base_url``. A configured agent without a usable service-account key stops
    start-up naming RCS_SERVICE_ACCOUNT_FILE.
    """
    if settings.rcs_enabled:
        key_file = settings.rcs_service_account_file
        if not key_file:
            raise SettingsError(
                "Invalid setting RCS_SERVICE_ACCOUNT_FILE: required when RCS_AGENT_ID and "
                "RCS_CLIENT_TOKEN are set"
            )
        try:
            tokens: TokenProvider = ServiceAccountTokens(key_file, timeout=timeout)
        except (OSError, ValueError) as exc:
            raise SettingsError(
                f"Invalid setting RCS_SERVICE_ACCOUNT_FILE: cannot read a service-account key "
                f"from '{key_file}' ({type(exc).__name__})"
            ) from None
        return RcsAdapter(
            agent_id=settings.rcs_agent_id or "",
            client_token=settings.rcs_client_token or "",
            api_base_url=settings.rcs_api_base_url or DEFAULT_RBM_BASE,
            tokens=tokens,
            timeout=timeout,
        )
    if settings.sandbox and sandbox_base_url:
        return RcsAdapter(
            agent_id=SANDBOX_RCS_AGENT_ID,
            client_token=SANDBOX_RCS_CLIENT_TOKEN,
            api_base_url=settings.rcs_api_base_url or sandbox_base_url,
            tokens=StaticToken(SANDBOX_RBM_TOKEN),
            timeout=timeout,
        )
    return None
