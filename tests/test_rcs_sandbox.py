"""The sandbox's RCS mode: signed RBM pushes through ``/webhooks/rcs``, replies at the built-in
RBM sink, chips and cards on the page."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from bot.config import Settings
from bot.gateway.app import create_app
from tests.conftest_gateway import FAST, PHONE
from tests.graph_stub import GraphStub, wait_until
from tests.rasa_standin import RasaStandIn
from tests.rbm_stub import RbmStub


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sandbox_url(gateway_settings: Settings) -> Iterator[str]:
    """A real gateway on a port in sandbox mode: RCS sends go to its own RBM sink."""
    port = _free_port()
    settings = gateway_settings.model_copy(update={"port": port})
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


def _chat(url: str) -> list[dict]:
    params = {"phone": PHONE, "channel": "rcs"}
    return httpx.get(f"{url}/sandbox/api/messages", params=params).json()["messages"]


def test_the_page_offers_the_rcs_mode(gateway: TestClient) -> None:
    page = gateway.get("/sandbox")
    assert page.status_code == 200
    assert 'value="rcs"' in page.text and "renderRcs" in page.text


def test_an_rcs_chat_in_the_sandbox_travels_the_signed_rbm_webhook(
    sandbox_url: str, rasa_standin: RasaStandIn, graph_server: GraphStub, rbm_server: RbmStub
) -> None:
    rasa_standin.responder = lambda body: [
        {
            "text": f"eco: {body['message']}",
            "buttons": [{"title": "Consultar saldo", "payload": "/ask_balance"}],
        }
    ]
    sent = httpx.post(
        f"{sandbox_url}/sandbox/api/send",
        json={"phone": PHONE, "text": "hola", "channel": "rcs"},
    )
    assert sent.status_code == 200 and sent.json()["webhook_status"] == 200

    def replied() -> list[dict]:
        found = _chat(sandbox_url)
        return [m for m in found if m["direction"] == "out" and m["status"] == "sent"]

    (reply,) = wait_until(replied, 15, "the reply accepted by the RBM sink")
    content = reply["body"]["contentMessage"]
    assert content["text"] == "eco: hola"
    assert content["suggestions"] == [
        {"reply": {"text": "Consultar saldo", "postbackData": "/ask_balance"}}
    ]
    assert rasa_standin.answered[0]["metadata"]["channel"] == "rcs"

    tap = httpx.post(
        f"{sandbox_url}/sandbox/api/send",
        json={
            "phone": PHONE,
            "reply_id": "/ask_balance",
            "reply_title": "Consultar saldo",
            "channel": "rcs",
        },
    )
    assert tap.status_code == 200 and tap.json()["webhook_status"] == 200
    wait_until(lambda: len(replied()) == 2, 15, "the reply to the tapped chip")
    assert rasa_standin.messages()[-1] == "/ask_balance"
    # Nothing left the machine: no Graph API, no Google.
    assert graph_server.attempts == [] and rbm_server.attempts == []
    whatsapp = httpx.get(f"{sandbox_url}/sandbox/api/messages", params={"phone": PHONE}).json()
    assert whatsapp["messages"] == []  # the two channels are two conversations


def test_the_rbm_sink_refuses_a_wrong_token(gateway: TestClient) -> None:
    answer = gateway.post(
        f"/sandbox/rbm/v1/phones/{PHONE}/agentMessages",
        json={"contentMessage": {"text": "x"}},
        headers={"Authorization": "Bearer nope"},
    )
    assert answer.status_code == 401
    bad = gateway.get("/sandbox/api/messages", params={"phone": PHONE, "channel": "telegram"})
    assert bad.status_code == 400
