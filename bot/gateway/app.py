"""The FastAPI application: ``create_app(settings)``; workers run inside its lifespan, or
with ``ACUERDO_WORKERS=separate`` in their own process (``bot.gateway.workers_app``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from bot import console
from bot.config import Settings, SettingsError, load_settings
from bot.console.signin_guard import SignInGuard
from bot.conversation.tuning import Tuning
from bot.dashboard import routes as dashboard_routes
from bot.gateway.intake import MAX_BODY_BYTES, BodyLimitMiddleware, body_limits
from bot.gateway.logging import configure_logging
from bot.gateway.routes import constancias, health, payments, rcs, sandbox, whatsapp
from bot.gateway.runtime import GatewayRuntime

STATIC_DIR = Path(__file__).with_name("static")


def create_app(
    settings: Settings, *, tuning: Tuning | None = None, campaign_interval: float | None = None
) -> FastAPI:
    """The gateway for ``settings``; background workers start and stop with the app.

    With ``campaign_interval`` (seconds) the reminder campaign runs at start-up and then
    at that interval (``acuerdo up`` sets it from ``ACUERDO_CAMPAIGN_MINUTES``).
    """
    from bot.campaigns.scheduler import CampaignScheduler

    settings.require_live_secrets()  # no webhook is taken with a missing or public secret
    if not structlog.is_configured():
        configure_logging(os.environ.get("ACUERDO_LOG_LEVEL", "INFO"))
    runtime = GatewayRuntime(settings, tuning, role="web" if settings.separate_workers else "all")
    scheduler = CampaignScheduler(runtime, campaign_interval) if campaign_interval else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                await scheduler.stop()
            await runtime.stop()

    app = FastAPI(
        title="Acuerdo gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(
        BodyLimitMiddleware, limits=body_limits(runtime.tuning), default=MAX_BODY_BYTES
    )
    if settings.trusted_proxy_list:
        # Only these peers may name the client in X-Forwarded-For (uvicorn itself is started
        # with --no-proxy-headers, so nobody else can).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
    app.state.runtime = runtime
    app.state.console_sign_in = SignInGuard(settings)
    app.state.campaign_scheduler = scheduler
    app.include_router(whatsapp.router)
    app.include_router(rcs.router)
    app.include_router(payments.router)
    app.include_router(constancias.router)
    app.include_router(health.router)
    app.include_router(console.router)
    app.include_router(dashboard_routes.router)
    if settings.sandbox:
        app.include_router(sandbox.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory bot.gateway.app:app_from_env`` (settings from env)."""
    from bot.campaigns.scheduler import interval_from_env

    settings = load_settings()
    try:
        tuning = Tuning.from_env()
        campaign_interval = interval_from_env()
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return create_app(settings, tuning=tuning, campaign_interval=campaign_interval)
