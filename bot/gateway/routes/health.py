"""``/healthz`` (alive), ``/readyz`` (database, Rasa, action server), ``/metrics``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from bot.conversation.claims import queue_depths
from bot.gateway.deps import RuntimeDep
from bot.gateway.metrics import WORKERS_SCRAPED, merge_expositions, render_metrics
from bot.gateway.routes.schemas import json_answer, text_answer

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _database_ok(runtime: RuntimeDep) -> bool:
    try:
        with runtime.sessions() as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@router.get("/readyz", responses={503: json_answer("Something the gateway needs is down")})
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """200 when the database, the Rasa server and the action server all answer; else 503."""
    database, rasa, actions = await asyncio.gather(
        asyncio.to_thread(_database_ok, runtime),
        runtime.rasa.rasa_ready(),
        runtime.rasa.actions_ready(),
    )
    checks = {"database": database, "rasa": rasa, "action_server": actions}
    halts: dict[str, str] = {}
    if runtime.runs_workers:
        # Which channel and when, not why: the channel's error text stays in the log
        # (``outbox.halted``), not on an endpoint that strangers can read.
        halts = {
            channel: until.isoformat()
            for channel, until in sorted(runtime.outbox.halts.active().items())
        }
    else:  # the workers run (and halt sending) in their own process
        workers = await runtime.workers_readiness()
        checks["workers"] = workers is not None and workers.get("status") == "ready"
        reported = (workers or {}).get("sending_halted_until")
        if isinstance(reported, dict):
            halts = {str(channel): str(until) for channel, until in reported.items()}
    body: dict[str, object] = {
        "status": "ready" if all(checks.values()) else "not ready",
        "checks": checks,
    }
    if halts:
        body["sending_halted_until"] = halts
    return JSONResponse(body, status_code=200 if all(checks.values()) else 503)


def _depths(runtime: RuntimeDep) -> dict[str, int]:
    with runtime.sessions() as session:
        return queue_depths(session)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: text_answer("Prometheus exposition format")},
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus exposition format."""
    try:
        depths = await asyncio.to_thread(_depths, runtime)
    except Exception:
        depths = {}
    workers = None
    if not runtime.runs_workers:  # the pipeline's and the outbox's counters are theirs
        workers = await runtime.workers_metrics()
        WORKERS_SCRAPED.set(1 if workers is not None else 0)
    payload, content_type = render_metrics(depths)
    if workers is not None:
        payload = merge_expositions(payload, workers)
    return Response(payload, media_type=content_type)
