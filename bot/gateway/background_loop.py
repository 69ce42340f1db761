"""An event loop on a thread of its own, where the gateway's workers run.

The webhook's ack only verifies, stores and commits; on the server's loop it could wait for
whatever the pipeline and outbox workers had ready (their HTTP round trips, their wake-ups).
The workers run here instead, so it never does (``docs/performance.md``, "A lean turn,
part 4": measured, the loop was not where the ack's tail came from; the GIL is). The two
loops share the process, its database engine and its HTTP clients (one pool per loop).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    """Runs coroutines on a dedicated thread's event loop; safe to call from any thread."""

    def __init__(self, name: str, *, threads: int) -> None:
        self.name = name
        self._threads = threads
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        """Start the thread and return once its loop runs."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already running")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix=f"{self.name}-db")
        )
        self._loop = loop
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.is_running()

    def call(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the loop: at once when already on it, else soon."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if self._thread is threading.current_thread():
            callback()
        else:
            loop.call_soon_threadsafe(callback)

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await ``coroutine`` run on this loop, from a coroutine on another loop."""
        if self._loop is None:
            coroutine.close()
            raise RuntimeError(f"{self.name} is not running")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return await asyncio.wrap_future(future)

    async def stop(self) -> None:
        """Stop the loop (tasks still on it are cancelled) and wait for the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        self._loop = None
        self._thread = None
