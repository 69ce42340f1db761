"""One writer at a time per process on a SQLite file, handed over the moment it is free.

SQLite lets one transaction write at a time. The others wait in its busy handler, which
sleeps 1, 2, 5, 10 ... 100 ms between looks at the lock, so under the gateway's load (the
webhook's ack, the pipeline and the outbox writing from a dozen threads) a waiting writer
oversleeps a lock that was free after a millisecond: the ack queued for hundreds of
milliseconds behind transactions that had long ended (``docs/performance.md``, "SQLite
writers").

:class:`SerializedWritesConnection` (``sqlite3.connect(factory=...)``) takes a lock shared by
every connection of the process to the same file at a transaction's first write, and gives
it back at commit or rollback, so the next writer starts at once and no thread sleeps in
SQLite. Reads never take it: WAL readers do not block or wait for the writer.

Between processes (the gateway taking webhooks beside the process running its workers) the
holder of that lock also holds :class:`ProcessWriteLock`, an ``flock`` on a file beside the
database, which the kernel frees the moment its holder commits or dies (``kill -9``). A
waiter looks at it every fraction of a millisecond instead of SQLite's 1-100 ms sleeps. A
process that does not take it (``sqlite3`` by hand) still meets SQLite's busy handler.

A webhook's ack is a write that somebody waits for (Meta retries a slow one), while the
workers' writes are not; under load the lock is busy most of the time, and in arrival order
the ack queued behind a dozen of the workers' transactions. Writes made inside
:func:`urgent_writes` are handed the lock before any other waiter.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

# Statements before which Python's sqlite3 (legacy transaction control, as SQLAlchemy uses
# it) opens a transaction: the ones that take SQLite's write lock.
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class WriteLock:
    """A lock whose urgent waiters are handed it before the others (each group in turn)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._urgent = threading.Condition(self._guard)
        self._normal = threading.Condition(self._guard)
        self._held = False
        self._urgent_waiting = 0
        self._normal_waiting = 0

    @property
    def waiting(self) -> tuple[int, int]:
        """How many writers wait for the lock: (urgent, the others)."""
        with self._guard:
            return self._urgent_waiting, self._normal_waiting

    def acquire(self, timeout: float, *, urgent: bool = False) -> bool:
        """Take the lock within ``timeout`` seconds; False if it stayed taken."""
        deadline = time.monotonic() + timeout
        turn = self._urgent if urgent else self._normal
        with self._guard:
            if urgent:
                self._urgent_waiting += 1
            else:
                self._normal_waiting += 1
            try:
                while self._held or (not urgent and self._urgent_waiting):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        # A hand-over may have reached us as we gave up: pass it on.
                        self._hand_over()
                        return False
                    turn.wait(remaining)
                self._held = True
                return True
            finally:
                if urgent:
                    self._urgent_waiting -= 1
                else:
                    self._normal_waiting -= 1

    def release(self) -> None:
        with self._guard:
            self._held = False
            self._hand_over()

    def _hand_over(self) -> None:
        if self._held:
            return
        if self._urgent_waiting:
            self._urgent.notify()
        else:
            self._normal.notify()


class ProcessWriteLock:
    """This process's turn at a SQLite file among the processes writing to it.

    Two ``flock`` files beside the database: ``-writer.lock``, held exclusively while one of
    this process's transactions writes, and ``-urgent.lock``, held shared by an urgent
    waiter, which makes other processes' ordinary writers stand back until it has had its
    turn. Only the holder of the process's :class:`WriteLock` uses it, one thread at a time.
    """

    FIRST_LOOK = 0.0001  # seconds between looks at a busy lock, doubling up to a cap
    URGENT_CAP = 0.001
    NORMAL_CAP = 0.004

    def __init__(self, database: str) -> None:
        self._writer = _lock_file(database + "-writer.lock")
        self._urgent = _lock_file(database + "-urgent.lock")

    def acquire(self, timeout: float, *, urgent: bool = False) -> bool:
        """Take the lock within ``timeout`` seconds; False if another process kept it."""
        deadline = time.monotonic() + timeout
        if urgent:
            fcntl.flock(self._urgent, fcntl.LOCK_SH)  # others' ordinary writers stand back
        try:
            delay = self.FIRST_LOOK
            cap = self.URGENT_CAP if urgent else self.NORMAL_CAP
            while not ((urgent or not self._urgent_waiting()) and _try_flock(self._writer)):
                if time.monotonic() + delay > deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, cap)
            return True
        finally:
            if urgent:
                fcntl.flock(self._urgent, fcntl.LOCK_UN)

    def release(self) -> None:
        fcntl.flock(self._writer, fcntl.LOCK_UN)

    def _urgent_waiting(self) -> bool:
        """Whether another process has an urgent writer waiting (holding its shared lock)."""
        if not _try_flock(self._urgent):
            return True
        fcntl.flock(self._urgent, fcntl.LOCK_UN)
        return False


