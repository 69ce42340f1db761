"""``ACUERDO_WORKERS=separate``: the gateway's process takes requests, the workers run in a
process of their own (what ``acuerdo up`` runs), real processes over real HTTP and sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest_gateway import envelope, rows, text
from tests.graph_stub import GraphStub, describe, wait_until
from tests.rasa_standin import RasaStandIn
from tests.test_gateway_processes import (  # noqa: F401 (gateway_env is a fixture)
    WORKERS_APP,
    GatewayProcess,
    free_port,
    gateway_env,
    post_signed,
)

pytest_plugins = ["tests.conftest_gateway"]


@pytest.fixture
def split_env(gateway_env: dict[str, str]) -> dict[str, str]:  # noqa: F811
    return {
        **gateway_env,
        "ACUERDO_WORKERS": "separate",
        "ACUERDO_WORKERS_PORT": str(free_port()),
        "ACUERDO_PORT": str(free_port()),
        # Idle workers look for work once a minute: a reply within seconds was woken.
        "ACUERDO_POLL_SECONDS": "60",
    }


class Split:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.workers = self.start_workers()
        self.gateway = GatewayProcess(env, int(env["ACUERDO_PORT"]))

    def start_workers(self) -> GatewayProcess:
        return GatewayProcess(self.env, int(self.env["ACUERDO_WORKERS_PORT"]), app=WORKERS_APP)

    @property
    def var_dir(self) -> Path:
        return Path(self.env["ACUERDO_VAR_DIR"])

    def token(self) -> str:
        return (self.var_dir / "internal_token").read_text().strip()


@pytest.fixture
def split(split_env: dict[str, str]) -> Iterator[Split]:
    processes = Split(split_env)
    yield processes
    processes.gateway.terminate()
    processes.workers.terminate()


def test_the_gateway_stores_and_the_woken_workers_answer_at_once(
    split: Split, graph_server: GraphStub, db_url: str
) -> None:
    response = post_signed(split.gateway.url, envelope([text("cuanto debo")]))
    assert response.status_code == 200 and response.json()["stored"] == 1
    graph_server.wait_for_sends(1, timeout=15)  # long before the workers' next poll
    assert [describe(s.body) for s in graph_server.sends] == ["eco: cuanto debo"]
    wait_until(lambda: rows(db_url, "out")[0].status == "sent", 10, "the reply recorded")


def test_the_wake_socket_is_its_owner_s_alone_and_ignores_what_it_does_not_know(
    split: Split, graph_server: GraphStub
) -> None:
    wake_socket = split.var_dir / "workers.sock"
    assert wake_socket.stat().st_mode & 0o077 == 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stranger:
        for junk in (b"", b"\xff\xfe", b"x" * 64, b"pipeline-and-more", b"outbox\x00"):
            stranger.sendto(junk, str(wake_socket))
    response = post_signed(split.gateway.url, envelope([text("hola")]))
    assert response.status_code == 200
    graph_server.wait_for_sends(1, timeout=15)
    assert [describe(s.body) for s in graph_server.sends] == ["eco: hola"]


def test_webhooks_are_taken_while_the_workers_are_dead_and_answered_once_after(
    split: Split, rasa_standin: RasaStandIn, graph_server: GraphStub, db_url: str
) -> None:
    rasa_standin.gate.clear()  # Rasa is slow: the first reply is not written yet
    first = post_signed(split.gateway.url, envelope([text("uno")]))
    assert first.status_code == 200 and first.json()["stored"] == 1
    assert rasa_standin.arrived.wait(10)
    split.workers.kill()  # kill -9 in the middle of the turn
    second = post_signed(split.gateway.url, envelope([text("dos")]))
    assert second.status_code == 200 and second.json()["stored"] == 1  # the ack does not care
    rasa_standin.gate.set()
    assert graph_server.sends == []

    split.workers = split.start_workers()  # recovers the claim the dead process held
    graph_server.wait_for_sends(2, timeout=30)
    wait_until(
        lambda: [r.status for r in rows(db_url, "out")] == ["sent", "sent"], 10, "both recorded"
    )
    assert sorted(describe(s.body) for s in graph_server.sends) == ["eco: dos", "eco: uno"]


def test_readiness_covers_the_workers_and_their_endpoints_want_the_internal_token(
    split: Split,
) -> None:
    ready = httpx.get(f"{split.gateway.url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["checks"]["workers"] is True
    workers = split.workers.url
    assert httpx.get(f"{workers}/healthz", timeout=5).status_code == 200
    for path in ("/readyz", "/metrics"):
        assert httpx.get(f"{workers}{path}", timeout=5).status_code == 401
        forged = {"Authorization": "Bearer not-the-token"}
        assert httpx.get(f"{workers}{path}", headers=forged, timeout=5).status_code == 401
    bearer = {"Authorization": f"Bearer {split.token()}"}
    metrics = httpx.get(f"{workers}/metrics", headers=bearer, timeout=5)
    assert metrics.status_code == 200 and "acuerdo_" in metrics.text
    assert httpx.get(f"{workers}/docs", timeout=5).status_code == 404

    split.workers.kill()
    down = httpx.get(f"{split.gateway.url}/readyz", timeout=10)
    assert down.status_code == 503 and down.json()["checks"]["workers"] is False


def test_the_gateway_s_metrics_include_the_workers_counters(
    split: Split, graph_server: GraphStub
) -> None:
    """One scrape of the gateway still sees the whole gateway: the sends are counted in the
    workers' process, the webhook in the gateway's."""
    assert post_signed(split.gateway.url, envelope([text("hola")])).status_code == 200
    graph_server.wait_for_sends(1, timeout=15)
    bearer = {"Authorization": f"Bearer {split.token()}"}

    def sent_in(exposition: str) -> float:
        families = {f.name: f for f in text_string_to_metric_families(exposition)}
        samples = families["acuerdo_messages_out"].samples
        return sum(s.value for s in samples if s.labels.get("status") == "sent")

    wait_until(
        lambda: sent_in(httpx.get(f"{split.workers.url}/metrics", headers=bearer).text) == 1,
        10,
        "the workers counting the send",
    )
    gateway = httpx.get(f"{split.gateway.url}/metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(gateway)}
    assert sent_in(gateway) == 1
    inbound = families["acuerdo_messages_in"].samples
    assert sum(s.value for s in inbound if s.name.endswith("_total")) == 1
    assert families["acuerdo_workers_scraped"].samples[0].value == 1
    assert gateway.count("# TYPE acuerdo_messages_out_total counter") == 1

    split.workers.kill()
    alone = httpx.get(f"{split.gateway.url}/metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(alone)}
    assert families["acuerdo_workers_scraped"].samples[0].value == 0
