"""Engine and session factory."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from bot.db.sqlite_writes import SerializedWritesConnection

log = structlog.get_logger("acuerdo.db")

# How long opening a PostgreSQL connection keeps trying while the server is down (a restart,
# a failover) before the error reaches the caller. ``ACUERDO_DB_CONNECT_PATIENCE`` seconds.
DEFAULT_CONNECT_PATIENCE = 10.0


def connect_patience() -> float:
    value = os.environ.get("ACUERDO_DB_CONNECT_PATIENCE")
    try:
        return max(0.0, float(value)) if value else DEFAULT_CONNECT_PATIENCE
    except ValueError:
        return DEFAULT_CONNECT_PATIENCE


def _patient_connect(engine: Engine, patience: float) -> None:
    """New PostgreSQL connections wait out a short outage instead of failing at once."""
    dbapi_error = engine.dialect.loaded_dbapi.OperationalError

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        deadline = time.monotonic() + patience
        delay = 0.1
        while True:
            try:
                return dialect.loaded_dbapi.connect(*cargs, **cparams)
            except dbapi_error:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("db.connect_retrying", retry_in=delay)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout."""
    # A server connection can die between uses (a restart): ping it when checked out. A
    # SQLite file cannot, and the ping was a query of its own per transaction (profiled).
    kwargs: dict[str, Any] = {"future": True, "pool_pre_ping": not url.startswith("sqlite")}
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {
            "check_same_thread": False,
            "timeout": 30,
            "factory": SerializedWritesConnection,  # writers hand over without sleeping
        }
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "postgresql" and connect_patience() > 0:
        _patient_connect(engine, connect_patience())
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One engine per database URL per process."""
    return make_engine(url)


@lru_cache(maxsize=8)
def session_factory(url: str) -> sessionmaker[Session]:
    """One session maker per database URL per process: each ``sessionmaker`` defines a
    Session subclass of its own, about 0.1 ms a time (profiled in the action server, which
    opened several sessions per turn)."""
    return sessionmaker(bind=engine_for(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
