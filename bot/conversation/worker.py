"""A background worker: claim work, handle it concurrently, sleep until woken or due.

It wakes when told there is new work (``wake()``), when the earliest back-off or lease
ends, or after ``poll_interval`` (work left by other processes sharing the database).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Generic, TypeVar

import structlog

from bot.conversation.claims import scheduling_now

T = TypeVar("T")
log = structlog.get_logger("acuerdo.worker")


class Worker(Generic[T]):
    """Runs ``handle`` on what ``claim`` returns, at most ``concurrency`` at a time."""

    def __init__(
        self,
        name: str,
        *,
        claim: Callable[[int], list[T]],
        handle: Callable[[T], Awaitable[None]],
        next_due: Callable[[], datetime | None],
        concurrency: int,
        poll_interval: float,
    ) -> None:
        self.name = name
        self._claim = claim
        self._handle = handle
        self._next_due = next_due
        self._concurrency = max(1, concurrency)
        self._poll_interval = poll_interval
        self._event = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        """There may be new work: look now."""
        self._event.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"worker-{self.name}")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let handlers in flight finish for up to ``grace`` seconds."""
        self._stopping = True
        self._event.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._in_flight:
            _done, pending = await asyncio.wait(self._in_flight, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _run(self) -> None:
        while not self._stopping:
            self._event.clear()
            free = self._concurrency - len(self._in_flight)
            claimed: list[T] = []
            started = scheduling_now()
            if free > 0:
                try:
                    claimed = await asyncio.to_thread(self._claim, free)
                except Exception:
                    log.exception("worker.claim_failed", worker=self.name)
            for item in claimed:
                task = asyncio.create_task(self._guarded(item))
                self._in_flight.add(task)
                task.add_done_callback(self._finished)
            if claimed and len(claimed) == free:
                await self._event.wait()  # full: a finishing handler wakes us
                continue
            if claimed:
                continue  # maybe more became claimable meanwhile
            await self._sleep(started)

    async def _sleep(self, claim_started: datetime) -> None:
        timeout = self._poll_interval
        try:
            due = await asyncio.to_thread(self._next_due)
        except Exception:
            log.exception("worker.next_due_failed", worker=self.name)
            due = None
        if due is not None:
            now = scheduling_now()
            if due > now:
                timeout = min(timeout, (due - now).total_seconds())
            elif due > claim_started:
                timeout = 0  # became due while we were claiming: look again
        if timeout > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)

    async def _guarded(self, item: T) -> None:
        try:
            await self._handle(item)
        except Exception:  # a handler must never kill the worker
            log.exception("worker.handler_failed", worker=self.name)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._event.set()

    @property
    def busy(self) -> int:
        return len(self._in_flight)
