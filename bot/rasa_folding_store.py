"""Rasa's tracker store for Acuerdo: in memory, and short however long the chat gets.

Rasa 3.6 rebuilds the current session's tracker on every turn, featurises all of it for
each policy prediction and posts all of its events to the action server with every custom
action, so one debtor chatting for hours gets slower answers turn after turn (measured in
docs/dialogue.md, "Long conversations"). Rasa's own remedy, a new session, comes only after
an idle hour (``session_config`` in domain.yml) and then forgets every slot
(``carry_over_slots_to_new_session: false``): the debtor would have to verify again.

This store keeps a conversation short instead. When the current session passes
``max_turns`` debtor messages, the turns before the last ``keep_turns`` are folded into a
session start that carries every slot value as it was at that point: the very events Rasa
writes for a new session that carries slots over (``action_session_start``,
``session_started``, one ``slot`` event per slot not at its initial value,
``action_listen``). The last turns follow unchanged. Nothing the dialogue uses is lost:

* slots (``verified``, ``offer_id``, ``insult_count``...) keep their values;
* the policies look back 5 states (``max_history`` in config.yml, 2-3 turns) and rules are
  shorter than that, well inside the turns kept, so they predict as before;
* the actions read slots and, of the events, only the latest turns (``last_bot_response``,
  ``consecutive_fallbacks`` in actions/), also inside the turns kept;
* the fold is made only at a point of rest: before a debtor message, with no follow-up
  action pending and the conversation not paused for an agent. A form may be running (a
  debtor who keeps ignoring the identity question must not grow the tracker without end):
  the session start then re-activates it (``active_loop``) after the slots, which carry
  ``requested_slot``; a form that was interrupted or rejected at that point is no point of
  rest, since no event restores those marks;
* what the ledger keeps (verification, lockouts, offers, promises) was never in the tracker.

Rasa loads the class from endpoints.yml (``tracker_store: type:
bot.rasa_folding_store.FoldingInMemoryTrackerStore``); ``max_turns`` and ``keep_turns`` may
be set there, or with ``ACUERDO_TRACKER_MAX_TURNS`` / ``ACUERDO_TRACKER_KEEP_TURNS``.
This module runs inside the Rasa engine (.venv-rasa) only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from bot import rasa_speedups

logger = logging.getLogger(__name__)

rasa_speedups.install()  # this module is how Rasa loads Acuerdo: see bot/rasa_speedups.py

# Each turn of history costs about 2 ms on every later turn (docs/dialogue.md), so a session
# of 8-16 turns answers within a few milliseconds of a new one; 8 turns kept are three
# times what the policies and actions look back at. A fold costs one replay of ~120 events.
MAX_TURNS = 16
KEEP_TURNS = 8


def _setting(variable: str, configured: int | None, default: int) -> int:
    raw = os.environ.get(variable)
    value = int(raw) if raw else configured if configured is not None else default
    if value < 1:
        raise ValueError(f"{variable} must be a whole number of at least 1")
    return value


def fold_limits(max_turns: int | None, keep_turns: int | None) -> tuple[int, int]:
    """``(max_turns, keep_turns)`` from the environment, the endpoints file or the defaults."""
    most = _setting("ACUERDO_TRACKER_MAX_TURNS", max_turns, MAX_TURNS)
    keep = _setting("ACUERDO_TRACKER_KEEP_TURNS", keep_turns, KEEP_TURNS)
    if keep >= most:
        raise ValueError("the tracker store's keep_turns must be smaller than max_turns")
    return most, keep


def _at_rest(tracker: DialogueStateTracker) -> bool:
    """Listening for the debtor, with nothing half-done that a session start would undo."""
    loop = tracker.active_loop
    return (
        tracker.latest_action_name == ACTION_LISTEN_NAME
        and (loop is None or not (loop.is_interrupted or loop.rejected))
        and tracker.followup_action in (None, ACTION_LISTEN_NAME)
        and not tracker.is_paused()
    )


def _session_start(
    slots: Iterable[Any], timestamp: float, active_loop: str | None = None
) -> list[Event]:
    """A new session carrying ``slots``' values, as Rasa's ``action_session_start`` writes it,
    with the form that was running (if any) running again."""
    carried: list[Event] = [
        SlotSet(slot.name, slot.value, timestamp=timestamp)
        for slot in slots
        if slot.value != slot.initial_value
    ]
    running: list[Event] = [ActiveLoop(active_loop, timestamp=timestamp)] if active_loop else []
    return [
        ActionExecuted(ACTION_SESSION_START_NAME, timestamp=timestamp),
        SessionStarted(timestamp=timestamp),
        *carried,
        *running,
        ActionExecuted(ACTION_LISTEN_NAME, timestamp=timestamp),
    ]


def folded_events(
    tracker: DialogueStateTracker, slots: Iterable[Any], max_turns: int, keep_turns: int
) -> list[Event] | None:
    """The tracker's events with all but the last turns folded into a session start.

    ``None`` when the tracker has at most ``max_turns`` debtor messages, or when no point of
    rest leaves at least ``keep_turns`` of them after it.
    """
    events = list(tracker.events)
    turn_starts = [i for i, event in enumerate(events) if isinstance(event, UserUttered)]
    if len(turn_starts) <= max_turns:
        return None
    candidates = set(turn_starts[: len(turn_starts) - keep_turns])
    # Replay up to each candidate to know the state there; fold at the latest one at rest.
    replay = DialogueStateTracker(tracker.sender_id, list(slots))
    fold: list[Event] | None = None
    cut = 0
    for index, event in enumerate(events):
        if index in candidates and _at_rest(replay):
            at = events[index - 1].timestamp
            fold = _session_start(replay.slots.values(), at, replay.active_loop_name)
            cut = index
        replay.update(event)
    if fold is None:
        return None
    return fold + events[cut:]


class FoldingInMemoryTrackerStore(InMemoryTrackerStore):
    """Rasa's in-memory tracker store that folds long sessions (see the module docstring)."""

    def __init__(
        self,
        domain: Any,
        event_broker: Any = None,
        max_turns: int | None = None,
        keep_turns: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(domain, event_broker, **kwargs)
        self.max_turns, self.keep_turns = fold_limits(max_turns, keep_turns)

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Store the tracker, folded when its session has grown past ``max_turns``."""
        events = folded_events(tracker, self.domain.slots, self.max_turns, self.keep_turns)
        if events is None:
            await super().save(tracker)
            return
        await self.stream_events(tracker)
        short = DialogueStateTracker.from_events(
            tracker.sender_id, events, self.domain.slots, sender_source=tracker.sender_source
        )
        self.store[tracker.sender_id] = self.serialise_tracker(short)
        logger.debug("Folded a tracker from %d to %d events.", len(tracker.events), len(events))
