"""Live updates (Server-Sent Events), the small JSON API and the static files of the console.

Each stream looks at the database every ``POLL_SECONDS`` and sends the re-rendered parts of
the page when something they show changed (a fingerprint of the rows). Streams end after
``STREAM_SECONDS``; the browser's EventSource reconnects by itself (sending the last event
id, so an unchanged page is not sent again), and a gateway shutdown never waits long.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from bot.console import pages
from bot.console.auth import CurrentUser, require_supervisor
from bot.console.rendering import HERE, fragment
from bot.console.service import Refused
from bot.gateway.deps import RowId, RuntimeDep

STATIC_FILES = {"console.css": "text/css", "console.js": "text/javascript"}
POLL_SECONDS = 0.5
STREAM_SECONDS = 10.0
PING_SECONDS = 5.0

router = APIRouter(prefix="/console", tags=["console"])


def _event(name: str, data: dict[str, Any], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _digest(fingerprint: tuple[Any, ...]) -> str:
    return hashlib.sha256(repr(fingerprint).encode()).hexdigest()[:16]


async def _stream(
    request: Request,
    fingerprint: Callable[[], tuple[Any, ...]],
    produce: Callable[[], tuple[str, dict[str, Any]] | None],
) -> AsyncIterator[str]:
    """Send ``produce()`` whenever ``fingerprint()`` changes, for STREAM_SECONDS."""
    yield "retry: 1000\n\n"
    last = request.headers.get("last-event-id")
    started = last_sent = time.monotonic()
    while time.monotonic() - started < STREAM_SECONDS:
        digest = _digest(await run_in_threadpool(fingerprint))
        if digest != last:
            produced = await run_in_threadpool(produce)
            if produced is None:
                yield _event("gone", {})
                return
            name, data = produced
            yield _event(name, data, digest)
            last, last_sent = digest, time.monotonic()
        elif time.monotonic() - last_sent >= PING_SECONDS:
            yield ": ping\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)


def _sse(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/events/queue")
async def queue_events(request: Request, agent: CurrentUser, runtime: RuntimeDep) -> Response:
    """The queue page's live table."""

    def produce() -> tuple[str, dict[str, Any]]:
        context = pages.queue_context(runtime, agent)
        return "queue", {"html": fragment("_queue.html", agent=agent, **context)}

    return _sse(_stream(request, lambda: pages.queue_fingerprint(runtime), produce))


@router.get("/events/supervision")
async def supervision_events(request: Request, agent: CurrentUser, runtime: RuntimeDep) -> Response:
    """The supervision page's live tables (supervisors only)."""
    require_supervisor(agent)

    def produce() -> tuple[str, dict[str, Any]]:
        context = pages.supervision_context(runtime)
        return "supervision", {"html": fragment("_supervision.html", agent=agent, **context)}

    return _sse(_stream(request, lambda: pages.queue_fingerprint(runtime), produce))


@router.get("/chats/{conversation_id}/events")
async def chat_events(
    conversation_id: RowId, request: Request, agent: CurrentUser, runtime: RuntimeDep
) -> Response:
    """The chat page's live transcript, debtor panel and notes."""
    try:
        await run_in_threadpool(pages.chat_context, runtime, agent, conversation_id)
    except Refused as refusal:
        return JSONResponse({"detail": refusal.reason}, status_code=refusal.status)

    def produce() -> tuple[str, dict[str, Any]] | None:
        _, context = pages.live_chat(runtime, agent, conversation_id)
        if context is None:
            return None
        return "chat", {
            "transcript": fragment("_transcript.html", **context),
            "ledger": fragment("_ledger.html", **context),
            "notes": fragment("_notes.html", **context),
            "state_key": context["state_key"],
            "window_open": context["window_open"],
        }

    return _sse(_stream(request, lambda: pages.chat_fingerprint(runtime, conversation_id), produce))


# -- JSON API -----------------------------------------------------------------------------
@router.get("/api/queue")
async def api_queue(agent: CurrentUser, runtime: RuntimeDep) -> JSONResponse:
    context = await run_in_threadpool(pages.queue_context, runtime, agent)
    return JSONResponse({key: [row.__dict__ for row in context[key]] for key in ("queued", "mine")})


@router.get("/api/chats/{conversation_id}")
async def api_chat(conversation_id: RowId, agent: CurrentUser, runtime: RuntimeDep) -> JSONResponse:
    try:
        context = await run_in_threadpool(pages.chat_context, runtime, agent, conversation_id)
    except Refused as refusal:
        return JSONResponse({"detail": refusal.reason}, status_code=refusal.status)
    return JSONResponse(
        {
            "conversation": context["conversation"],
            "window_open": context["window_open"],
            "messages": [
                {
                    "id": item.id,
                    "side": item.side,
                    "author": item.author,
                    "kind": item.kind,
                    "text": item.text,
                    "status": item.status,
                }
                for item in context["transcript"]
            ],
        }
    )


@router.get("/static/{filename}")
async def static_file(filename: str) -> Response:
    media_type = STATIC_FILES.get(filename)
    if media_type is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(HERE / "static" / filename, media_type=media_type)
