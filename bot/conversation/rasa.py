"""The Rasa server's REST channel, seen from the gateway (``POST /webhooks/rest/webhook``)."""

from __future__ import annotations

from typing import Any

import httpx


class RasaUnavailable(RuntimeError):
    """Rasa or its action server cannot answer now; the message is retried later."""


class RasaRejected(RuntimeError):
    """Rasa refused the request itself (a 4xx): retrying the same request cannot help."""


class RasaClient:
    """Sends one user message and returns Rasa's responses."""

    def __init__(self, rasa_url: str, action_health_url: str | None, timeout: float) -> None:
        self.webhook_url = f"{rasa_url.rstrip('/')}/webhooks/rest/webhook"
        self.status_url = rasa_url.rstrip("/") + "/"
        self.action_health_url = action_health_url
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0))

    async def actions_ready(self) -> bool:
        """True when the action server answers its health check (or none is configured)."""
        if self.action_health_url is None:
            return True
        try:
            response = await self._client.get(self.action_health_url, timeout=5.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def rasa_ready(self) -> bool:
        try:
            response = await self._client.get(self.status_url, timeout=5.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def send(
        self, sender: str, message: str, metadata: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Rasa's responses to ``message`` from ``sender``.

        The action server is checked first: when it is down, Rasa would still take the
        message into the tracker but answer nothing, and a retry would then repeat it.
        """
        if not await self.actions_ready():
            raise RasaUnavailable("action server not reachable")
        try:
            response = await self._client.post(
                self.webhook_url,
                json={"sender": sender, "message": message, "metadata": metadata},
            )
        except httpx.TimeoutException as exc:
            raise RasaUnavailable(f"Rasa timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise RasaUnavailable(f"Rasa not reachable ({type(exc).__name__})") from None
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise RasaUnavailable(f"Rasa answered {response.status_code}")
        if response.status_code // 100 != 2:
            raise RasaRejected(f"Rasa answered {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise RasaUnavailable("Rasa answered something that is not JSON") from None
        if not isinstance(data, list):
            raise RasaUnavailable("Rasa answered JSON that is not a list")
        return [item for item in data if isinstance(item, dict)]

    async def append_event(self, sender: str, event: str) -> None:
        """Append one bare event (``pause``, ``resume``) to ``sender``'s tracker.

        Uses the HTTP API of ``rasa run --enable-api``. A paused tracker makes Rasa ignore
        the sender's messages; the console pauses it while an agent holds the chat.
        """
        # The sender goes in raw: Rasa's route does not unquote it ("+52…" stays "+52…").
        url = f"{self.status_url}conversations/{sender}/tracker/events"
        try:
            response = await self._client.post(
                url, params={"include_events": "NONE"}, json={"event": event}, timeout=10.0
            )
        except httpx.HTTPError as exc:
            raise RasaUnavailable(f"Rasa not reachable ({type(exc).__name__})") from None
        if response.status_code // 100 != 2:
            raise RasaUnavailable(f"Rasa answered {response.status_code} to a '{event}' event")

    async def aclose(self) -> None:
        await self._client.aclose()
