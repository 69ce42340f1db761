"""Acuerdo's extensions of the Rasa engine, run in the engine's own env (``.venv-rasa``).

* ``bot/rasa_speedups.py``: the action server's answers are validated once-compiled, with
  the very verdicts (and messages) of Rasa's own ``jsonschema.validate``.
* Long sessions fold in both tracker stores (``bot/rasa_folding_store.py`` in memory,
  ``bot/rasa_tracker_store.py`` in SQL): a 40-turn conversation is read back short, with
  every slot and the latest turns, and the SQL log still holds every message.

The checks run in a ``.venv-rasa`` subprocess (``tests/rasa_engine.py``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.rasa_engine import RASA_PYTHON, run_in_rasa_engine

TURNS = 40

SCRIPT = r"""
import asyncio, json, sys

import jsonschema
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted, ActiveLoop, BotUttered, SessionStarted, SlotSet, UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from bot.rasa_folding_store import FoldingInMemoryTrackerStore
from bot.rasa_tracker_store import PatientSQLTrackerStore
from bot.rasa_speedups import validate_action_result

db_path, turns = sys.argv[1], int(sys.argv[2])
out = {"patched": RemoteAction._validate_action_result is validate_action_result}

answers = [
    {"events": [{"event": "slot", "name": "verified", "value": True}],
     "responses": [{"text": "Hola", "buttons": [{"title": "Sí", "payload": "/affirm"}]}]},
    {"events": [], "responses": []},
    {},
    {"events": [{"event": "no_such_event"}]},
    {"events": "not a list"},
    {"events": [{"event": "slot"}]},
    {"responses": [1]},
    {"responses": "not a list"},
]
verdicts = []
action = RemoteAction("action_check", None)
for answer in answers:
    try:
        jsonschema.validate(answer, RemoteAction.action_response_format_spec())
        rasa = "valid"
    except jsonschema.ValidationError as exc:
        rasa = exc.message
    try:
        action._validate_action_result(answer)
        ours = "valid"
    except jsonschema.ValidationError as exc:
        ours = exc.message
    verdicts.append([rasa, ours])
out["verdicts"] = verdicts

domain = Domain.load("domain.yml")

def turn_events(n):
    return [
        UserUttered(f"mensaje {n}", {"name": "greet", "confidence": 1.0}),
        ActionExecuted("utter_greet"),
        BotUttered(f"respuesta {n}"),
        ActionExecuted("action_listen"),
    ]

async def converse(store):
    sizes = []
    for n in range(1, turns + 1):
        tracker = await store.retrieve("debtor-1")
        if tracker is None:
            tracker = DialogueStateTracker("debtor-1", domain.slots)
            for event in [ActionExecuted("action_session_start"), SessionStarted(),
                          ActionExecuted("action_listen")]:
                tracker.update(event)
        for event in turn_events(n):
            tracker.update(event)
        if n == 2:
            tracker.update(SlotSet("verified", True))
        await store.save(tracker)
        sizes.append(len(tracker.events))
    tracker = await store.retrieve("debtor-1")
    texts = [e.text for e in tracker.events if isinstance(e, UserUttered)]
    return {
        "sizes": sizes,
        "verified": tracker.get_slot("verified"),
        "texts": texts,
        "latest": tracker.latest_message.text,
    }

async def stuck_in_a_form(store):
    # A sender who keeps writing "cuanto debo" instead of answering the identity question:
    # the form never ends, so there is never a point of rest outside it.
    sizes = []
    for n in range(1, turns + 1):
        tracker = await store.retrieve("stuck")
        if tracker is None:
            tracker = DialogueStateTracker("stuck", domain.slots)
            for event in [ActionExecuted("action_session_start"), SessionStarted(),
                          ActionExecuted("action_listen")]:
                tracker.update(event)
        tracker.update(UserUttered(f"cuanto debo {n}", {"name": "ask_balance", "confidence": 1.0}))
        if n == 1:
            tracker.update(ActionExecuted("action_remember_request"))
            tracker.update(SlotSet("pending_request", "ask_balance"))
        tracker.update(ActionExecuted("verification_form"))
        if n == 1:
            tracker.update(ActiveLoop("verification_form"))
        for event in [SlotSet("requested_slot", "identity_answer"),
                      BotUttered("Para proteger tu informacion..."),
                      ActionExecuted("action_listen")]:
            tracker.update(event)
        await store.save(tracker)
        sizes.append(len(tracker.events))
    tracker = await store.retrieve("stuck")
    return {
        "sizes": sizes,
        "active_loop": tracker.active_loop_name,
        "requested_slot": tracker.get_slot("requested_slot"),
        "pending_request": tracker.get_slot("pending_request"),
        # (latest_message is the form's trigger after a replay: Rasa folds a form's happy
        # path into its first execution; the events themselves are all there)
        "texts": [e.text for e in tracker.events if isinstance(e, UserUttered)],
    }

