"""What one gateway process runs: channel adapters, the pipeline and outbox workers."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Literal

import httpx
import structlog
from sqlalchemy.orm import Session

from bot.channels.base import ChannelAdapter
from bot.channels.fallback import ChannelFallback
from bot.channels.rcs import SANDBOX_RBM_PATH, rcs_adapter_from_settings
from bot.channels.sms import sms_adapter_from_settings
from bot.channels.whatsapp import WhatsAppAdapter
from bot.compliance.outreach import release_scheduled
from bot.config import Settings
from bot.conversation.claims import Claim, recover_single_process
from bot.conversation.jobs import InboundJob, OutboundJob
from bot.conversation.outbox import Outbox
from bot.conversation.pipeline import Pipeline
from bot.conversation.rasa import RasaClient
from bot.conversation.reengagement import Reengagement
from bot.conversation.replies import load_replies
from bot.conversation.tuning import Tuning
from bot.conversation.worker import Worker
from bot.db.engine import session_factory
from bot.gateway.background_loop import BackgroundLoop
from bot.gateway.metrics import PrometheusObserver
from bot.gateway.wake import OUTBOX, PIPELINE, WakeListener, WakeSender
from bot.policy import load_policy

log = structlog.get_logger("acuerdo.gateway")

SQLITE_WORKER_THREADS = 2
DEFAULT_WORKER_THREADS = min(32, (os.cpu_count() or 1) + 4)  # asyncio's own default
DEFAULT_GRAPH_BASE = "https://graph.facebook.com"
SANDBOX_GRAPH_PATH = "/sandbox/graph"

# What a process runs: the routes and the workers ("all", ACUERDO_WORKERS=inline), the
# routes alone ("web", which wakes the workers' process), or the workers alone ("workers").
Role = Literal["all", "web", "workers"]


def graph_base_url(settings: Settings) -> str:
    """Where WhatsApp sends go: the Graph API, or in the sandbox the built-in sink."""
    if settings.sandbox and settings.whatsapp_api_base_url.startswith(DEFAULT_GRAPH_BASE):
        return f"http://127.0.0.1:{settings.port}{SANDBOX_GRAPH_PATH}"
    return settings.whatsapp_api_base_url


class GatewayRuntime:
    """Everything the routes and the workers share in one process."""

    def __init__(
        self, settings: Settings, tuning: Tuning | None = None, *, role: Role = "all"
    ) -> None:
        self.settings = settings
        self.role = role
        self.tuning = tuning or Tuning()
        self.db_url = settings.database_url
        self.sessions = session_factory(self.db_url)
        self.clock = settings.clock()
        self.policy = load_policy(settings.policy_file)
        self.replies = load_replies()
        self.observer = PrometheusObserver()
        self.whatsapp = WhatsAppAdapter(
            app_secret=settings.whatsapp_app_secret,
            access_token=settings.whatsapp_access_token,
            phone_number_id=settings.whatsapp_phone_number_id,
            api_base_url=graph_base_url(settings),
            timeout=self.tuning.send_timeout,
        )
        self.adapters: dict[str, ChannelAdapter] = {self.whatsapp.name: self.whatsapp}
        sandbox_sink = f"http://127.0.0.1:{settings.port}"
        for adapter in (
            rcs_adapter_from_settings(
                settings,
                timeout=self.tuning.send_timeout,
                sandbox_base_url=sandbox_sink + SANDBOX_RBM_PATH,
            ),
            sms_adapter_from_settings(settings, timeout=self.tuning.send_timeout),
        ):
            if adapter is not None:
                self.adapters[adapter.name] = adapter
        self.fallback = ChannelFallback(self.policy, self.clock, self.adapters.keys())
        self.rasa = RasaClient(
            settings.rasa_server_urls,
            f"{settings.action_base_url}/health",
            self.tuning.rasa_timeout,
            token=settings.resolved_internal_token(),
        )
        self.outbox = Outbox(
            db_url=self.db_url,
            clock=self.clock,
            policy=self.policy,
            adapters=self.adapters,
            tuning=self.tuning,
            observer=self.observer,
            wake=self.wake_outbox,
            on_undeliverable=self.fallback.on_undeliverable,
            invite=Reengagement(self.clock, self.policy, self.adapters).invite,
            release_due=self.release_scheduled,
        )
        self.pipeline = Pipeline(
            db_url=self.db_url,
            clock=self.clock,
            adapters=self.adapters,
            rasa=self.rasa,
            replies=self.replies,
            tuning=self.tuning,
            observer=self.observer,
            wake_outbox=self.wake_outbox,
        )
        # The workers run on their own loop, so a webhook's ack never waits behind them, and
        # their database work on few threads: SQLite takes one writer at a time anyway, and
        # every further thread is one more contender for the GIL the ack needs.
        threads = self.tuning.worker_threads or (
            SQLITE_WORKER_THREADS if self.db_url.startswith("sqlite") else DEFAULT_WORKER_THREADS
        )
        self.workers_loop = BackgroundLoop("acuerdo-workers", threads=threads)
        self._pipeline_worker: Worker[tuple[Claim, InboundJob]] | None = None
        self._outbox_worker: Worker[tuple[Claim, OutboundJob]] | None = None
        socket_path = settings.workers_wake_socket
        self._wake_sender = WakeSender(socket_path) if role == "web" else None
        self._wake_listener = (
            WakeListener(socket_path, {PIPELINE: self.wake_pipeline, OUTBOX: self.wake_outbox})
            if role == "workers"
            else None
        )

    @property
    def runs_workers(self) -> bool:
        return self.role != "web"

    async def workers_readiness(self) -> dict[str, object] | None:
        """In the web role, the workers' process's ``/readyz`` body; None if it does not
        answer (it is down, or it refused our token)."""
        answer = await self._ask_workers("/readyz")
        if answer is None or answer.status_code not in (200, 503):
            return None
        body: dict[str, object] = answer.json()
        return body

    async def workers_metrics(self) -> str | None:
        """In the web role, the workers' process's exposition text; None if it does not answer."""
        answer = await self._ask_workers("/metrics")
        if answer is None or answer.status_code != 200:
            return None
        return answer.text

    async def _ask_workers(self, path: str) -> httpx.Response | None:
        token = self.settings.resolved_internal_token()
        try:
            async with httpx.AsyncClient(timeout=self.tuning.readiness_timeout) as client:
                return await client.get(
                    f"{self.settings.workers_url}{path}",
                    headers={"Authorization": f"Bearer {token}"},
                )
        except httpx.HTTPError:
            return None

    def release_scheduled(self, session: Session) -> int:
        """The outbox's hook: company-started rows whose contact window opened."""
        return release_scheduled(session, self.clock, self.policy)

    def wake_pipeline(self) -> None:
        """New inbound work: the pipeline looks now (callable from any thread)."""
        if self._wake_sender is not None:
            self._wake_sender.wake(PIPELINE)
            return
        worker = self._pipeline_worker
        if worker is not None:
            self.workers_loop.call(worker.wake)

    def wake_outbox(self) -> None:
        """New outbound work: the outbox looks now (callable from any thread)."""
        if self._wake_sender is not None:
            self._wake_sender.wake(OUTBOX)
            return
        worker = self._outbox_worker
        if worker is not None:
            self.workers_loop.call(worker.wake)

    async def start(self) -> None:
        """Recover what a dead process left behind, then start both workers on their loop
        (in the web role, the workers' process does both)."""
        # Short GIL slices: the ack's store thread and the server's loop hand over sooner.
        sys.setswitchinterval(self.tuning.gil_switch_seconds)
        if not self.runs_workers:
            socket_path = str(self.settings.workers_wake_socket)
            log.info("gateway.workers_elsewhere", wake_socket=socket_path)
            return
        with self.sessions() as session:
            recovered = recover_single_process(session)
        if recovered:
            log.warning("gateway.recovered_claims", count=recovered)
        self.workers_loop.start()
        await self.workers_loop.run(self._start_workers())
        log.info("gateway.workers_started", sandbox=self.settings.sandbox, role=self.role)

    async def _start_workers(self) -> None:
        self._pipeline_worker = Worker(
            "pipeline",
            claim=self.pipeline.claim_loaded,
            handle=self.pipeline.process_loaded,
            next_due=self.pipeline.next_due,
            concurrency=self.tuning.pipeline_concurrency,
            poll_interval=self.tuning.poll_interval,
        )
        self._outbox_worker = Worker(
            "outbox",
            claim=self.outbox.claim_loaded,
            handle=self.outbox.deliver_loaded,
            next_due=self.outbox.next_due,
            concurrency=self.tuning.outbox_concurrency,
            poll_interval=self.tuning.poll_interval,
        )
        self._pipeline_worker.start()
        self._outbox_worker.start()
        if self._wake_listener is not None:
            self._wake_listener.start(asyncio.get_running_loop())

    async def stop(self) -> None:
        """Stop claiming, let work in flight finish briefly, close connections."""
        if self.workers_loop.running:
            await self.workers_loop.run(self._stop_workers())
        # Both loops' connection pools close here, the workers' on their own loop.
        for adapter in self.adapters.values():
            await adapter.aclose()
        await self.rasa.aclose()
        if self._wake_sender is not None:
            self._wake_sender.close()
        await self.workers_loop.stop()
        log.info("gateway.stopped")

    async def _stop_workers(self) -> None:
        if self._wake_listener is not None:
            self._wake_listener.stop(asyncio.get_running_loop())
        for worker in (self._pipeline_worker, self._outbox_worker):
            if worker is not None:
                await worker.stop()
        await self.pipeline.aclose()
