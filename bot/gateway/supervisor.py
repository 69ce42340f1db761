"""Run a few child processes together: prefixed logs, readiness, one clean shutdown.

Children start in their own session, so a Ctrl-C in the terminal reaches only the
supervisor, which then stops them in order (SIGTERM, then SIGKILL after a grace period).
If any child exits on its own, the others are stopped too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import TextIO

import httpx

from bot.gateway.logging import scrub_text

COLORS = ("\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m")
RESET = "\033[0m"


@dataclass
class ChildSpec:
    """One process to run; ``ready_url`` answers 200 once it can take work."""

    name: str
    command: list[str]
    env: dict[str, str]
    ready_url: str | None = None
    cwd: str | None = None


@dataclass
class _Child:
    spec: ChildSpec
    prefix: str
    process: subprocess.Popen[str] | None = None
    pump: threading.Thread | None = None
    expected_exit: bool = False


class SupervisorError(RuntimeError):
    """A child could not start or did not become ready; the message says which."""


@dataclass
class Supervisor:
    """Starts, watches and stops a group of children."""

    specs: list[ChildSpec]
    out: TextIO = field(default_factory=lambda: sys.stdout)
    grace: float = 15.0
    _children: list[_Child] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        width = max(len(spec.name) for spec in self.specs)
        color = self.out.isatty()
        for index, spec in enumerate(self.specs):
            label = f"{spec.name:<{width}} |"
            if color:
                label = f"{COLORS[index % len(COLORS)]}{label}{RESET}"
            self._children.append(_Child(spec, label))

    def say(self, line: str) -> None:
        """Print a supervisor line between the children's lines."""
        with self._lock:
            self.out.write(line.rstrip("\n") + "\n")
            self.out.flush()

    def _pump(self, child: _Child) -> None:
        assert child.process is not None and child.process.stdout is not None
        for line in child.process.stdout:
            with self._lock:
                # Rasa and the action server log with their own settings: scrub them here.
                self.out.write(f"{child.prefix} {scrub_text(line.rstrip())}\n")
                self.out.flush()

    def start(self) -> None:
        for child in self._children:
            env = {**child.spec.env, "PYTHONUNBUFFERED": "1"}
            try:
                child.process = subprocess.Popen(
                    child.spec.command,
                    env=env,
                    cwd=child.spec.cwd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    bufsize=1,
                    start_new_session=True,
                )
            except OSError as exc:
                self.stop()
                raise SupervisorError(f"cannot start {child.spec.name}: {exc}") from None
            child.pump = threading.Thread(target=self._pump, args=(child,), daemon=True)
            child.pump.start()

    def wait_ready(self, timeout: float) -> None:
        """Wait until every child's ready URL answers 200 (or raise, naming the laggard)."""
        deadline = time.monotonic() + timeout
        pending = [c for c in self._children if c.spec.ready_url]
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for child in list(pending):
                    self._check_alive(child)
                    try:
                        ok = client.get(child.spec.ready_url or "").status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    if ok:
                        pending.remove(child)
                        self.say(f"{child.prefix} ready")
                if pending and time.monotonic() > deadline:
                    names = ", ".join(c.spec.name for c in pending)
                    raise SupervisorError(f"not ready after {timeout:.0f}s: {names}")
                if pending and self._stop.wait(0.5):
                    raise SupervisorError("stopped before everything was ready")

    def _check_alive(self, child: _Child) -> None:
        assert child.process is not None
        code = child.process.poll()
        if code is not None:
            raise SupervisorError(f"{child.spec.name} exited with code {code} while starting")

    def request_stop(self, *_args: object) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> Callable[[], None]:
        """Ctrl-C and SIGTERM ask for a clean stop; returns a function restoring the old ones."""
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def handler(_signum: int, _frame: FrameType | None) -> None:
            self._stop.set()

        for sig in previous:
            signal.signal(sig, handler)

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    def wait(self) -> int:
        """Block until a stop is requested (0) or a child exits on its own (1)."""
        while not self._stop.wait(0.5):
            for child in self._children:
                assert child.process is not None
                code = child.process.poll()
                if code is not None:
                    self.say(f"{child.prefix} exited with code {code}; stopping the others")
                    child.expected_exit = True
                    return 1
        return 0

    def stop(self) -> None:
        """Stop every child, in order, each with ``grace`` seconds to finish."""
        for child in self._children:
            process = child.process
            if process is None or process.poll() is not None:
                continue
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                process.wait(self.grace)
            except subprocess.TimeoutExpired:
                self.say(f"{child.prefix} did not stop in {self.grace:.0f}s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for child in self._children:
            if child.pump is not None:
                child.pump.join(timeout=2)

    def run(self, ready_timeout: float, on_ready: Callable[[], None]) -> int:
        """Start, wait for readiness, call ``on_ready``, then run until stopped; exit code."""
        restore = self.install_signal_handlers()
        try:
            self.start()
            self.wait_ready(ready_timeout)
            on_ready()
            return self.wait()
        except SupervisorError as exc:
            self.say(f"error: {exc}")
            return 1
        finally:
            self.say("stopping…")
            self.stop()
            restore()
            self.say("stopped.")
