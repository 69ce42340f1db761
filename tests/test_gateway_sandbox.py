"""The sandbox page and its API, the built-in Graph sink, and /healthz /readyz /metrics."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.config import Settings
from bot.db.models import Account
from bot.gateway.app import create_app
from bot.payments import get_provider
from bot.policy import Policy
from tests.conftest_gateway import FAST, PHONE, envelope, signed_post, text
from tests.graph_stub import GraphStub, wait_until
from tests.rasa_standin import RasaStandIn

pytest_plugins = ["tests.conftest_gateway"]


def test_the_sandbox_page_lists_demo_debtors(
    gateway: TestClient, make_account: Callable[..., Account]
) -> None:
    make_account(full_name="Lucía Demo Pérez")
    page = gateway.get("/sandbox")
    assert page.status_code == 200
    assert "Lucía Demo Pérez" in page.text and PHONE in page.text
    (debtor,) = gateway.get("/sandbox/api/debtors").json()
    assert debtor["phone"] == PHONE and debtor["birth_date"] == "1985-03-15"


def test_a_sandbox_message_travels_the_signed_webhook_and_the_reply_shows_up(
    gateway: TestClient, graph_server: GraphStub, rasa_standin: RasaStandIn
) -> None:
    sent = gateway.post("/sandbox/api/send", json={"phone": "55 1234 0001", "text": "hola"})
    assert sent.status_code == 200 and sent.json()["webhook_status"] == 200
    graph_server.wait_for_sends(1)
    assert rasa_standin.answered[0]["sender"] == PHONE

    def chat() -> list[dict]:
        found = gateway.get("/sandbox/api/messages", params={"phone": PHONE}).json()["messages"]
        return found if len(found) == 2 and found[1]["status"] == "sent" else []

    inbound, outbound = wait_until(chat, what="the chat with its reply")
    assert inbound["direction"] == "in" and inbound["text"] == "hola"
    assert outbound["body"] == {"type": "text", "text": {"body": "eco: hola"}}

    tap = gateway.post(
        "/sandbox/api/send",
        json={
            "phone": PHONE,
            "reply_id": "/affirm",
            "reply_title": "Sí",
            "reply_kind": "button_reply",
        },
    )
    assert tap.status_code == 200
    graph_server.wait_for_sends(2)
    assert rasa_standin.messages()[-1] == "/affirm"


def test_the_sandbox_refuses_bad_input_with_4xx(gateway: TestClient) -> None:
    assert gateway.post("/sandbox/api/send", json={"phone": "123", "text": "x"}).status_code == 400
    assert gateway.post("/sandbox/api/send", json={"phone": PHONE}).status_code == 400
    assert gateway.post("/sandbox/api/send", content=b"nope").status_code == 422
    assert gateway.get("/sandbox/api/messages", params={"phone": "x"}).status_code == 400
    assert gateway.post("/sandbox/api/pay", json={"reference": "0000"}).status_code == 404


def test_without_acuerdo_sandbox_there_is_no_sandbox(
    start_gateway: Callable[..., TestClient], live_gateway_settings: Settings
) -> None:
    client = start_gateway(live_gateway_settings)
    assert client.get("/sandbox").status_code == 404
    assert client.post("/sandbox/graph/1/messages", json={}).status_code == 404


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sandbox_server(gateway_settings: Settings) -> Iterator[str]:
    """A real gateway on a port, with the default Graph URL: sends go to its own sink."""
    port = _free_port()
    settings = gateway_settings.model_copy(
        update={"port": port, "whatsapp_api_base_url": "https://graph.facebook.com/v21.0"}
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, tuning=FAST), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 20, "the sandbox gateway")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(20)


def test_in_the_sandbox_outbound_goes_to_the_built_in_sink(
    sandbox_server: str, graph_server: GraphStub
) -> None:
    response = httpx.post(
        f"{sandbox_server}/sandbox/api/send", json={"phone": PHONE, "text": "hola"}
    )
    assert response.status_code == 200

    def sent() -> list[dict]:
        chat = httpx.get(f"{sandbox_server}/sandbox/api/messages", params={"phone": PHONE}).json()
        return [m for m in chat["messages"] if m["direction"] == "out" and m["status"] == "sent"]

    (reply,) = wait_until(sent, 15, "the reply accepted by the sink")
    assert reply["text"] == "eco: hola"
    assert graph_server.attempts == []  # nothing went to a real Graph API


def test_health_readiness_and_metrics(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub
) -> None:
    assert gateway.get("/healthz").json() == {"status": "ok"}
    ready = gateway.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "rasa": True, "action_server": True}
    rasa_standin.actions_down = True
    not_ready = gateway.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["action_server"] is False
    rasa_standin.actions_down = False

    signed_post(gateway, envelope([text("hola")]))
    graph_server.wait_for_sends(1)
    metrics = gateway.get("/metrics")
    assert metrics.status_code == 200
    body = metrics.text
    for name in (
        'acuerdo_messages_in_total{channel="whatsapp",kind="text"}',
        'acuerdo_messages_out_total{channel="whatsapp",kind="text",status="sent"}',
        "acuerdo_processing_seconds_bucket",
        'acuerdo_queue_depth{queue="inbox"}',
        'acuerdo_queue_depth{queue="outbox"}',
        "acuerdo_channel_api_errors_total",
    ):
        assert name in body, name


def test_the_sandbox_can_simulate_a_payment_confirmation(
    gateway: TestClient,
    gateway_settings: Settings,
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
) -> None:
    code = get_provider(gateway_settings).issue_code(
        session, clock, policy, make_account(), amount_cents=50_000, method="spei"
    )
    session.commit()
    paid = gateway.post("/sandbox/api/pay", json={"reference": code.clabe})
    assert paid.status_code == 200
    assert paid.json()["status"] == "applied"
    assert "ya quedó registrado" in gateway.get(f"/pay/{code.token}").text
