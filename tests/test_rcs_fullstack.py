"""RCS through the real Rasa model and action server: the issue's "done when".

A debtor verifies on WhatsApp, then asks "cuánto debo" over RCS: a verification stays on its
channel, so RCS asks the identity question again (the dialogue's ``verified`` slot is shared
by the phone, the ledger's verification is not); the answer over RCS gets the balance with
suggestion chips at the RBM stand-in."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.config import Settings
from bot.domain.phones import whatsapp_id
from tests.conftest_gateway import FAST, envelope, signed_post, text
from tests.graph_stub import GraphStub, describe, wait_until
from tests.rasa_stack import STACK_NOW, RasaStack
from tests.rbm_stub import AGENT_ID, CLIENT_TOKEN, RbmStub, push, signed_headers, user_message

pytestmark = pytest.mark.rasa

# A stack debtor (tests/rasa_stack.py) this module owns: born 1985-03-15, owes $12,000.00.
PHONE = "+525510000035"


@pytest.fixture
def rcs_stack_gateway(
    rasa_stack: RasaStack,
    graph_server: GraphStub,
    rbm_server: RbmStub,
    service_account_file: Path,
    gateway_policy_file: Path,
    tmp_path: Path,
) -> Iterator[TestClient]:
    """The gateway in front of the real Rasa stack, with RCS pointed at the RBM stand-in."""
    env = rasa_stack.env
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        sandbox=True,  # on the sandbox's built-in secrets (ACUERDO_SANDBOX=1)
        database_url=rasa_stack.db_url,
        internal_token=rasa_stack.token,
        now=STACK_NOW,
        whatsapp_api_base_url=graph_server.url,
        rcs_agent_id=AGENT_ID,
        rcs_client_token=CLIENT_TOKEN,
        rcs_service_account_file=str(service_account_file),
        rcs_api_base_url=rbm_server.rbm_url,
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


def _settled(client: TestClient) -> bool:
    metrics = client.get("/metrics").text
    return 'acuerdo_queue_depth{queue="inbox"} 0.0' in metrics and (
        'acuerdo_queue_depth{queue="outbox"} 0.0' in metrics
    )


def say_on_whatsapp(client: TestClient, graph: GraphStub, words: str) -> list[str]:
    wa_id = whatsapp_id(PHONE)
    before = len([s for s in graph.sends if s.body["to"] == wa_id])
    assert signed_post(client, envelope([text(words, wa_id=wa_id)])).status_code == 200
    wait_until(lambda: len([s for s in graph.sends if s.body["to"] == wa_id]) > before, 60)
    wait_until(lambda: _settled(client), 30, "the outbox to drain")
    return [describe(s.body) for s in graph.sends if s.body["to"] == wa_id][before:]


def test_verified_on_whatsapp_the_debtor_answers_again_over_rcs_then_gets_the_balance(
    rcs_stack_gateway: TestClient, graph_server: GraphStub, rbm_server: RbmStub
) -> None:
    asked = " ".join(say_on_whatsapp(rcs_stack_gateway, graph_server, "cuanto debo"))
    assert "$" not in asked
    verified = " ".join(say_on_whatsapp(rcs_stack_gateway, graph_server, "15/03/1985"))
    assert "$12,000.00" in verified

    def say_on_rcs(words: str) -> list[dict[str, Any]]:
        before = len(rbm_server.sends)
        raw = push(user_message(PHONE, text=words))
        answer = rcs_stack_gateway.post("/webhooks/rcs", content=raw, headers=signed_headers(raw))
        assert answer.status_code == 200 and answer.json()["stored"] == 1
        rbm_server.wait_for_sends(before + 1, timeout=60)
        wait_until(lambda: _settled(rcs_stack_gateway), 30, "the outbox to drain")
        assert all(s.path == f"/v1/phones/{PHONE}/agentMessages" for s in rbm_server.sends)
        return [s.body["contentMessage"] for s in rbm_server.sends[before:]]

    question = say_on_rcs("cuánto debo")
    assert "$" not in " ".join(c.get("text", "") for c in question)
    assert "fecha de nacimiento" in " ".join(c.get("text", "") for c in question)

    contents = say_on_rcs("15/03/1985")
    balance = next(c for c in contents if "$12,000.00" in c.get("text", ""))
    assert "Banco Ejemplo" in balance["text"]
    chips = balance["suggestions"]
    assert chips and all(len(c["reply"]["text"]) <= 25 for c in chips)
    assert all(c["reply"]["postbackData"] for c in chips)
