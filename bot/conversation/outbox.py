"""The outbox: every bot message is a row first, then a send through its channel adapter.

A row survives a crash; sends are retried with exponential back-off and jitter on rate
limits, server errors and timeouts; each failure kind is handled as the adapter classifies
it (:class:`SendOutcome`). Outside a channel's service window only templates go out: a
free-form message is *held* and the ``invite`` hook queues one re-engagement template
(:mod:`bot.conversation.reengagement`, through the compliance door); the held messages go
out when the person writes again. Rows the door *scheduled* (outside contact hours) are
handed to the ``release_due`` hook as the outbox claims, which asks the gate again.

Only :func:`enqueue` adds rows; who may call it is pinned by
``tests/test_hostile_one_door.py`` (company-started messages go through
:func:`bot.compliance.outreach.queue_company_message`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.channels.base import (
    ChannelAdapter,
    RenderedMessage,
    SendError,
    SendOutcome,
)
from bot.clock import Clock
from bot.conversation.claims import (
    OUTBOUND_UNFINISHED,
    Claim,
    OutboundStatus,
    claim_rows,
    earliest_due,
    fenced,
    fenced_update,
    persist_patiently,
    release_after,
    scheduling_now,
)
from bot.conversation.halts import ChannelHalts
from bot.conversation.inbox import apply_early_statuses
from bot.conversation.jobs import OutboundJob, load_outbound_job
from bot.conversation.observer import NullObserver, Observer
from bot.conversation.tuning import Tuning
from bot.db.engine import session_factory
from bot.db.models import Conversation, Direction, Message
from bot.domain.audit import record_audit
from bot.domain.phones import mask_phone
from bot.policy import Policy

log = structlog.get_logger("acuerdo.outbox")

# How often a claiming outbox looks for parked receipts whose send got recorded.
EARLY_STATUS_SWEEP_SECONDS = 5.0

# Called, inside the transaction that marks an outbound row failed, when its channel says it
# can never be delivered (the fallback marks the contact point and queues the next channel).
UndeliverableHandler = Callable[[Session, Message], None]
# Called, in the transaction that holds a row for the closed service window: invite the
# person back (the re-engagement template, through the compliance door).
InviteHandler = Callable[[Session, Message], None]
# Called as the outbox claims: release the scheduled rows that are due; the caller commits.
ReleaseHandler = Callable[[Session], int]


def enqueue(
    session: Session,
    clock: Clock,
    *,
    conversation_id: int,
    channel: str,
    rendered: RenderedMessage,
    author: str = "bot",
    extra: Mapping[str, Any] | None = None,
) -> Message:
    """Add one rendered message to the outbox (flushed with the caller's transaction).

    The row gets an idempotency key that every send attempt reuses (RBM's ``messageId``).
    """
    payload: dict[str, Any] = {
        "body": rendered.body,
        "idempotency_key": str(uuid.uuid4()),
        **(extra or {}),
    }
    if rendered.options:
        payload["options"] = [
            {"title": option.title, "payload": option.payload} for option in rendered.options
        ]
    now = clock.now_utc()
    row = Message(
        conversation_id=conversation_id,
        channel=channel,
        direction=Direction.OUT.value,
        external_id=None,
        author=author,
        kind=rendered.kind,
        text=rendered.text,
        payload=payload,
        status=OutboundStatus.QUEUED,
        attempts=0,
        next_attempt_at=None,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    return row


class Outbox:
    """Claims queued outbound rows and sends them, one at a time per conversation."""

    def __init__(
        self,
        *,
        db_url: str,
        clock: Clock,
        policy: Policy,
        adapters: Mapping[str, ChannelAdapter],
        tuning: Tuning,
        observer: Observer | None = None,
        wake: Callable[[], None] = lambda: None,
        on_undeliverable: UndeliverableHandler | None = None,
        invite: InviteHandler | None = None,
        release_due: ReleaseHandler | None = None,
    ) -> None:
        self._sessions = session_factory(db_url)
        self._on_undeliverable = on_undeliverable
        self._invite, self._release_due = invite, release_due
        self._clock = clock
        self._policy = policy
        self._adapters = adapters
        self._tuning = tuning
        self._observer = observer or NullObserver()
        self.wake = wake
        self.halts = ChannelHalts(adapters, self._observer)  # per channel, never global
        self._next_sweep = self._next_release = 0.0

    # -- claiming (runs in a worker thread) ---------------------------------------------
    def claim(self, limit: int) -> list[Claim]:
        halted = self.halts.active()
        try:
            self.sweep_early_statuses()
        except SQLAlchemyError:
            log.warning("outbox.early_status_sweep_failed", exc_info=True)
        try:
            self.release_due()
        except SQLAlchemyError:
            log.warning("outbox.release_due_failed", exc_info=True)
        with self._sessions() as session:
            return claim_rows(
                session,
                direction=Direction.OUT.value,
                unfinished=OUTBOUND_UNFINISHED,
                claimed_status=OutboundStatus.SENDING,
                lease=timedelta(seconds=self._tuning.send_timeout * 2 + 30),
                limit=limit,
                skip_channels=tuple(halted),
            )

    def claim_loaded(self, limit: int) -> list[tuple[Claim, OutboundJob]]:
        """:meth:`claim`, each loaded at once in the same thread (as the pipeline's)."""
        claims = self.claim(limit)
        if not claims:
            return []
        with self._sessions() as session:
            loaded = [(claim, load_outbound_job(session, claim)) for claim in claims]
        return [(claim, job) for claim, job in loaded if job is not None]

    def next_due(self) -> datetime | None:
        halted = self.halts.active()
        with self._sessions() as session:
            due = earliest_due(
                session,
                Direction.OUT.value,
                (*OUTBOUND_UNFINISHED, OutboundStatus.SCHEDULED),
                skip_channels=tuple(halted),
            )
        ends = [*halted.values(), *([due] if due is not None else [])]
        return min(ends, default=None)

    # -- window handling ------------------------------------------------------------------
    def hold_in_session(self, session: Session, message: Message) -> None:
        """Hold ``message`` (its window is closed) and invite the person; the caller commits
        and wakes the outbox."""
        if message.channel not in self._adapters:
            message.status = OutboundStatus.FAILED
            return
        message.status = OutboundStatus.HELD
        message.next_attempt_at = None
        message.updated_at = self._clock.now_utc()
        if self._invite is not None:
            self._invite(session, message)

    def _window_closed(self, job: OutboundJob, adapter: ChannelAdapter) -> bool:
        if adapter.service_window is None or job.kind == "template":
            return False
        if job.last_inbound_at is None:
            return True
        return self._clock.now_utc() - job.last_inbound_at >= adapter.service_window

    # -- sending --------------------------------------------------------------------------
    def _load(self, claim: Claim) -> OutboundJob | None:
        with self._sessions() as session:
            return load_outbound_job(session, claim)

    def _finish(self, claim: Claim, status: str, **values: Any) -> bool:
        with self._sessions() as session:
            finished = fenced_update(
                session,
                claim,
                OutboundStatus.SENDING,
                {
                    "status": status,
                    "next_attempt_at": None,
                    "updated_at": self._clock.now_utc(),
                    **values,
                },
            )
            session.commit()
            return finished

    def _record_sent(self, claim: Claim, channel: str, external_id: str | None) -> tuple[bool, int]:
        """Mark the claimed row sent with the channel's id for it, and apply any receipt
        for that id that arrived before this record (see ``bot/conversation/inbox.py``)."""
        with self._sessions() as session:
            recorded = fenced_update(
                session,
                claim,
                OutboundStatus.SENDING,
                {
                    "status": OutboundStatus.SENT,
                    "external_id": external_id,
                    "error_code": None,
                    "next_attempt_at": None,
                    "updated_at": self._clock.now_utc(),
                },
            )
            receipts = 0
            if external_id:
                receipts = apply_early_statuses(
                    session,
                    self._clock,
                    external_id=external_id,
                    channel=channel,
                    on_window_closed=self.hold_in_session,
                    on_undeliverable=self._on_undeliverable,
                )
            session.commit()
            return recorded, receipts

    def release_due(self) -> int:
        """Hand the scheduled rows to the ``release_due`` hook; at most every few seconds."""
        now = time.monotonic()
        if self._release_due is None or now < self._next_release:
            return 0
        self._next_release = now + EARLY_STATUS_SWEEP_SECONDS
        with self._sessions() as session:
            released = self._release_due(session)
            session.commit()
        return released

    def sweep_early_statuses(self) -> int:
        """Apply parked receipts whose send got recorded by a race the fast path missed,
        and drop stale ones; at most once every few seconds (called when claiming)."""
        now = time.monotonic()
        if now < self._next_sweep:
            return 0
        self._next_sweep = now + EARLY_STATUS_SWEEP_SECONDS
        with self._sessions() as session:
            receipts = apply_early_statuses(
                session,
                self._clock,
                on_window_closed=self.hold_in_session,
                on_undeliverable=self._on_undeliverable,
            )
            session.commit()
        return receipts

    def _expire_late(self, claim: Claim, job: OutboundJob) -> None:
        with self._sessions() as session:
            message = _claimed(session, claim)
            if message is None:
                return
            message.status = OutboundStatus.FAILED
            message.error_code = "window_closed"
            message.next_attempt_at = None
            message.updated_at = self._clock.now_utc()
            conversation = session.get(Conversation, message.conversation_id)
            record_audit(
                session,
                self._clock,
                actor="system",
                action="suppression",
                account_id=conversation.account_id if conversation else None,
                conversation_id=message.conversation_id,
                message_id=message.id,
                reason="contact_window_ended_before_send",
                send_before=job.send_before.isoformat() if job.send_before else None,
            )
            session.commit()
        log.warning("outbox.too_late", message_id=claim.message_id, channel=job.channel)

    def _hold(self, claim: Claim) -> None:
        with self._sessions() as session:
            message = _claimed(session, claim)
            if message is None:
                return
            self.hold_in_session(session, message)
            session.commit()
        self.wake()

    def _fail_undeliverable(self, claim: Claim, code: str) -> None:
        """Mark the row failed and let the fallback act on it, in one transaction."""
        with self._sessions() as session:
            message = _claimed(session, claim)
            if message is None:
                return
            message.status = OutboundStatus.FAILED
            message.error_code = code[:32]
            message.next_attempt_at = None
            message.updated_at = self._clock.now_utc()
            if self._on_undeliverable is not None:
                self._on_undeliverable(session, message)
            session.commit()
        self.wake()

    def _release(self, claim: Claim, delay: float, code: str) -> None:
        with self._sessions() as session:
            release_after(
                session, claim, OutboundStatus.SENDING, OutboundStatus.QUEUED, delay, code
            )

    async def deliver(self, claim: Claim) -> None:
        """Send one claimed row and record the outcome."""
        job = await asyncio.to_thread(self._load, claim)
        if job is not None:
            await self.deliver_loaded((claim, job))

    async def deliver_loaded(self, loaded: tuple[Claim, OutboundJob]) -> None:
        """Send one row :meth:`claim_loaded` returned and record the outcome."""
        claim, job = loaded
        adapter = self._adapters.get(job.channel)
        if adapter is None:
            log.error("outbox.no_adapter", channel=job.channel, message_id=claim.message_id)
            await asyncio.to_thread(self._fail_undeliverable, claim, "no_adapter")
            return
        halted_until = self.halts.until(job.channel)
        if halted_until is not None:  # claimed just before its channel halted: wait it out
            wait = (halted_until - scheduling_now()).total_seconds()
            await asyncio.to_thread(self._release, claim, max(wait, 0.0), "halted")
            return
        if job.send_before is not None and self._clock.now_utc() >= job.send_before:
            # Late (an outage, a halt): a reminder that would arrive outside the contact
            # window is not sent at all; the next campaign run decides again.
            await asyncio.to_thread(self._expire_late, claim, job)
            self._observer.outbound(job.channel, job.kind, OutboundStatus.FAILED)
            return
        if self._window_closed(job, adapter):
            await asyncio.to_thread(self._hold, claim)
            self._observer.outbound(job.channel, job.kind, OutboundStatus.HELD)
            return
        started = time.monotonic()
        try:
            result = await adapter.send(job.address, job.body, idempotency_key=job.idempotency_key)
        except SendError as error:
            await self._on_error(claim, job, error)
            return
        self._observer.sent(time.monotonic() - started)
        self._observer.outbound(job.channel, job.kind, OutboundStatus.SENT)
        # WhatsApp has the message now: record it even through a database restart, or the
        # row would be sent again when its lease runs out.
        recorded, receipts = await persist_patiently(
            self._record_sent,
            claim,
            job.channel,
            result.external_id,
            budget=self._tuning.lease_seconds / 2,
            what="outbox.record_sent",
        )
        if not recorded:
            log.warning("outbox.sent_after_lease_lost", message_id=claim.message_id)
        if receipts:
            self.wake()  # a receipt that came early may have held it or queued a fallback
        log.info(
            "outbox.sent",
            channel=job.channel,
            kind=job.kind,
            message_id=claim.message_id,
            to=mask_phone(job.address),
            attempt=claim.attempts,
        )

    async def _on_error(self, claim: Claim, job: OutboundJob, error: SendError) -> None:
        self._observer.send_error(job.channel, error.code)
        context = {
            "channel": job.channel,
            "message_id": claim.message_id,
            "to": mask_phone(job.address),
            "code": error.code,
            "attempt": claim.attempts,
        }
        outcome = error.outcome
        tuning = self._tuning
        if outcome == SendOutcome.RETRY and claim.attempts < tuning.max_send_attempts:
            delay = max(tuning.backoff(claim.attempts), error.retry_after or 0.0)
            log.warning("outbox.retry", delay=round(delay, 3), detail=error.detail, **context)
            await asyncio.to_thread(self._release, claim, delay, error.code)
        elif outcome == SendOutcome.PACE_RECIPIENT:
            delay = tuning.backoff(claim.attempts, base=tuning.pace_seconds)
            log.warning("outbox.pace_recipient", delay=round(delay, 3), **context)
            await asyncio.to_thread(self._release, claim, delay, error.code)
        elif outcome == SendOutcome.WINDOW_CLOSED:
            log.info("outbox.window_closed", **context)
            await asyncio.to_thread(self._hold, claim)
            self._observer.outbound(job.channel, job.kind, OutboundStatus.HELD)
        elif outcome == SendOutcome.HALT:  # this channel only: the others keep sending
            until = self.halts.halt(
                job.channel, tuning.halt_seconds, f"error {error.code}: {error.detail}"
            )
            log.error(
                "outbox.halted", alert=True, until=until.isoformat(), detail=error.detail, **context
            )
            await asyncio.to_thread(self._release, claim, tuning.halt_seconds, error.code)
        elif outcome == SendOutcome.UNDELIVERABLE:  # never retried; maybe another channel
            log.warning("outbox.undeliverable", detail=error.detail, **context)
            await asyncio.to_thread(self._fail_undeliverable, claim, error.code)
            self._observer.outbound(job.channel, job.kind, OutboundStatus.FAILED)
        else:  # rejected, or out of retries: never retried
            log.error("outbox.failed", outcome=outcome.value, detail=error.detail, **context)
            await asyncio.to_thread(
                self._finish, claim, OutboundStatus.FAILED, error_code=error.code[:32]
            )
            self._observer.outbound(job.channel, job.kind, OutboundStatus.FAILED)


def _claimed(session: Session, claim: Claim) -> Message | None:
    """The outbound row, if this claim still holds it (a taken-over claim gets None)."""
    return session.scalars(
        select(Message).where(*fenced(claim, OutboundStatus.SENDING))  # type: ignore[arg-type]
    ).first()