def _lock_file(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _try_flock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class FileWriteLock:
    """The write lock of one SQLite file: first among this process's threads, then among the
    processes (urgent writers first at both)."""

    def __init__(self, database: str) -> None:
        self.threads = WriteLock()
        self.processes = ProcessWriteLock(database) if _is_file(database) else None

    @property
    def waiting(self) -> tuple[int, int]:
        """How many of this process's writers wait for the lock: (urgent, the others)."""
        return self.threads.waiting

    def acquire(self, timeout: float, *, urgent: bool = False) -> bool:
        deadline = time.monotonic() + timeout
        if not self.threads.acquire(timeout, urgent=urgent):
            return False
        if self.processes is None:
            return True
        remaining = max(0.0, deadline - time.monotonic())
        if self.processes.acquire(remaining, urgent=urgent):
            return True
        self.threads.release()
        return False

    def release(self) -> None:
        if self.processes is not None:
            self.processes.release()
        self.threads.release()


def _is_file(database: str) -> bool:
    return database not in ("", ":memory:") and not database.startswith("file:")


_locks: dict[str, FileWriteLock] = {}
_locks_guard = threading.Lock()
_urgency = threading.local()


def write_lock(database: str) -> FileWriteLock:
    """The write lock (threads, then processes) for the SQLite file ``database``."""
    with _locks_guard:
        lock = _locks.get(database)
        if lock is None:
            lock = _locks[database] = FileWriteLock(database)
        return lock


@contextlib.contextmanager
def urgent_writes() -> Iterator[None]:
    """This thread's write transactions, while inside, go before any other waiting writer."""
    previous = getattr(_urgency, "active", False)
    _urgency.active = True
    try:
        yield
    finally:
        _urgency.active = previous


def _is_write(sql: str) -> bool:
    return sql.lstrip()[:7].upper().startswith(_WRITES)


class SerializedWritesConnection(sqlite3.Connection):
    """A sqlite3 connection whose write transactions take the process's lock for its file."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._write_lock = write_lock(str(database))
        # As long as SQLite itself would wait for the lock (sqlite3's ``timeout``).
        self._wait_seconds = float(kwargs.get("timeout", args[0] if args else 5.0))
        self._holding = False

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or SerializedWritesCursor)

    def before(self, sql: str) -> None:
        if self._holding or not _is_write(sql):
            return
        urgent = getattr(_urgency, "active", False)
        if not self._write_lock.acquire(self._wait_seconds, urgent=urgent):
            # What SQLite says when its own wait runs out (a writer that never ends).
            raise sqlite3.OperationalError("database is locked")
        self._holding = True

    def settle(self) -> None:
        """After a statement: no transaction open (autocommit, a failed first write) means
        nothing to hold the lock for."""
        if self._holding and not self.in_transaction:
            self.release()

    def release(self) -> None:
        if self._holding:
            self._holding = False
            self._write_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release()


class SerializedWritesCursor(sqlite3.Cursor):
    connection: SerializedWritesConnection

    def execute(self, sql: str, parameters: Any = ()) -> SerializedWritesCursor:
        self.connection.before(sql)
        try:
            super().execute(sql, parameters)
        finally:
            self.connection.settle()
        return self

    def executemany(self, sql: str, seq_of_parameters: Any) -> SerializedWritesCursor:
        self.connection.before(sql)
        try:
            super().executemany(sql, seq_of_parameters)
        finally:
            self.connection.settle()
        return self
