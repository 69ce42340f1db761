"""Issue 14: a tapped option reaches the dialogue without running the NLU graph.

A reply button, a list row or a menu number reaches Rasa as the payload we wrote
(``/ask_balance``). Rasa 3.6 ran its whole NLU graph for it, DIET included, only for the last
component to replace DIET's guess with the payload. ``bot/rasa_channel.py`` now hands Rasa
that same parse up front.

A stack of its own: the real model and action server, and a Rasa process whose
``DIETClassifier.process`` writes one line per message it classifies into Rasa's log. The
tapped payloads are the ones the bot's own buttons carry, taken from its replies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.rasa_stack import REPO_ROOT, RasaStack, start_stack

pytestmark = pytest.mark.rasa

DIET_MARK = "DIET-CLASSIFIED:"
COUNT_DIET = f"""
import json, sys
from rasa.nlu.classifiers.diet_classifier import DIETClassifier

_process = DIETClassifier.process

def _counted(self, messages):
    for message in messages:
        print({DIET_MARK!r} + json.dumps(message.get("text")), file=sys.stderr, flush=True)
    return _process(self, messages)

DIETClassifier.process = _counted
"""
SENDER = "+525510000033"  # TC-00335678, born 1985-03-15


@pytest.fixture(scope="module")
def counted_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasaStack]:
    with start_stack(tmp_path_factory.mktemp("taps"), rasa_prelude=COUNT_DIET) as stack:
        yield stack


def classified(stack: RasaStack) -> list[str]:
    """Every text DIET classified so far, in order."""
    log = (stack.logs / "rasa.log").read_text(encoding="utf-8", errors="replace")
    return [
        json.loads(line.split(DIET_MARK, 1)[1]) for line in log.splitlines() if DIET_MARK in line
    ]


def tapped(stack: RasaStack, sender: str, payload: str) -> list[dict[str, Any]]:
    """Send a tap's payload; DIET must not have classified anything meanwhile."""
    before = len(classified(stack))
    replies = stack.say(sender, payload)
    assert classified(stack)[before:] == []
    return replies


def buttons(replies: list[dict[str, Any]]) -> dict[str, str]:
    return {b["title"]: b["payload"] for r in replies for b in r.get("buttons") or []}


def tracker(stack: RasaStack, sender: str) -> dict[str, Any]:
    response = httpx.get(
        f"{stack.rasa_url}/conversations/{sender}/tracker",
        params={"token": stack.token},
        timeout=30,
    )
    response.raise_for_status()
    return dict(response.json())


def latest_parse(stack: RasaStack, sender: str) -> dict[str, Any]:
    """The parse Rasa stored with the sender's latest message."""
    said = [e for e in tracker(stack, sender)["events"] if e["event"] == "user"]
    return dict(said[-1]["parse_data"])


def same_parse(stored: dict[str, Any], graph: dict[str, Any]) -> None:
    for key in ("intent", "entities", "intent_ranking"):
        assert stored.get(key) == graph.get(key), key


def test_a_tap_is_answered_without_diet_and_typed_text_still_goes_through_it(
    counted_stack: RasaStack,
) -> None:
    stack = counted_stack
    greeting = stack.say(SENDER, "hola buenas tardes")
    assert classified(stack)[-1] == "hola buenas tardes"  # typed: the graph, as ever
    balance = buttons(greeting)["Consultar saldo"]

    asked = tapped(stack, SENDER, balance)
    assert "fecha de nacimiento" in " ".join(r.get("text") or "" for r in asked).lower()
    stored = latest_parse(stack, SENDER)

    before = len(classified(stack))
    graph = stack.parse(balance)  # the same payload through Rasa's graph: DIET runs
    assert classified(stack)[before:] == [balance]
    same_parse(stored, graph)
    assert stored["intent"] == {"name": "ask_balance", "confidence": 1.0}

    answered = stack.say(SENDER, "15/03/1985")
    assert "15/03/1985" in classified(stack)
    shown = " ".join(r.get("text") or "" for r in answered)
    assert "$12,000.00" in shown
    pay_now = buttons(answered)["Pagar ahora"]
    methods = buttons(tapped(stack, SENDER, pay_now))

    oxxo = next(payload for payload in methods.values() if "oxxo" in payload)
    tapped(stack, SENDER, oxxo)
    stored = latest_parse(stack, SENDER)
    same_parse(stored, stack.parse(oxxo))
    assert stored["entities"][0]["value"] == "oxxo"
    assert tracker(stack, SENDER)["slots"]["payment_method"] == "oxxo"  # the entity landed
    code = " ".join(r.get("text") or "" for r in stack.say(SENDER, "500"))
    assert "OXXO" in code and "$500.00" in code


def test_a_slash_text_that_names_no_intent_is_read_as_text(counted_stack: RasaStack) -> None:
    stack = counted_stack
    sender = "+525510000034"
    replies = stack.say(sender, "/borrar_mi_deuda")
    assert "/borrar_mi_deuda" in classified(stack)
    assert replies  # answered like any other message
    assert latest_parse(stack, sender)["intent"]["name"] != "borrar_mi_deuda"


def test_every_payload_of_the_domain_gets_the_parse_rasas_graph_gives(
    counted_stack: RasaStack,
) -> None:
    stack = counted_stack
    domain = yaml.safe_load((REPO_ROOT / "domain.yml").read_text(encoding="utf-8"))
    payloads = sorted(
        {
            button["payload"].replace("{{", "{").replace("}}", "}")  # response-template escapes
            for variants in domain["responses"].values()
            for variant in variants
            for button in variant.get("buttons") or []
        }
    )
    assert len(payloads) >= 10
    for n, payload in enumerate(payloads):
        sender = f"+5255199{n:05d}"  # nobody in the ledger: the parse is what is compared
        tapped(stack, sender, payload)
        same_parse(latest_parse(stack, sender), stack.parse(payload))
