"""Rasa's SQL tracker store, patient through a short database outage. Runs inside Rasa
(``.venv-rasa``: SQLAlchemy 1.4), named in ``deploy/endpoints.scaled.yml``.

Rasa wraps every tracker store in a fail-safe that, on any error, silently falls back to an
in-memory store: during a PostgreSQL restart a turn would start from an empty tracker (the
conversation forgotten) and be saved where nobody reads it. New connections here keep
trying for ``connect_patience`` seconds (default 10) instead, pooled connections are
checked before use, and a read or write cut by the restart is tried once more (a save is
one transaction, so it is all or nothing): a restart delays turns instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

logger = logging.getLogger(__name__)


def wait_for_connections(engine: Any, patience: float) -> None:
    """Make ``engine`` retry opening a connection for up to ``patience`` seconds."""
    dbapi = engine.dialect.dbapi

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        deadline = time.monotonic() + patience
        delay = 0.1
        while True:
            try:
                return dbapi.connect(*cargs, **cparams)
            except dbapi.OperationalError:
                if time.monotonic() + delay > deadline:
                    raise
                logger.warning("Tracker store database unreachable; retrying in %.1fs", delay)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)


class PatientSQLTrackerStore(SQLTrackerStore):
    """:class:`SQLTrackerStore` whose connections wait out a database restart."""

    def __init__(self, *args: Any, connect_patience: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        wait_for_connections(self.engine, float(connect_patience))
        self.engine.pool._pre_ping = True  # what create_engine(pool_pre_ping=True) sets

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        try:
            return await super().retrieve(sender_id)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            logger.warning("Tracker store connection lost during a read; reading again")
            return await super().retrieve(sender_id)

    async def save(self, tracker: DialogueStateTracker) -> None:
        try:
            await super().save(tracker)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            logger.warning("Tracker store connection lost during a write; writing again")
            await super().save(tracker)
