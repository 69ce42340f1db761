"""Speed-ups for the Rasa 3.6 engine that change nothing it decides. Runs inside Rasa
(``.venv-rasa``); installed when Rasa imports either of Acuerdo's tracker stores
(``bot/rasa_folding_store.py``, ``bot/rasa_tracker_store.py``), that is, by every
``rasa run`` with our endpoints files.

* **Action server answers.** Rasa checks every answer of the action server against a JSON
  schema with ``jsonschema.validate``, which first checks the *schema itself* against the
  JSON-Schema meta-schema and builds a new validator, on every call. Profiling
  ``bench/bench_e2e.py --profile`` put that at about a quarter of the Rasa process's CPU
  (each debtor message runs two or three custom actions). The same schema is now compiled
  once; answers are validated exactly as before and a bad one raises the same
  ``ValidationError``, with Rasa's message.
* **Reading events back.** ``Event.resolve_by_type`` walks every subclass of ``Event``
  (asking ``inspect.isabstract`` of each) to find the class of one event name, for every
  event of every tracker Rasa reads: about a tenth of the Rasa process's CPU in
  ``bench_e2e --profile``. The name-to-class map is now built once, from the very same walk,
  and built again when a name is missing (a subclass defined later); what it cannot find
  goes to Rasa's own function (``"topic"``, the default, the ``ValueError``).
"""

from __future__ import annotations

import logging
from typing import Any

import rasa.shared.utils.common
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.events import Event

logger = logging.getLogger(__name__)

_compiled: Any = None  # the validator of RemoteAction's (constant) answer schema


def validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    """``RemoteAction._validate_action_result`` with the schema compiled once."""
    global _compiled
    if _compiled is None:
        schema = self.action_response_format_spec()  # a static method: always the same
        cls = validator_for(schema)
        cls.check_schema(schema)  # once, where jsonschema.validate does it on every call
        _compiled = cls(schema)
    error = best_match(_compiled.iter_errors(result))
    if error is None:
        return True
    error.message += (
        ". Failed to validate Action server response from API, "
        "make sure your response from the Action endpoint is valid. "
        "For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


_rasa_resolve_by_type = Event.resolve_by_type
_event_classes: dict[str, type[Event]] = {}


def resolve_event_type(type_name: str, default: type[Event] | None = None) -> type[Event] | None:
    """``Event.resolve_by_type`` with the name-to-class map built once."""
    found = _event_classes.get(type_name)
    if found is not None:
        return found
    _event_classes.clear()
    for cls in rasa.shared.utils.common.all_subclasses(Event):  # Rasa's own order
        _event_classes.setdefault(cls.type_name, cls)  # its first match wins, as in Rasa
    found = _event_classes.get(type_name)
    if found is not None:
        return found
    return _rasa_resolve_by_type(type_name, default)


def install() -> None:
    """Install the speed-ups (idempotent)."""
    if RemoteAction._validate_action_result is validate_action_result:  # type: ignore[comparison-overlap]
        return
    RemoteAction._validate_action_result = validate_action_result  # type: ignore[method-assign]
    Event.resolve_by_type = staticmethod(resolve_event_type)  # type: ignore[assignment]
    logger.debug("Acuerdo's Rasa speed-ups installed")
