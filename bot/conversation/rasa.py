"""The Rasa servers' REST channel, seen from the gateway (``POST /webhooks/rest/webhook``).

One gateway may use several Rasa servers that share a tracker store and a lock store (the
scaled deployment in the README). Each sender has a preferred server (a stable hash), so
its turns go to one place while that server is up; a server that refuses connections or
dies mid-request is skipped for a few seconds and the turn goes to the next one at once.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
import structlog

from bot.outbound_http import async_client

log = structlog.get_logger("acuerdo.rasa")

# How long a server that refused a connection or died mid-request is passed over.
DOWN_SECONDS = 5.0
# Before a turn, a health check of the action server at most this old will do.
ACTIONS_FRESH_SECONDS = 1.0


class RasaUnavailable(RuntimeError):
    """Rasa or its action server cannot answer now; the message is retried later."""


class RasaRejected(RuntimeError):
    """Rasa refused the request itself (a 4xx): retrying the same request cannot help."""


class _ServerDown(Exception):
    """This server could not take the request (the turn never ran there): try another."""


class _SharedHealthCheck:
    """Health checks of the action server that concurrent turns share.

    A turn needs to know the action server answered a check *started* after some moment
    (the turn's end, say). One check in flight serves every turn whose moment it started
    after; a turn whose moment is later waits for it, then starts the next. Under load
    this is one request per batch of turns instead of two per turn.
    """

    def __init__(self, probe: Callable[[], Awaitable[bool]]) -> None:
        self._probe = probe
        self._last: tuple[float, bool] | None = None  # (started, answered) of the latest
        self._inflight: tuple[float, asyncio.Future[bool]] | None = None

    def _start(self) -> tuple[float, asyncio.Future[bool]]:
        started = time.monotonic()
        task = asyncio.ensure_future(self._probe())
        flight = (started, task)

        def landed(done: asyncio.Future[bool]) -> None:
            answered = not done.cancelled() and done.exception() is None and done.result()
            if self._last is None or self._last[0] <= started:
                self._last = (started, answered)
            if self._inflight is flight:
                self._inflight = None

        task.add_done_callback(landed)
        self._inflight = flight
        return flight

    async def answered_since(self, moment: float) -> bool:
        """Whether the action server answered a check started at or after ``moment``."""
        while True:
            if self._last is not None and self._last[0] >= moment:
                return self._last[1]
            flight = self._inflight
            if flight is None or flight[1].done():  # (landed, its callback not run yet)
                flight = self._start()
            answered = await asyncio.shield(flight[1])
            if flight[0] >= moment:
                return answered
            # That check began before our moment: the next one counts.


class RasaClient:
    """Sends one user message to a Rasa server and returns its responses."""

    def __init__(
        self,
        rasa_urls: str | Sequence[str],
        action_health_url: str | None,
        timeout: float,
        *,
        token: str | None = None,
    ) -> None:
        urls = [rasa_urls] if isinstance(rasa_urls, str) else list(rasa_urls)
        if not urls:
            raise ValueError("at least one Rasa server URL is needed")
        self.base_urls = [url.rstrip("/") for url in urls]
        self.action_health_url = action_health_url
        self._down_until = [0.0] * len(self.base_urls)
        # The internal token: a header for the REST channel (bot/rasa_channel.py), the
        # ``token`` parameter for Rasa's HTTP API (``rasa run --auth-token``).
        self._token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = async_client(timeout=httpx.Timeout(timeout, connect=5.0), headers=headers)
        self._actions_health = _SharedHealthCheck(self.actions_ready)

    def _order(self, sender: str) -> list[int]:
        """Server indexes to try for ``sender``: its preferred one first, ones marked down last."""
        count = len(self.base_urls)
        start = zlib.crc32(sender.encode()) % count
        order = [(start + step) % count for step in range(count)]
        now = time.monotonic()
        return [i for i in order if self._down_until[i] <= now] + [
            i for i in order if self._down_until[i] > now
        ]

    def _mark_down(self, index: int, reason: str) -> None:
        self._down_until[index] = time.monotonic() + DOWN_SECONDS
        log.warning("rasa.server_down", server=self.base_urls[index], reason=reason)

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
        """True when at least one Rasa server answers."""
        for base in self.base_urls:
            try:
                response = await self._client.get(base + "/", timeout=5.0)
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                return True
        return False

    async def _post_turn(self, index: int, body: dict[str, Any]) -> httpx.Response:
        url = f"{self.base_urls[index]}/webhooks/rest/webhook"
        try:
            return await self._client.post(url, json=body)
        except httpx.TimeoutException as exc:
            # The turn may still be running there: do not start it elsewhere too.
            raise RasaUnavailable(f"Rasa timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            # Refused, reset or cut mid-response: that process is gone or going. Rasa
            # saves a tracker only when the turn ends, so the turn can run elsewhere.
            self._mark_down(index, type(exc).__name__)
            raise _ServerDown(type(exc).__name__) from None

    async def send(
        self, sender: str, message: str, metadata: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Rasa's responses to ``message`` from ``sender``.

        The action server is checked before and after the turn: Rasa takes a message into
        the tracker and answers 200 even when an action could not run (it logs the error
        and goes on), so a turn during which the action server was down is retried. Before,
        a check up to ``ACTIONS_FRESH_SECONDS`` old will do; after, only one started once
        the turn had ended (concurrent turns share checks: ``_SharedHealthCheck``). A
        restarted action server needs seconds to come up, far longer than that.
        """
        if self.action_health_url is not None:
            fresh_from = time.monotonic() - ACTIONS_FRESH_SECONDS
            if not await self._actions_health.answered_since(fresh_from):
                raise RasaUnavailable("action server not reachable")
        body = {"sender": sender, "message": message, "metadata": metadata}
        response: httpx.Response | None = None
        reasons: list[str] = []
        for index in self._order(sender):
            try:
                response = await self._post_turn(index, body)
                break
            except _ServerDown as exc:
                reasons.append(str(exc))
        if response is None:
            raise RasaUnavailable(f"no Rasa server reachable ({', '.join(reasons)})")
        if response.status_code in (401, 403):
            # A token mismatch is a deployment fault: hold the message until it is fixed.
            log.error("rasa.unauthorized", status=response.status_code)
            raise RasaUnavailable(f"Rasa refused the internal token ({response.status_code})")
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
        ended = time.monotonic()
        if self.action_health_url is not None and not await self._actions_health.answered_since(
            ended
        ):
            raise RasaUnavailable("action server went away during the turn")
        return [item for item in data if isinstance(item, dict)]

    async def append_event(self, sender: str, event: str) -> None:
        """Append one bare event (``pause``, ``resume``) to ``sender``'s tracker.

        Uses the HTTP API of ``rasa run --enable-api``. A paused tracker makes Rasa ignore
        the sender's messages; the console pauses it while an agent holds the chat. The
        servers share their tracker store, so any server that answers will do.
        """
        failures: list[str] = []
        for index in self._order(sender):
            # The sender goes in raw: Rasa's route does not unquote it ("+52…" stays "+52…").
            url = f"{self.base_urls[index]}/conversations/{sender}/tracker/events"
            try:
                response = await self._client.post(
                    url, params=self._api_params(), json={"event": event}, timeout=10.0
                )
            except httpx.HTTPError as exc:
                failures.append(f"not reachable ({type(exc).__name__})")
                continue
            if response.status_code // 100 == 2:
                return
            failures.append(f"answered {response.status_code}")
        raise RasaUnavailable(f"Rasa {'; '.join(failures)} to a '{event}' event")

    def _api_params(self) -> dict[str, str]:
        params = {"include_events": "NONE"}
        if self._token:
            params["token"] = self._token
        return params

    async def aclose(self) -> None:
        await self._client.aclose()
