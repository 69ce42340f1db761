"""Fixtures and helpers of the gateway tests (a pytest plugin: ``tests.conftest_gateway``).

The Graph API and, in unit tests, Rasa's REST webhook are stood in at the network edge by
local HTTP servers; everything else is the real gateway on a real SQLite file.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from bot.channels.whatsapp import SIGNATURE_HEADER, sign_body
from bot.config import SANDBOX_APP_SECRET, SANDBOX_PHONE_NUMBER_ID, Settings
from bot.conversation.tuning import Tuning
from bot.db.engine import session_factory
from bot.db.models import Conversation, Message
from bot.gateway.app import create_app
from tests.graph_stub import GraphStub, wait_until
from tests.rasa_standin import RasaStandIn

REPO_ROOT = Path(__file__).resolve().parent.parent
PINNED_NOW = "2026-11-23"
PHONE = "+525512340001"  # a debtor's number in E.164
WA_ID = "5215512340001"  # the same number as WhatsApp sends it
REENGAGEMENT = {
    "language": "es_MX",
    "body": "Hola, soy el asistente automatizado. Tenemos una respuesta pendiente para ti; "
    "tócale a «Continuar» cuando gustes.",
    "buttons": ["Continuar"],
}

FAST = Tuning(
    poll_interval=30.0,  # tests rely on wake-ups and due times, never on polling
    retry_base=0.05,
    retry_cap=0.4,
    send_timeout=1.0,
    rasa_timeout=5.0,
    lease_seconds=30.0,
    pace_seconds=0.05,
    halt_seconds=60.0,
    max_send_attempts=6,
)

_ids = itertools.count(1)


# -- stand-ins -------------------------------------------------------------------------------
@pytest.fixture
def graph_server() -> Iterator[GraphStub]:
    """The Graph API stand-in; ``graph_server.url`` is the WHATSAPP_API_BASE_URL."""
    with GraphStub() as stub:
        yield stub


@pytest.fixture
def rasa_standin() -> Iterator[RasaStandIn]:
    standin = RasaStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def gateway_policy_file(tmp_path: Path) -> Path:
    """The repository's policy, with the re-engagement template the outbox needs."""
    target = tmp_path / "policy.yml"
    shutil.copy(REPO_ROOT / "policy.yml", target)
    data = yaml.safe_load(target.read_text(encoding="utf-8"))
    data["templates"].setdefault("reanudar_conversacion", REENGAGEMENT)
    target.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return target


@pytest.fixture
def gateway_settings(
    db_url: str,
    graph_server: GraphStub,
    rasa_standin: RasaStandIn,
    gateway_policy_file: Path,
    tmp_path: Path,
) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=db_url,
        now=PINNED_NOW,
        whatsapp_api_base_url=graph_server.url,
        rasa_port=rasa_standin.port,
        action_port=rasa_standin.port,
        policy_file=str(gateway_policy_file),
        var_dir=str(tmp_path / "var"),
        secret_key="test-secret-key",
        public_url="http://testserver",
        sandbox=True,  # the webhooks below are signed with the sandbox's built-in secrets
    )


@pytest.fixture
def live_gateway_settings(gateway_settings: Settings) -> Settings:
    """The same gateway with the sandbox off and every channel secret one of the operator's."""
    return gateway_settings.model_copy(
        update={
            "sandbox": False,
            "whatsapp_app_secret": "operator-app-secret",
            "whatsapp_verify_token": "operator-verify-token",
            "whatsapp_access_token": "operator-access-token",
            "payments_webhook_secret": "operator-payments-secret",
        }
    )


@pytest.fixture
def start_gateway(gateway_settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """Start a gateway (lifespan and workers running); stopped at the end of the test."""
    clients: list[TestClient] = []

    def _start(settings: Settings | None = None, tuning: Tuning = FAST) -> TestClient:
        client = TestClient(create_app(settings or gateway_settings, tuning=tuning))
        client.__enter__()
        clients.append(client)
        return client

    yield _start
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def gateway(start_gateway: Callable[..., TestClient]) -> TestClient:
    return start_gateway()


# -- webhook bodies ------------------------------------------------------------------------
def envelope(
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    *,
    name: str = "Laura Méndez",
    wa_id: str = WA_ID,
    phone_number_id: str = SANDBOX_PHONE_NUMBER_ID,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
    }
    if messages is not None:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id}]
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }


def message(kind: str, content: Any = None, *, wa_id: str = WA_ID, **extra: Any) -> dict[str, Any]:
    """One inbound message of ``kind`` with a fresh wamid."""
    body: dict[str, Any] = {
        "from": wa_id,
        "id": f"wamid.test.{next(_ids)}.{time.monotonic_ns()}",
        "timestamp": str(1795000000 + next(_ids)),
        "type": kind,
        **extra,
    }
    if content is not None:
        body[kind] = content
    return body


def text(body: str, **extra: Any) -> dict[str, Any]:
    return message("text", {"body": body}, **extra)


def signed_post(
    client: TestClient, body: dict[str, Any] | bytes, *, secret: str = SANDBOX_APP_SECRET
) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        "/webhooks/whatsapp",
        content=raw,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(secret, raw)},
    )


# -- database views ------------------------------------------------------------------------
def rows(db_url: str, direction: str | None = None) -> list[Message]:
    with session_factory(db_url)() as session:
        query = select(Message).order_by(Message.id)
        if direction:
            query = query.where(Message.direction == direction)
        return list(session.scalars(query).all())


def hand_to_agent(gateway: TestClient, graph_server: GraphStub, db_url: str) -> None:
    """The debtor says hello, gets the bot's answer, then an agent takes the chat."""
    signed_post(gateway, envelope([text("hola")]))
    graph_server.wait_for_sends(1)
    with session_factory(db_url)() as session:
        session.execute(update(Conversation).values(state="agent"))
        session.commit()


def wait_inbound_settled(db_url: str, timeout: float = 10.0) -> list[Message]:
    """Wait until no inbound message is pending or processing."""
    return wait_until(
        lambda: (
            (found := rows(db_url, "in"))
            and all(r.status not in ("pending", "processing") for r in found)
            and found
        ),
        timeout,
        "inbound messages processed",
    )


def wait_outbound_settled(db_url: str, timeout: float = 10.0) -> list[Message]:
    """Wait until there is outbound mail and none of it is queued or sending."""
    return wait_until(
        lambda: (
            (found := rows(db_url, "out"))
            and all(r.status not in ("queued", "sending") for r in found)
            and found
        ),
        timeout,
        "outbound messages settled",
    )
