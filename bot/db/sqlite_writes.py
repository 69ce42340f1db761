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
SQLite. Between processes (a CLI import beside the gateway) the busy handler still decides.
Reads never take it: WAL readers do not block or wait for the writer.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

# Statements before which Python's sqlite3 (legacy transaction control, as SQLAlchemy uses
# it) opens a transaction: the ones that take SQLite's write lock.
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(database: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(database, threading.Lock())


def _is_write(sql: str) -> bool:
    return sql.lstrip()[:7].upper().startswith(_WRITES)


class SerializedWritesConnection(sqlite3.Connection):
    """A sqlite3 connection whose write transactions take the process's lock for its file."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._write_lock = _lock_for(str(database))
        # As long as SQLite itself would wait for the lock (sqlite3's ``timeout``).
        self._wait_seconds = float(kwargs.get("timeout", args[0] if args else 5.0))
        self._holding = False

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or SerializedWritesCursor)

    def before(self, sql: str) -> None:
        if self._holding or not _is_write(sql):
            return
        if not self._write_lock.acquire(timeout=self._wait_seconds):
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
