"""Rasa's SQL tracker store, patient through a short database outage. Runs inside Rasa
(``.venv-rasa``: SQLAlchemy 1.4), named in ``deploy/endpoints.scaled.yml``.

Rasa wraps every tracker store in a fail-safe that, on any error, silently falls back to an
in-memory store: during a PostgreSQL restart a turn would start from an empty tracker (the
conversation forgotten) and be saved where nobody reads it. New connections here keep
trying for ``connect_patience`` seconds (default 10) instead, pooled connections are
checked before use, and a read or write cut by the restart is tried once more (a save is
one transaction, so it is all or nothing): a restart delays turns instead.

Long sessions are folded like the in-memory store's (``bot/rasa_folding_store.py``):
past ``max_turns`` debtor messages, a session start carrying every slot and copies of the
last ``keep_turns`` turns are appended, so every turn reads a short tracker again.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from bot import rasa_speedups
from bot.rasa_folding_store import fold_limits, folded_events

logger = logging.getLogger(__name__)

rasa_speedups.install()  # this module is how Rasa loads Acuerdo: see bot/rasa_speedups.py


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

    def __init__(
        self,
        *args: Any,
        connect_patience: float = 10.0,
        max_turns: int | None = None,
        keep_turns: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_turns, self.keep_turns = fold_limits(max_turns, keep_turns)
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
        try:
            self._fold(tracker)
        except DBAPIError:  # never let Rasa's fail-safe fall back to memory over a fold
            logger.warning("Could not fold a long tracker now; the next save will", exc_info=True)

    def _fold(self, tracker: DialogueStateTracker) -> None:
        """Append a session start carrying every slot, then copies of the last turns, when
        the session has passed ``max_turns`` (``bot/rasa_folding_store.py`` says why).

        The events table is append-only and Rasa reads a tracker from the latest
        ``session_started`` on (by timestamp), so the fold is written after what is there,
        every event of it stamped now. Should this write fail, the tracker stays as it was,
        unfolded, and the next save folds it.
        """
        events = folded_events(tracker, self.domain.slots, self.max_turns, self.keep_turns)
        if events is None:
            return
        now = time.time()
        with self.session_scope() as session:
            for original in events:
                copy = Event.from_parameters(original.as_dict())
                copy.timestamp = now
                data = copy.as_dict()
                session.add(
                    self.SQLEvent(
                        sender_id=tracker.sender_id,
                        type_name=copy.type_name,
                        timestamp=now,
                        intent_name=data.get("parse_data", {}).get("intent", {}).get("name"),
                        action_name=data.get("name"),
                        data=json.dumps(data),
                    )
                )
            session.commit()
        logger.debug("Folded a tracker from %d to %d events.", len(tracker.events), len(events))
