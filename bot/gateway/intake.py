"""Receiving a channel webhook: size limit, signature, content type, parse, durable store.

Channel-agnostic: the adapter verifies and parses; the inbox stores. The answer goes out
only after the commit, and the workers are woken to process after it.
"""

from __future__ import annotations

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from bot.channels.base import ChannelAdapter, Delivery, InvalidDelivery
from bot.conversation.inbox import StoreResult, store_delivery
from bot.gateway.metrics import DUPLICATES_IN, STATUSES, WEBHOOK_REJECTED
from bot.gateway.runtime import GatewayRuntime

log = structlog.get_logger("acuerdo.webhook")


class BodyTooLarge(Exception):
    pass


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
    with runtime.sessions() as session:
        return store_delivery(
            session,
            runtime.clock,
            delivery,
            on_window_closed=runtime.outbox.hold_in_session,
            on_undeliverable=runtime.fallback.on_undeliverable,
        )


async def receive_delivery(
    runtime: GatewayRuntime, adapter: ChannelAdapter, request: Request, raw: bytes | None = None
) -> JSONResponse:
    """Handle one webhook call of ``adapter``'s channel (``raw``: the body, if already read)."""
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
    try:
        result = await run_in_threadpool(_store, runtime, delivery)
    except SQLAlchemyError:
        log.exception("webhook.store_failed", endpoint=endpoint)
        return JSONResponse({"detail": "storage unavailable, retry later"}, status_code=503)
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
        "ignored": delivery.ignored,
    }
    if delivery.rejected:
        reason = "; ".join(sorted(set(delivery.rejected)))[:300]
        return refuse(endpoint, 422, reason, summary)
    return JSONResponse(summary)
