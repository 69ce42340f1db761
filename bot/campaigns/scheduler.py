"""The campaign on a schedule inside the gateway: once at start-up, then every hour.

``acuerdo up`` turns it on (``ACUERDO_CAMPAIGN_MINUTES``, default 60; 0 turns it off).
Each run is the same as ``acuerdo campaign run``; the unique key per account, step and
day makes the hourly repetition harmless, and it is what sends a reminder delayed at
21:30 once the window opens in the morning. Several gateway processes on one database may
each run it: a step still goes out once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING

import structlog

from bot.campaigns.compose import PaymentLinks
from bot.campaigns.runner import CampaignContext, CampaignReport, run_campaign
from bot.payments import get_provider

if TYPE_CHECKING:
    from bot.gateway.runtime import GatewayRuntime

log = structlog.get_logger("acuerdo.campaigns")

INTERVAL_VARIABLE = "ACUERDO_CAMPAIGN_MINUTES"
DEFAULT_MINUTES = 60.0


def campaign_context(runtime: GatewayRuntime) -> CampaignContext:
    """The campaign's view of a gateway runtime (its clock, policy and channel adapters)."""
    return CampaignContext(
        clock=runtime.clock,
        policy=runtime.policy,
        adapters=runtime.adapters,
        links=PaymentLinks(get_provider(runtime.settings), runtime.settings.public_url),
    )


def interval_from_env(environ: dict[str, str] | None = None) -> float | None:
    """Seconds between runs from ``ACUERDO_CAMPAIGN_MINUTES`` (None: off); ValueError names
    the variable when it is not a number."""
    raw = (environ if environ is not None else dict(os.environ)).get(INTERVAL_VARIABLE)
    if raw is None or not raw.strip():
        return DEFAULT_MINUTES * 60
    try:
        minutes = float(raw)
    except ValueError:
        raise ValueError(
            f"{INTERVAL_VARIABLE}={raw!r} is not a number of minutes (0 turns it off)"
        ) from None
    if minutes < 0:
        raise ValueError(f"{INTERVAL_VARIABLE} must be 0 (off) or more minutes")
    return minutes * 60 if minutes > 0 else None


class CampaignScheduler:
    """Runs the campaign in a worker thread every ``interval`` seconds until stopped."""

    def __init__(self, runtime: GatewayRuntime, interval: float) -> None:
        self._runtime = runtime
        self._interval = interval
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.runs = 0

    def _run_once(self) -> CampaignReport:
        with self._runtime.sessions() as session:
            return run_campaign(session, campaign_context(self._runtime))

    async def run_now(self) -> CampaignReport:
        """One run; the outbox is woken when something was queued."""
        report = await asyncio.to_thread(self._run_once)
        self.runs += 1
        if report.queued:
            self._runtime.wake_outbox()
        return report

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_now()
            except Exception:  # a failed run is logged and retried at the next tick
                log.exception("campaign.run_failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="campaign-scheduler")
        log.info("campaign.scheduler_started", every_minutes=round(self._interval / 60, 2))

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
