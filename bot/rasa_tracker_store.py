"""Rasa's SQL tracker store, patient through a short database outage. Runs inside Rasa
(``.venv-rasa``: SQLAlchemy 1.4), named in ``deploy/endpoints.scaled.yml``.

Rasa wraps every tracker store in a fail-safe that, on any error, silently falls back to an
in-memory store: during a PostgreSQL restart a turn would start from an empty tracker (the
conversation forgotten) and be saved where nobody reads it. New connections here keep
trying for ``connect_patience`` seconds (default 10) instead, so a restart delays turns.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rasa.core.tracker_store import SQLTrackerStore
from sqlalchemy import event

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
