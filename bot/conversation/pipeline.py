"""The pipeline: stored inbound messages → Rasa (or a fixed reply) → outbox rows.

Runs after the webhook has answered. Per conversation, messages are handled strictly in
arrival order and one at a time (see :mod:`bot.conversation.claims`). A Rasa or
action-server outage puts the message back with a back-off: it is never dropped, and its
replies are written in the same transaction that marks it done, so they exist once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from bot.channels.base import (
    CONVERSATIONAL_KINDS,
    EVIDENCE_KINDS,
    RESUME_PAYLOAD,
    ChannelAdapter,
    InboundKind,
    OutboundMessage,
    RenderedMessage,
)
from bot.clock import Clock
from bot.conversation.claims import (
    INBOUND_UNFINISHED,
    Claim,
    InboundStatus,
    claim_rows,
    earliest_due,
    fenced_update,
    persist_patiently,
    release_after,
)
from bot.conversation.jobs import InboundJob, load_inbound_job
from bot.conversation.observer import NullObserver, Observer
from bot.conversation.outbox import enqueue
from bot.conversation.rasa import RasaClient, RasaRejected, RasaUnavailable
from bot.conversation.rate_limit import RATE_LIMITED
from bot.conversation.replies import Replies
from bot.conversation.responses import outbound_from_rasa
from bot.conversation.tuning import Tuning
from bot.db.engine import session_factory
from bot.db.models import Conversation, Direction
from bot.domain.audit import record_audit
from bot.domain.phones import mask_phone

log = structlog.get_logger("acuerdo.pipeline")

# A turn that produced no reply is tried this many times before silence is accepted.
EMPTY_TURN_ATTEMPTS = 3


class Pipeline:
    """Processes claimed inbound messages."""

    def __init__(
        self,
        *,
        db_url: str,
        clock: Clock,
        adapters: Mapping[str, ChannelAdapter],
        rasa: RasaClient,
        replies: Replies,
        tuning: Tuning,
        observer: Observer | None = None,
        wake_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = session_factory(db_url)
        self._clock = clock
        self._adapters = adapters
        self._rasa = rasa
        self._replies = replies
        self._tuning = tuning
        self._observer = observer or NullObserver()
        self._wake_outbox = wake_outbox
        self._background: set[asyncio.Task[None]] = set()

    # -- claiming (worker thread) ---------------------------------------------------------
    def claim(self, limit: int) -> list[Claim]:
        with self._sessions() as session:
            return claim_rows(
                session,
                direction=Direction.IN.value,
                unfinished=INBOUND_UNFINISHED,
                claimed_status=InboundStatus.PROCESSING,
                lease=timedelta(seconds=self._tuning.lease_seconds),
                limit=limit,
            )

    def claim_loaded(self, limit: int) -> list[tuple[Claim, InboundJob]]:
        """:meth:`claim`, each claim loaded at once in the same thread and session.

        What the worker calls: a load of its own per message cost another thread hand-off
        and session (docs/performance.md, part 6). The load reads only, after the claim's
        commit, so the write lock is held no longer than the claim's.
        """
        claims = self.claim(limit)
        if not claims:
            return []
        with self._sessions() as session:
            loaded = [(claim, self._load_in(session, claim)) for claim in claims]
        return [(claim, job) for claim, job in loaded if job is not None]

    def next_due(self) -> datetime | None:
        with self._sessions() as session:
            return earliest_due(session, Direction.IN.value, INBOUND_UNFINISHED)

    # -- database steps (worker threads) --------------------------------------------------
    def _load(self, claim: Claim) -> InboundJob | None:
        with self._sessions() as session:
            return self._load_in(session, claim)

    def _load_in(self, session: Session, claim: Claim) -> InboundJob | None:
        return load_inbound_job(
            session,
            claim,
            rate_limit_messages=self._tuning.rate_limit_messages,
            rate_limit_seconds=self._tuning.rate_limit_seconds,
        )

    def _complete(
        self,
        claim: Claim,
        job: InboundJob,
        status: str,
        rendered: list[RenderedMessage],
        *,
        error: str | None = None,
    ) -> bool:
        """Mark the message handled and queue its replies, atomically, if still ours."""
        with self._sessions() as session:
            done = fenced_update(
                session,
                claim,
                InboundStatus.PROCESSING,
                {
                    "status": status,
                    "next_attempt_at": None,
                    "error_code": error,
                    "updated_at": self._clock.now_utc(),
                },
            )
            if not done:
                session.rollback()
                log.warning("pipeline.lease_lost", message_id=job.message_id)
                return False
            for item in rendered:
                enqueue(
                    session,
                    self._clock,
                    conversation_id=job.conversation_id,
                    channel=job.channel,
                    rendered=item,
                    extra={"in_reply_to": job.message_id},
                )
            if job.kind in {k.value for k in EVIDENCE_KINDS}:
                conversation = session.get(Conversation, job.conversation_id)
                record_audit(
                    session,
                    self._clock,
                    actor="debtor",
                    action="evidence_received",
                    account_id=conversation.account_id if conversation else None,
                    conversation_id=job.conversation_id,
                    message_id=job.message_id,
                    kind=job.kind,
                )
            if error == RATE_LIMITED and job.rate.notice:
                conversation = session.get(Conversation, job.conversation_id)
                record_audit(
                    session,
                    self._clock,
                    actor="system",
                    action="rate_limited",
                    account_id=conversation.account_id if conversation else None,
                    conversation_id=job.conversation_id,
                    message_id=job.message_id,
                    limit=self._tuning.rate_limit_messages,
                    window_seconds=self._tuning.rate_limit_seconds,
                )
            session.commit()
        return True

    def _release(self, claim: Claim, delay: float, error: str) -> None:
        with self._sessions() as session:
            release_after(
                session, claim, InboundStatus.PROCESSING, InboundStatus.PENDING, delay, error
            )

    # -- processing ---------------------------------------------------------------------
    def _rasa_message(self, job: InboundJob) -> str | None:
        """What Rasa should read: a tapped option's payload, a menu number's payload, text."""
        if job.kind == InboundKind.BUTTON.value:
            message = job.reply_id or job.text
        else:
            message = (job.text or "").strip()
            if message.isdigit() and job.menu and 1 <= int(message) <= len(job.menu):
                message = job.menu[int(message) - 1]
        if message == RESUME_PAYLOAD:
            return None  # only reopens the window; the held messages are on their way
        return message or None

    def _mark_read(self, adapter: ChannelAdapter, job: InboundJob) -> None:
        if not job.external_id:
            return

        async def _mark() -> None:
            try:
                await adapter.mark_read(job.external_id or "", job.sender)
            except Exception as exc:  # best effort: a missing blue tick is no failure
                log.info("pipeline.mark_read_failed", error=type(exc).__name__)

        task = asyncio.create_task(_mark())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _responses(
        self, claim: Claim, job: InboundJob, adapter: ChannelAdapter
    ) -> list[OutboundMessage] | None:
        """The replies to ``job`` (None: released for a retry)."""
        kind = InboundKind(job.kind) if job.kind in InboundKind._value2member_map_ else None
        if kind in CONVERSATIONAL_KINDS:
            message = self._rasa_message(job)
            if message is None:
                return []
            self._mark_read(adapter, job)
            metadata: dict[str, Any] = {
                "channel": job.channel,
                "phone": job.sender,
                "profile_name": job.profile_name,
                "conversation_id": job.conversation_id,
                "message_id": job.message_id,
            }
            try:
                items = await self._rasa.send(job.sender, message, metadata)
                if not items and claim.attempts < EMPTY_TURN_ATTEMPTS:
                    # The assistant answers every message; Rasa answers 200 with nothing
                    # when an action could not run (the action server restarting, say).
                    raise RasaUnavailable("Rasa answered nothing")
            except RasaUnavailable as exc:
                delay = self._tuning.backoff(claim.attempts)
                log.warning(
                    "pipeline.rasa_unavailable",
                    reason=str(exc),
                    retry_in=round(delay, 3),
                    message_id=job.message_id,
                    attempt=claim.attempts,
                )
                await asyncio.to_thread(self._release, claim, delay, "rasa_unavailable")
                return None
            return outbound_from_rasa(items, self._replies, self._clock)
        if kind in EVIDENCE_KINDS:
            self._mark_read(adapter, job)
            return [OutboundMessage(text=self._replies.evidence_received)]
        if kind == InboundKind.SYSTEM or (kind == InboundKind.REACTION and not job.emoji):
            return []  # a number change, a reaction removed: nothing to say
        self._mark_read(adapter, job)
        return [OutboundMessage(text=self._replies.unsupported)]

    async def _throttle(
        self, claim: Claim, job: InboundJob, adapter: ChannelAdapter, context: dict[str, Any]
    ) -> None:
        """Finish a message of a flood without Rasa; the first of a flood gets the notice."""
        notice = OutboundMessage(text=self._replies.rate_limited)
        rendered = adapter.render(notice) if job.rate.notice else []
        done = await asyncio.to_thread(
            self._complete, claim, job, InboundStatus.SKIPPED, rendered, error=RATE_LIMITED
        )
        if done and job.rate.notice:
            log.warning("pipeline.rate_limited", notice=True, **context)
            self._wake_outbox()
        elif done:
            log.info("pipeline.rate_limited", notice=False, **context)

    async def process(self, claim: Claim) -> None:
        """Handle one claimed inbound message."""
        started = time.monotonic()
        job = await asyncio.to_thread(self._load, claim)
        if job is not None:
            await self._answer(claim, job, started)

    async def process_loaded(self, loaded: tuple[Claim, InboundJob]) -> None:
        """Handle one message :meth:`claim_loaded` returned."""
        await self._answer(*loaded, time.monotonic())

    async def _answer(self, claim: Claim, job: InboundJob, started: float) -> None:
        adapter = self._adapters.get(job.channel)
        context = {
            "message_id": job.message_id,
            "conversation_id": job.conversation_id,
            "sender": mask_phone(job.sender),
            "kind": job.kind,
        }
        try:
            if adapter is not None and job.stop_request:
                # Before any skip (an agent holding the chat, a flood): the opt-out was
                # recorded with the message; say so once, without Rasa.
                confirmation = adapter.render(OutboundMessage(text=self._replies.opt_out_confirmed))
                await asyncio.to_thread(
                    self._complete, claim, job, InboundStatus.DONE, confirmation
                )
                log.info("pipeline.opt_out_confirmed", **context)
                self._observer.processed(time.monotonic() - started, "done")
                self._wake_outbox()
                return
            if adapter is None or job.agent_holds:
                status = InboundStatus.SKIPPED if adapter else InboundStatus.FAILED
                await asyncio.to_thread(self._complete, claim, job, status, [])
                log.info(
                    "pipeline.not_answered", reason="agent" if adapter else "no_adapter", **context
                )
                return
            if job.rate.limited:
                await self._throttle(claim, job, adapter, context)
                self._observer.processed(time.monotonic() - started, RATE_LIMITED)
                return
            responses = await self._responses(claim, job, adapter)
            if responses is None:
                self._observer.processed(time.monotonic() - started, "retry")
                return
            rendered = [item for response in responses for item in adapter.render(response)]
            # Rasa has taken the turn: keep its replies through a database restart rather
            # than have the message run through Rasa again when the lease runs out.
            done = await persist_patiently(
                self._complete,
                claim,
                job,
                InboundStatus.DONE,
                rendered,
                budget=self._tuning.lease_seconds / 2,
                what="pipeline.complete",
            )
        except RasaRejected as exc:
            log.error("pipeline.rasa_rejected", reason=str(exc), **context)
            await asyncio.to_thread(
                self._complete, claim, job, InboundStatus.FAILED, [], error="rasa_rejected"
            )
            self._observer.processed(time.monotonic() - started, "failed")
            return
        except Exception:
            log.exception("pipeline.error", attempt=claim.attempts, **context)
            if claim.attempts >= self._tuning.max_processing_errors:
                await asyncio.to_thread(
                    self._complete, claim, job, InboundStatus.FAILED, [], error="error"
                )
            else:
                delay = self._tuning.backoff(claim.attempts)
                await asyncio.to_thread(self._release, claim, delay, "error")
            self._observer.processed(time.monotonic() - started, "error")
            return
        self._observer.processed(time.monotonic() - started, "done")
        if done:
            log.info("pipeline.answered", replies=len(rendered), **context)
            self._wake_outbox()

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
