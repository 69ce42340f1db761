"""Waking the workers' process from the gateway's: one datagram on a Unix socket.

With ``ACUERDO_WORKERS=separate`` the process that takes webhooks does not run the workers;
after it stores work it tells the workers' process to look now. The socket lives in the
var directory, readable and writable by its owner only (file permissions are the
authentication: a datagram carries nothing but which worker to wake, and anything else is
ignored). A wake is a hint, never the work: a lost one (the workers restarting, a full
buffer) only means the workers find the stored work at their next poll
(``ACUERDO_POLL_SECONDS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

log = structlog.get_logger("acuerdo.wake")

PIPELINE = "pipeline"
OUTBOX = "outbox"
MAX_SOCKET_PATH = 107  # sockaddr_un's sun_path, less its terminating NUL


class WakeSender:
    """Sends wakes to the socket at ``path``; never blocks and never raises."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def wake(self, kind: str) -> bool:
        """Tell the workers' ``kind`` to look now; False if the datagram was not taken."""
        try:
            self._socket.sendto(kind.encode(), self.path)
        except OSError as exc:  # no listener yet, or its buffer is full: it will poll
            log.debug("wake.not_sent", kind=kind, error=type(exc).__name__)
            return False
        return True

    def close(self) -> None:
        self._socket.close()


class WakeListener:
    """The workers' end: reads wakes on their event loop and calls ``handlers[kind]``."""

    def __init__(self, path: Path, handlers: Mapping[str, Callable[[], None]]) -> None:
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise ValueError(f"the workers' wake socket path is too long for a socket: {path}")
        self.path = path
        self._handlers = dict(handlers)
        self._socket: socket.socket | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind the socket (owner-only) and read it on ``loop``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a process that died
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        previous = os.umask(0o177)  # created 0600, never readable by others for an instant
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(previous)
        sock.setblocking(False)
        self._socket = sock
        loop.add_reader(sock.fileno(), self._read)

    def _read(self) -> None:
        assert self._socket is not None
        kinds: set[str] = set()
        while True:
            try:
                datagram = self._socket.recv(64)
            except (BlockingIOError, InterruptedError):
                break
            kind = datagram.decode("ascii", "replace")
            if kind in self._handlers:
                kinds.add(kind)
        for kind in kinds:  # a burst of wakes is one look
            self._handlers[kind]()

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._socket is None:
            return
        loop.remove_reader(self._socket.fileno())
        self._socket.close()
        self._socket = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
