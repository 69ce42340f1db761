"""Whole conversations from the signed webhook, through the real Rasa model and action server,
to the Graph API stand-in (``rasa_stack`` runs the trained model once per session)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.config import Settings
from bot.domain.phones import whatsapp_id
from tests.conftest_gateway import FAST, envelope, message, signed_post, text
from tests.graph_stub import GraphStub, describe, wait_until
from tests.rasa_stack import STACK_NOW, RasaStack

pytest_plugins = ["tests.conftest_gateway"]
pytestmark = pytest.mark.rasa

# Stack debtors (tests/rasa_stack.py) these tests own: born 1985-03-15, owe $12,000.00.
BALANCE_PHONE = "+525510000038"
CODE_PHONE = "+525510000039"
DUPLICATE_PHONE = "+525510000040"


@pytest.fixture
def stack_gateway(
    rasa_stack: RasaStack, graph_server: GraphStub, gateway_policy_file: Path, tmp_path: Path
) -> Iterator[TestClient]:
    """The gateway in front of the real Rasa stack, on the stack's ledger."""
    env = rasa_stack.env
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        sandbox=True,  # on the sandbox's built-in secrets (ACUERDO_SANDBOX=1)
        database_url=rasa_stack.db_url,
        internal_token=rasa_stack.token,
        now=STACK_NOW,
        whatsapp_api_base_url=graph_server.url,
        rasa_port=int(env["RASA_PORT"]),
        action_port=int(env["ACTION_PORT"]),
        policy_file=str(gateway_policy_file),
        var_dir=str(tmp_path / "var"),
        secret_key=env["ACUERDO_SECRET_KEY"],
        public_url=env["ACUERDO_PUBLIC_URL"],
    )
    from bot.gateway.app import create_app

    tuning = dataclasses.replace(FAST, rasa_timeout=60.0)
    with TestClient(create_app(settings, tuning=tuning)) as client:
        yield client


def converse(client: TestClient, graph: GraphStub, phone: str) -> Callable[[str], list[str]]:
    """Say something as ``phone``; returns what reached WhatsApp in answer."""
    wa_id = whatsapp_id(phone)

    def say(words: str) -> list[str]:
        before = len([s for s in graph.sends if s.body["to"] == wa_id])
        assert signed_post(client, envelope([text(words, wa_id=wa_id)])).status_code == 200
        wait_until(
            lambda: len([s for s in graph.sends if s.body["to"] == wa_id]) > before,
            60,
            f"a reply to {words!r}",
        )
        # Replies of one turn are queued together; give the outbox a moment to send them all.
        wait_until(lambda: _settled(client), 30, "the outbox to drain")
        return [describe(s.body) for s in graph.sends if s.body["to"] == wa_id][before:]

    return say


def _settled(client: TestClient) -> bool:
    metrics = client.get("/metrics").text
    return 'acuerdo_queue_depth{queue="inbox"} 0.0' in metrics and (
        'acuerdo_queue_depth{queue="outbox"} 0.0' in metrics
    )


def test_a_verified_demo_debtor_hears_the_balance_on_whatsapp(
    stack_gateway: TestClient, graph_server: GraphStub
) -> None:
    say = converse(stack_gateway, graph_server, BALANCE_PHONE)
    greeting = " ".join(say("hola"))
    assert "automatizado" in greeting
    asked = " ".join(say("cuanto debo"))
    assert "fecha de nacimiento" in asked
    assert "$" not in asked
    answer = " ".join(say("15/03/1985"))
    assert "$12,000.00" in answer
    assert "Banco Ejemplo" in answer


def test_an_oxxo_code_arrives_as_text_and_a_qr_image(
    stack_gateway: TestClient, graph_server: GraphStub
) -> None:
    say = converse(stack_gateway, graph_server, CODE_PHONE)
    say("cuanto debo")
    say("15/03/1985")
    say("quiero pagar 500 en oxxo")
    wa_id = whatsapp_id(CODE_PHONE)
    images = [
        s.body for s in graph_server.sends if s.body["to"] == wa_id and s.body["type"] == "image"
    ]
    if not images:  # the bot may ask to confirm the amount or method first
        say("si")
        images = [
            s.body
            for s in graph_server.sends
            if s.body["to"] == wa_id and s.body["type"] == "image"
        ]
    (image,) = images
    assert image["image"]["link"].startswith("http://pay.test/pay/")
    assert image["image"]["link"].endswith("/qr.png")
    token = image["image"]["link"].removeprefix("http://pay.test/pay/").removesuffix("/qr.png")
    page = stack_gateway.get(f"/pay/{token}")
    assert page.status_code == 200 and "OXXO" in page.text


def test_a_redelivered_webhook_reaches_rasa_once(
    stack_gateway: TestClient, graph_server: GraphStub
) -> None:
    wa_id = whatsapp_id(DUPLICATE_PHONE)
    body = envelope([message("text", {"body": "hola"}, wa_id=wa_id)])
    assert signed_post(stack_gateway, body).json()["stored"] == 1
    assert signed_post(stack_gateway, body).json()["duplicates"] == 1
    wait_until(lambda: _settled(stack_gateway) and graph_server.sends, 60, "the reply")
    first = [s for s in graph_server.sends if s.body["to"] == wa_id]
    assert signed_post(stack_gateway, body).json()["duplicates"] == 1
    wait_until(lambda: _settled(stack_gateway), 30, "nothing more")
    assert [s for s in graph_server.sends if s.body["to"] == wa_id] == first
