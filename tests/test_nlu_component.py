"""SpanishEntityNormalizer end to end, in the Rasa engine's own env (.venv-rasa).

``make test`` runs pytest in ``.venv``, which has no Rasa, so the component runs in a
``.venv-rasa`` subprocess: a small script validates a pipeline graph holding the component, feeds
it messages with DIET-like entities under a pinned clock and prints the resulting entities as JSON.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.rasa_engine import RASA_PYTHON, REPO_ROOT, run_in_rasa_engine

SCRIPT = r"""
import json, os, sys

from rasa.engine.recipes.recipe import Recipe
from rasa.engine.validation import validate
from rasa.shared.data import TrainingType
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.component import SpanishEntityNormalizer

config = {
    "recipe": "default.v1", "language": "es", "assistant_id": "test",
    "pipeline": [
        {"name": "WhitespaceTokenizer"}, {"name": "CountVectorsFeaturizer"},
        {"name": "DIETClassifier", "epochs": 1}, {"name": "EntitySynonymMapper"},
        {"name": "bot.nlu.component.SpanishEntityNormalizer"},
    ],
    "policies": [],
}
validate(Recipe.recipe_for_name("default.v1").graph_config_for_recipe(
    config, {}, training_type=TrainingType.NLU))

component = SpanishEntityNormalizer.create(
    SpanishEntityNormalizer.get_default_config(), None, None, None)


def diet(entity_type, text, span, value=None):
    start = text.index(span)
    return {"entity": entity_type, "start": start, "end": start + len(span),
            "value": value if value is not None else span,
            "extractor": "DIETClassifier", "confidence_entity": 0.99}


results = {}
for case in json.loads(sys.stdin.read()):
    os.environ["ACUERDO_NOW"] = case["now"]
    text = case["text"]
    message = Message({
        "text": text,
        "intent": {"name": case["intent"], "confidence": 0.9},
        "entities": [diet(*entity) for entity in case["entities"]],
    })
    component.process([message])
    results[case["name"]] = message.get("entities")
print("RESULT:" + json.dumps(results))
"""

MONDAY_MORNING = "2026-11-23T10:00:00-06:00"
CASES: list[dict[str, Any]] = [
    {
        "name": "promise",
        "now": MONDAY_MORNING,
        "intent": "promise_to_pay",
        "text": "te pago mil quinientos el viernes por transferencia",
        "entities": [
            ["amount", "te pago mil quinientos el viernes por transferencia", "mil quinientos"],
            ["date", "te pago mil quinientos el viernes por transferencia", "el viernes"],
            [
                "payment_method",
                "te pago mil quinientos el viernes por transferencia",
                "transferencia",
            ],
        ],
    },
    {
        "name": "already_paid",
        "now": MONDAY_MORNING,
        "intent": "already_paid",
        "text": "ya pagué el lunes",
        "entities": [["date", "ya pagué el lunes", "el lunes"]],
    },
    {
        "name": "birth_date",
        "now": MONDAY_MORNING,
        "intent": "inform",
        "text": "nací el 15/03/1985",
        "entities": [["date", "nací el 15/03/1985", "15/03/1985"]],
    },
    {
        "name": "unreadable",
        "now": MONDAY_MORNING,
        "intent": "ask_payment_plan",
        "text": "la neta no sé, en 6 meses, soy Juan",
        "entities": [
            ["amount", "la neta no sé, en 6 meses, soy Juan", "la neta"],
            ["installments", "la neta no sé, en 6 meses, soy Juan", "en 6 meses"],
            ["person", "la neta no sé, en 6 meses, soy Juan", "Juan"],
        ],
    },
    {
        "name": "missed",
        "now": MONDAY_MORNING,
        "intent": "propose_amount",
        "text": "puedo dar $1,200 mañana",
        "entities": [],
    },
    {
        "name": "cents",
        "now": MONDAY_MORNING,
        "intent": "inform",
        "text": "son 1,200.50",
        "entities": [["amount", "son 1,200.50", "1,200.50"]],
    },
    {
        # 03:00 UTC on 1 December is still 30 November in Mexico City.
        "name": "pinned_utc_clock",
        "now": "2026-12-01T03:00:00+00:00",
        "intent": "promise_to_pay",
        "text": "mañana sin falta",
        "entities": [["date", "mañana sin falta", "mañana sin falta"]],
    },
]


@pytest.fixture(scope="module")
def results() -> dict[str, list[dict[str, Any]]]:
    if not RASA_PYTHON.exists():
        pytest.skip(
            f"{RASA_PYTHON.relative_to(REPO_ROOT)} not found: the Rasa engine env is absent"
        )
    found: dict[str, list[dict[str, Any]]] = run_in_rasa_engine(
        SCRIPT, stdin=json.dumps(CASES), env={"ACUERDO_TIMEZONE": "America/Mexico_City"}
    )
    return found


def _by_type(entities: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["entity"]: e["value"] for e in entities}


def test_promise_values_are_canonical(results: dict[str, list[dict[str, Any]]]) -> None:
    assert _by_type(results["promise"]) == {
        "amount": 1500,
        "date": "2026-11-27",
        "payment_method": "spei",
    }
    assert all(e["processors"] == ["SpanishEntityNormalizer"] for e in results["promise"])


def test_a_reported_payment_resolves_to_the_past(results: dict[str, list[dict[str, Any]]]) -> None:
    assert _by_type(results["already_paid"]) == {"date": "2026-11-16"}


def test_a_birth_date_is_returned_as_written(results: dict[str, list[dict[str, Any]]]) -> None:
    assert _by_type(results["birth_date"]) == {"date": "1985-03-15"}


def test_unreadable_entities_are_dropped_and_others_kept(
    results: dict[str, list[dict[str, Any]]],
) -> None:
    assert _by_type(results["unreadable"]) == {"installments": 6, "person": "Juan"}


def test_missed_amount_and_date_are_added_with_offsets(
    results: dict[str, list[dict[str, Any]]],
) -> None:
    text = "puedo dar $1,200 mañana"
    added = results["missed"]
    assert [(e["entity"], text[e["start"] : e["end"]], e["value"]) for e in added] == [
        ("amount", "$1,200", 1200),
        ("date", "mañana", "2026-11-24"),
    ]
    assert {e["extractor"] for e in added} == {"SpanishEntityNormalizer"}


def test_amount_with_cents_is_a_float(results: dict[str, list[dict[str, Any]]]) -> None:
    assert _by_type(results["cents"]) == {"amount": 1200.5}


def test_today_comes_from_the_pinned_clock_in_mexico_city(
    results: dict[str, list[dict[str, Any]]],
) -> None:
    assert _by_type(results["pinned_utc_clock"]) == {"date": "2026-12-01"}