async def main():
    memory = FoldingInMemoryTrackerStore(domain)
    out["memory"] = await converse(memory)
    out["form_memory"] = await stuck_in_a_form(memory)
    out["form_sql"] = await stuck_in_a_form(
        PatientSQLTrackerStore(domain, dialect="sqlite", db=db_path + ".form")
    )
    sql = PatientSQLTrackerStore(domain, dialect="sqlite", db=db_path)
    out["sql"] = await converse(sql)
    full = await sql.retrieve_full_tracker("debtor-1")
    out["sql_log_texts"] = sorted(
        {e.text for e in full.events if isinstance(e, UserUttered)},
        key=lambda t: int(t.split()[-1]),
    )

asyncio.run(main())
print("RESULT:" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not RASA_PYTHON.exists():
        pytest.fail(".venv-rasa is missing: run 'make setup' (it installs the Rasa engine)")
    db = tmp_path_factory.mktemp("rasa-store") / "tracker.db"
    # The folding limits are the defaults, whatever the environment says.
    env = {"ACUERDO_TRACKER_MAX_TURNS": "", "ACUERDO_TRACKER_KEEP_TURNS": ""}
    found: dict[str, Any] = run_in_rasa_engine(SCRIPT, str(db), str(TURNS), env=env)
    return found


def test_loading_our_tracker_store_installs_the_speedup(results: dict[str, Any]) -> None:
    assert results["patched"] is True


def test_action_answers_get_rasas_own_verdicts(results: dict[str, Any]) -> None:
    verdicts = results["verdicts"]
    assert [rasa for rasa, _ours in verdicts[:3]] == ["valid"] * 3
    assert all(rasa != "valid" for rasa, _ours in verdicts[3:])  # the bad ones are bad
    for rasa, ours in verdicts:
        assert ours == rasa if rasa == "valid" else ours.startswith(rasa + ". Failed to validate")


@pytest.mark.parametrize("store", ["memory", "sql"])
def test_a_long_session_is_read_back_short_with_its_slots(
    results: dict[str, Any], store: str
) -> None:
    run = results[store]
    # 4 events a turn: unfolded, turn 40 would read back 163 events.
    assert max(run["sizes"][20:]) < 4 * 17 + 10
    assert run["verified"] is True  # set on turn 2, folded away long ago
    assert run["latest"] == f"mensaje {TURNS}"
    kept = [int(text.split()[-1]) for text in run["texts"]]
    assert kept == list(range(kept[0], TURNS + 1)) and len(kept) >= 8  # the latest turns, in order


def test_the_sql_log_still_holds_every_message(results: dict[str, Any]) -> None:
    assert results["sql_log_texts"] == [f"mensaje {n}" for n in range(1, TURNS + 1)]


@pytest.mark.parametrize("store", ["form_memory", "form_sql"])
def test_a_session_stuck_in_a_form_folds_and_the_form_keeps_running(
    results: dict[str, Any], store: str
) -> None:
    """Issue 14: a tracker that never left the verification form grew by every turn."""
    run = results[store]
    # 5 events a turn: unfolded, turn 40 would read back over 200 events.
    assert max(run["sizes"][20:]) < 5 * 17 + 10
    assert run["active_loop"] == "verification_form"
    assert run["requested_slot"] == "identity_answer"
    assert run["pending_request"] == "ask_balance"  # set on turn 1, folded away long ago
    kept = [int(text.split()[-1]) for text in run["texts"]]
    assert kept == list(range(kept[0], TURNS + 1)) and len(kept) >= 8  # the latest turns, in order
