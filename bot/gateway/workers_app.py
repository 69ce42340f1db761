"""The workers' own process (``ACUERDO_WORKERS=separate``): the pipeline and the outbox.

The gateway's process then only takes requests, so a webhook's ack never waits for the GIL
behind the workers (docs/performance.md, part 5). This process serves, on loopback only,
``/healthz`` (alive; the supervisor's readiness probe), and behind the internal token
``/readyz`` (database, Rasa, action server, sending halts) and ``/metrics`` (the workers'
counters; Prometheus scrapes it beside the gateway's).

    uvicorn --factory bot.gateway.workers_app:workers_app_from_env --host 127.0.0.1 --port N

(:func:`command` builds that line; ``acuerdo up`` runs it.)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException

from bot.config import Settings, SettingsError, load_settings
from bot.conversation.tuning import Tuning
from bot.engine.action_server import bearer_matches
from bot.gateway.logging import configure_logging
from bot.gateway.routes import health
from bot.gateway.runtime import GatewayRuntime


def create_workers_app(settings: Settings, *, tuning: Tuning | None = None) -> FastAPI:
    """The workers' process for ``settings``; they start and stop with the app."""
    settings.require_live_secrets()  # it sends messages
    if not structlog.is_configured():
        configure_logging(os.environ.get("ACUERDO_LOG_LEVEL", "INFO"))
    runtime = GatewayRuntime(settings, tuning, role="workers")
    token = settings.resolved_internal_token()

    def internal_caller(authorization: Annotated[str | None, Header()] = None) -> None:
        if not bearer_matches(authorization, token):
            raise HTTPException(401, "unauthorized")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Acuerdo workers", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.runtime = runtime
    app.add_api_route("/healthz", health.healthz, methods=["GET"])
    guarded = APIRouter(dependencies=[Depends(internal_caller)])
    guarded.add_api_route("/readyz", health.readyz, methods=["GET"])
    guarded.add_api_route("/metrics", health.metrics, methods=["GET"])
    app.include_router(guarded)
    return app


def workers_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory bot.gateway.workers_app:workers_app_from_env``."""
    settings = load_settings()
    try:
        tuning = Tuning.from_env()
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return create_workers_app(settings, tuning=tuning)


def command(python: str, port: int) -> list[str]:
    """The workers' process's command line: on loopback, only the gateway and Prometheus
    on this machine ask it anything."""
    return [
        python,
        "-m",
        "uvicorn",
        "bot.gateway.workers_app:workers_app_from_env",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]  # fmt: skip
