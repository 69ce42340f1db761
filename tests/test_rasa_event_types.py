"""``bot/rasa_speedups.py``'s event-class lookup answers exactly as Rasa's own, in
``.venv-rasa``: every event name, an unknown one, ``topic``, a default, and an event class
defined after the map was built."""

from __future__ import annotations

from typing import Any

import pytest

from tests.rasa_engine import RASA_PYTHON, run_in_rasa_engine

SCRIPT = r"""
import json

import rasa.shared.utils.common
from rasa.shared.core.events import Event, SlotSet, UserUttered

from bot import rasa_speedups

rasa_own = rasa_speedups._rasa_resolve_by_type
rasa_speedups.install()
out = {"installed": Event.resolve_by_type is rasa_speedups.resolve_event_type}
names = sorted({c.type_name for c in rasa.shared.utils.common.all_subclasses(Event)})
out["names"] = len(names)
out["same"] = [n for n in names if Event.resolve_by_type(n) is rasa_own(n)]


def outcome(call):
    try:
        return repr(call())
    except ValueError as exc:
        return "ValueError: " + str(exc)


out["unknown"] = [outcome(lambda: Event.resolve_by_type("no_such_event")),
                  outcome(lambda: rasa_own("no_such_event"))]
out["topic"] = [outcome(lambda: Event.resolve_by_type("topic")), outcome(lambda: rasa_own("topic"))]
out["default"] = Event.resolve_by_type("no_such_event", SlotSet) is SlotSet


class LateEvent(UserUttered):  # defined after the map was built
    type_name = "acuerdo_late_event"


out["late"] = Event.resolve_by_type("acuerdo_late_event") is LateEvent
parsed = Event.from_parameters({"event": "slot", "name": "verified", "value": True})
out["parsed"] = [type(parsed).__name__, parsed.key, parsed.value]
print("RESULT:" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def lookups() -> dict[str, Any]:
    if not RASA_PYTHON.exists():
        pytest.skip("the Rasa engine's env (.venv-rasa) is not set up")
    result: dict[str, Any] = run_in_rasa_engine(SCRIPT)
    return result


def test_it_is_installed_and_answers_every_event_name_as_rasa_does(lookups: dict[str, Any]) -> None:
    assert lookups["installed"] is True
    assert lookups["names"] > 20
    assert len(lookups["same"]) == lookups["names"]


def test_what_it_cannot_find_gets_rasa_s_own_answer(lookups: dict[str, Any]) -> None:
    mine, rasa = lookups["unknown"]
    assert mine == rasa and mine.startswith("ValueError: Unknown event name")
    assert lookups["topic"] == ["None", "None"]
    assert lookups["default"] is True


def test_an_event_class_defined_later_is_found_and_events_still_parse(
    lookups: dict[str, Any],
) -> None:
    assert lookups["late"] is True
    assert lookups["parsed"] == ["SlotSet", "verified", True]
