"""Several gateway processes on one PostgreSQL: every message answered once, in order,
and a dead process's claim taken over when its lease runs out."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from bot.db.migrate import upgrade
from bot.domain.phones import whatsapp_id
from tests.conftest_gateway import PINNED_NOW, envelope, text, wait_outbound_settled
from tests.graph_stub import GraphStub, describe, wait_until
from tests.rasa_standin import RasaStandIn
from tests.test_gateway_processes import GatewayProcess, free_port, post_signed

pytest_plugins = ["tests.conftest_gateway"]

PEOPLE = [f"+52551234{n:04d}" for n in range(1, 6)]


@pytest.fixture
def pg_env(
    postgres_url: str,
    graph_server: GraphStub,
    rasa_standin: RasaStandIn,
    gateway_policy_file: Path,
    tmp_path: Path,
) -> dict[str, str]:
    upgrade(postgres_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACUERDO_", "WHATSAPP_"))}
    env.update(
        {
            "ACUERDO_DATABASE_URL": postgres_url,
            "ACUERDO_SANDBOX": "1",  # the sandbox's built-in secrets
            "ACUERDO_NOW": PINNED_NOW,
            "WHATSAPP_API_BASE_URL": graph_server.url,
            "RASA_PORT": str(rasa_standin.port),
            "ACTION_PORT": str(rasa_standin.port),
            "ACUERDO_POLICY_FILE": str(gateway_policy_file),
            "ACUERDO_VAR_DIR": str(tmp_path / "var"),
            "ACUERDO_SECRET_KEY": "test-secret-key",
            "ACUERDO_LOG_LEVEL": "WARNING",
            "ACUERDO_POLL_SECONDS": "0.2",  # other processes' work is found by polling
            "ACUERDO_LEASE_SECONDS": "3",
            "ACUERDO_RETRY_BASE_SECONDS": "0.05",
        }
    )
    return env


def _jittery_echo(body: dict[str, Any]) -> list[dict[str, Any]]:
    time.sleep(random.uniform(0, 0.03))  # let the two processes interleave
    return [{"text": f"eco: {body['message']}"}]


def test_two_gateways_on_one_postgres_answer_each_message_once_and_in_order(
    pg_env: dict[str, str], rasa_standin: RasaStandIn, graph_server: GraphStub
) -> None:
    rasa_standin.responder = _jittery_echo
    gateways = [GatewayProcess(pg_env, free_port()), GatewayProcess(pg_env, free_port())]
    try:
        sent = 0
        for turn in range(4):
            for index, phone in enumerate(PEOPLE):
                body = envelope([text(f"{phone[-4:]}-{turn}", wa_id=whatsapp_id(phone))])
                gateway = gateways[(turn + index) % 2]
                assert post_signed(gateway.url, body).status_code == 200
                sent += 1
        graph_server.wait_for_sends(sent, timeout=60)
        wait_until(lambda: len(rasa_standin.answered) == sent, 10, "every message at Rasa")
        # Every send is an outbox row: once all rows are sent, nothing more can go out.
        outbound = wait_outbound_settled(pg_env["ACUERDO_DATABASE_URL"], 20)
        assert len(outbound) == sent and {r.status for r in outbound} == {"sent"}
        assert len(graph_server.sends) == sent
        assert len(rasa_standin.requests) == sent
        for phone in PEOPLE:
            expected = [f"eco: {phone[-4:]}-{turn}" for turn in range(4)]
            mine = [
                describe(s.body) for s in graph_server.sends if s.body["to"] == whatsapp_id(phone)
            ]
            assert mine == expected
    finally:
        for gateway in gateways:
            gateway.terminate()


def test_a_claim_of_a_killed_gateway_is_taken_over_after_its_lease(
    pg_env: dict[str, str], rasa_standin: RasaStandIn, graph_server: GraphStub
) -> None:
    doomed = GatewayProcess(pg_env, free_port())
    rasa_standin.gate.clear()  # the message stays claimed ("processing") by the doomed one
    body = envelope([text("hola", wa_id=whatsapp_id(PEOPLE[0]))])
    assert post_signed(doomed.url, body).status_code == 200
    assert rasa_standin.arrived.wait(10)
    doomed.kill()
    rasa_standin.gate.set()
    claimed_at = time.monotonic()
    survivor = GatewayProcess(pg_env, free_port())
    try:
        graph_server.wait_for_sends(1, timeout=30)
        assert time.monotonic() - claimed_at >= 2  # not before the 3 s lease ran out
        (reply,) = wait_outbound_settled(pg_env["ACUERDO_DATABASE_URL"], 20)
        assert reply.status == "sent"
        assert [describe(s.body) for s in graph_server.sends] == ["eco: hola"]
    finally:
        survivor.terminate()
