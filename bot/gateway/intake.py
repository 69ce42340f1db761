"""Receiving a channel webhook: size limit, signature, content type, parse, durable store.

Channel-agnostic: the adapter verifies and parses; the inbox stores. The answer goes out
only after the commit, and the workers are woken to process after it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.channels.base import ChannelAdapter, Delivery, InvalidDelivery
from bot.conversation.inbox import StoreResult, store_delivery
from bot.conversation.tuning import Tuning
from bot.db.sqlite_writes import urgent_writes
from bot.gateway.metrics import (
    DUPLICATES_IN,
    STATUSES,
    WEBHOOK_ACK_SECONDS,
    WEBHOOK_REJECTED,
    WEBHOOK_STORE_SECONDS,
)
from bot.gateway.runtime import GatewayRuntime

log = structlog.get_logger("acuerdo.webhook")


# Every request body but a channel webhook's is small: console forms, sign-in, the sandbox's
# JSON API, payment-provider webhooks. Channel webhooks get ``Tuning.max_body_bytes``.
MAX_BODY_BYTES = 64 * 1024
CHANNEL_WEBHOOK_PATHS = ("/webhooks/whatsapp", "/webhooks/rcs")


class BodyTooLarge(HTTPException):
    """A body over its limit: 413, from the middleware or from :func:`read_body`."""

    def __init__(self) -> None:
        super().__init__(413, "body too large")


class BodyLimitMiddleware:
    """413 for any request body over the limit of its path, before the route runs.

    A declared ``Content-Length`` over the limit is refused without reading a byte; a body
    without one (chunked) is read up to the limit and refused at the first byte past it, or
    handed on whole. ``limits`` maps path prefixes to byte limits (the longest prefix wins);
    any other path gets ``default``.
    """

    def __init__(self, app: ASGIApp, *, limits: Mapping[str, int], default: int) -> None:
        self.app = app
        self.limits = sorted(limits.items(), key=lambda item: len(item[0]), reverse=True)
        self.default = default

    def limit_for(self, path: str) -> int:
        """The body limit, in bytes, of requests to ``path``."""
        matches = (limit for prefix, limit in self.limits if path.startswith(prefix))
        return next(matches, self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        headers = {key.lower(): value for key, value in scope["headers"]}
        declared = headers.get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > limit:
                await self._refuse(scope, send, limit)
                return
            await self.app(scope, receive, send)
            return
        if b"transfer-encoding" not in headers:  # no body at all
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        log.warning("request.body_too_large", path=scope["path"][:100], limit=limit)
        response = JSONResponse({"detail": "body too large"}, status_code=413)
        response.headers["connection"] = "close"
        await response(scope, _no_body, send)


def body_limits(tuning: Tuning) -> dict[str, int]:
    """The per-path limits of :class:`BodyLimitMiddleware`: channel webhooks get the tuning's."""
    return dict.fromkeys(CHANNEL_WEBHOOK_PATHS, tuning.max_body_bytes)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the already-read body once, then waits as the original does."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (before reading it all) anything over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def refuse(
    endpoint: str, status: int, reason: str, extra: dict[str, int] | None = None
) -> JSONResponse:
    """A short 4xx answer, counted and logged."""
    WEBHOOK_REJECTED.labels(endpoint, str(status)).inc()
    log.warning("webhook.refused", endpoint=endpoint, status=status, reason=reason)
    return JSONResponse({"detail": reason, **(extra or {})}, status_code=status)


def is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _store(runtime: GatewayRuntime, delivery: Delivery) -> StoreResult:
    # Someone waits for this write (Meta retries a slow ack); the workers' writes can wait.
    with urgent_writes(), runtime.sessions() as session:
        return store_delivery(
            session,
            runtime.clock,
            delivery,
            policy=runtime.policy,
            on_window_closed=runtime.outbox.hold_in_session,
            on_undeliverable=runtime.fallback.on_undeliverable,
        )


async def receive_delivery(
    runtime: GatewayRuntime, adapter: ChannelAdapter, request: Request, raw: bytes | None = None
) -> JSONResponse:
    """Handle one webhook call of ``adapter``'s channel (``raw``: the body, if already read)."""
    started = time.perf_counter()
    try:
        return await _receive(runtime, adapter, request, raw)
    finally:
        WEBHOOK_ACK_SECONDS.labels(adapter.name).observe(time.perf_counter() - started)


async def _receive(
    runtime: GatewayRuntime, adapter: ChannelAdapter, request: Request, raw: bytes | None
) -> JSONResponse:
    endpoint = f"/webhooks/{adapter.name}"
    if raw is None:
        try:
            raw = await read_body(request, runtime.tuning.max_body_bytes)
        except BodyTooLarge:
            return refuse(endpoint, 413, "body too large")
    if not adapter.verify_signature(request.headers, raw):
        return refuse(endpoint, 401, "missing or invalid signature")
    if not is_json(request):
        return refuse(endpoint, 415, "content type must be application/json")
    try:
        delivery = adapter.parse_delivery(raw)
    except InvalidDelivery as exc:
        return refuse(endpoint, 400, exc.reason)
    store_started = time.perf_counter()
    try:
        result = await run_in_threadpool(_store, runtime, delivery)
    except SQLAlchemyError:
        log.exception("webhook.store_failed", endpoint=endpoint)
        return JSONResponse({"detail": "storage unavailable, retry later"}, status_code=503)
    WEBHOOK_STORE_SECONDS.labels(adapter.name).observe(time.perf_counter() - store_started)
    for kind in result.stored_kinds:
        runtime.observer.inbound(adapter.name, kind)
    if result.duplicates:
        DUPLICATES_IN.labels(adapter.name).inc(result.duplicates)
    for status in delivery.statuses:
        STATUSES.labels(adapter.name, status.status).inc()
    if result.stored:
        runtime.wake_pipeline()
    if result.released or result.statuses:
        runtime.wake_outbox()
    summary = {
        "stored": result.stored,
        "duplicates": result.duplicates,
        "statuses": result.statuses,
        "parked": result.parked,
        "ignored": delivery.ignored,
    }
    if delivery.rejected:
        reason = "; ".join(sorted(set(delivery.rejected)))[:300]
        return refuse(endpoint, 422, reason, summary)
    return JSONResponse(summary)
