"""The workers run on their own event loop: a webhook's ack never waits behind them."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from tests.conftest_gateway import envelope, signed_post, text, wait_inbound_settled
from tests.graph_stub import GraphStub

pytest_plugins = ["tests.conftest_gateway"]


def test_a_webhook_is_stored_and_answered_while_the_workers_loop_is_stuck(
    gateway: TestClient, graph_server: GraphStub, db_url: str
) -> None:
    runtime = gateway.app.state.runtime  # type: ignore[attr-defined]
    stuck, release = threading.Event(), threading.Event()

    def hold_the_workers_loop() -> None:
        stuck.set()
        release.wait(30)

    runtime.workers_loop.call(hold_the_workers_loop)
    assert stuck.wait(5)
    try:
        response = signed_post(gateway, envelope([text("hola")]))
        assert response.status_code == 200
        assert response.json()["stored"] == 1
        assert not release.is_set()  # answered while the workers could not run at all
        assert graph_server.sends == []  # and, indeed, nothing was processed yet
    finally:
        release.set()
    (send,) = graph_server.wait_for_sends(1)
    assert send.body["text"]["body"] == "eco: hola"
    (inbound,) = wait_inbound_settled(db_url)
    assert inbound.status == "done"


def test_stopping_the_gateway_stops_its_workers_loop(gateway: TestClient) -> None:
    runtime = gateway.app.state.runtime  # type: ignore[attr-defined]
    assert runtime.workers_loop.running
    gateway.__exit__(None, None, None)
    assert not runtime.workers_loop.running
    assert not any(t.name == "acuerdo-workers" and t.is_alive() for t in threading.enumerate())
