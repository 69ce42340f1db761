"""The files debtors send, seen in the console: ``GET /console/media/{message_id}``.

The real gateway on a real SQLite file; the Graph API (media lookups and downloads) and Rasa
are stood in at the network edge.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from bot.channels.whatsapp_media import MediaNotFound, MediaTooLarge, MediaUnavailable, fetch_media
from bot.clock import Clock
from bot.config import SANDBOX_ACCESS_TOKEN, Settings
from bot.console_users import create_console_user
from bot.db.models import Account, Conversation
from bot.domain.conversations import get_or_create_conversation, request_handoff
from tests.conftest_gateway import envelope, message, rows, signed_post, text, wait_until
from tests.graph_stub import GraphStub
from tests.test_console_access import PASSWORD, client_for, login

# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture
def people(session: Session, clock: Clock) -> None:
    for name, role in (("lucia", "agent"), ("mateo", "agent"), ("sara", "supervisor")):
        create_console_user(session, clock, name, PASSWORD, role)
    session.commit()


@pytest.fixture
def escalated(session: Session, clock: Clock, make_account: Callable[..., Account]) -> Conversation:
    """A verified debtor waiting for a person (the same number the webhooks come from)."""
    make_account(phone="+525512340001")
    conversation = get_or_create_conversation(session, clock, "whatsapp", "+525512340001")
    conversation.last_inbound_at = clock.now_utc()
    conversation.verified_at = clock.now_utc()
    request_handoff(session, clock, conversation, reason="debtor_request", priority=40)
    session.commit()
    return conversation


def inbound(client: TestClient, db_url: str, wire: dict[str, object]) -> int:
    """Post a signed inbound message; the id of its row once stored."""
    answer = signed_post(client, envelope([wire]))
    assert answer.status_code == 200, answer.text
    found = wait_until(
        lambda: [r for r in rows(db_url, "in") if r.external_id == wire["id"]], 10, "the row"
    )
    return int(found[0].id)


def receipt(
    client: TestClient, db_url: str, media_id: str = "1234567890", mime: str = "image/png"
) -> int:
    kind = "image" if mime.startswith("image/") else "document"
    content = {"id": media_id, "mime_type": mime, "sha256": "abc"}
    if kind == "document":
        content["filename"] = "comprobante.pdf"
    return inbound(client, db_url, message(kind, content))


def test_an_agent_sees_the_receipt_and_the_second_look_comes_from_disk(
    gateway: TestClient,
    people: None,
    escalated: Conversation,
    db_url: str,
    graph_server: GraphStub,
    gateway_settings: Settings,
) -> None:
    graph_server.add_media("1234567890", PNG, "image/png")
    message_id = receipt(gateway, db_url)
    login(gateway, "lucia")

    answer = gateway.get(f"/console/media/{message_id}")

    assert answer.status_code == 200
    assert answer.content == PNG
    assert answer.headers["content-type"] == "image/png"
    assert answer.headers["content-disposition"] == "inline"
    assert answer.headers["x-content-type-options"] == "nosniff"
    cached = Path(gateway_settings.var_dir) / "media" / str(message_id)
    assert cached.read_bytes() == PNG
    (lookup,) = graph_server.media_fetches("1234567890")
    assert lookup.headers["Authorization"] == f"Bearer {SANDBOX_ACCESS_TOKEN}"
    download = [r for r in graph_server.media_requests if r.path.startswith("/media-bytes/")]
    assert [r.headers["Authorization"] for r in download] == [f"Bearer {SANDBOX_ACCESS_TOKEN}"]

    graph_server.media.clear()  # WhatsApp's link has expired by now: the disk copy is enough
    again = gateway.get(f"/console/media/{message_id}")
    assert (again.status_code, again.content) == (200, PNG)
    assert again.headers["content-type"] == "image/png"
    assert len(graph_server.media_fetches("1234567890")) == 1

    page = gateway.get(f"/console/chats/{escalated.id}").text
    assert f'<img class="receipt" src="/console/media/{message_id}"' in page
    assert 'alt="Comprobante enviado por la persona" loading="lazy"' in page
    assert f'href="/console/media/{message_id}" target="_blank"' in page


def test_a_pdf_is_a_link_and_is_served_as_pdf(
    gateway: TestClient, people: None, escalated: Conversation, db_url: str, graph_server: GraphStub
) -> None:
    graph_server.add_media("555", PDF, "application/pdf")
    message_id = receipt(gateway, db_url, media_id="555", mime="application/pdf")
    login(gateway, "sara")

    page = gateway.get(f"/console/chats/{escalated.id}").text
    assert "Ver documento" in page and f'href="/console/media/{message_id}"' in page
    answer = gateway.get(f"/console/media/{message_id}")
    assert (answer.status_code, answer.content) == (200, PDF)
    assert answer.headers["content-type"] == "application/pdf"


def test_only_who_may_read_the_chat_gets_the_file(
    gateway: TestClient, people: None, escalated: Conversation, db_url: str, graph_server: GraphStub
) -> None:
    graph_server.add_media("1234567890", PNG, "image/png")
    message_id = receipt(gateway, db_url)
    url = f"/console/media/{message_id}"

    nobody = client_for(gateway)
    assert nobody.get(url, follow_redirects=False).status_code == 401
    page_like = nobody.get(url, headers={"Accept": "text/html"}, follow_redirects=False)
    assert page_like.status_code == 303
    assert page_like.headers["location"].startswith("/console/login?next=")

    lucia_csrf = login(gateway, "lucia")
    gateway.post(f"/console/chats/{escalated.id}/claim", data={"csrf_token": lucia_csrf})
    mateo = client_for(gateway)
    login(mateo, "mateo")
    refused = mateo.get(url)
    assert refused.status_code == 403
    assert PNG not in refused.content
    assert graph_server.media_fetches() == []

    sara = client_for(gateway)
    login(sara, "sara")
    assert sara.get(url).content == PNG  # supervisors read every chat


def test_messages_without_a_file_have_no_media(
    gateway: TestClient, people: None, escalated: Conversation, db_url: str, graph_server: GraphStub
) -> None:
    text_id = inbound(gateway, db_url, text("ya pagué"))
    login(gateway, "lucia")
    assert gateway.get(f"/console/media/{text_id}").status_code == 404
    assert gateway.get("/console/media/999999").status_code == 404
    missing = receipt(gateway, db_url, media_id="987")  # WhatsApp no longer has it
    answer = gateway.get(f"/console/media/{missing}", headers={"Accept": "application/json"})
    assert answer.status_code == 404
    assert answer.json()["message"] == "WhatsApp ya no tiene este archivo."
    assert len(graph_server.media_fetches("987")) == 1


def test_the_sandbox_sink_has_no_files(
    start_gateway: Callable[..., TestClient],
    gateway_settings: Settings,
    people: None,
    escalated: Conversation,
    db_url: str,
) -> None:
    sandbox = start_gateway(
        gateway_settings.model_copy(
            update={"whatsapp_api_base_url": "https://graph.facebook.com/v21.0"}
        )
    )
    message_id = receipt(sandbox, db_url)
    login(sandbox, "lucia")

    answer = sandbox.get(f"/console/media/{message_id}", headers={"Accept": "application/json"})
    assert answer.status_code == 404
    assert "sandbox" in answer.json()["message"]
    page = sandbox.get(f"/console/chats/{escalated.id}").text
    assert "/console/media/" not in page
    assert "id de medio 1234567890" in page


def test_fetch_media_refuses_what_is_too_big_and_names_its_failures(
    graph_server: GraphStub,
) -> None:
    graph_server.add_media("42", PNG, "image/png")

    async def fetch(media_id: str, token: str = SANDBOX_ACCESS_TOKEN, **kw: int) -> object:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(headers=headers) as client:
            return await fetch_media(client, graph_server.url, media_id, **kw)

    assert asyncio.run(fetch("42")) == (PNG, "image/png")
    with pytest.raises(MediaTooLarge):
        asyncio.run(fetch("42", max_bytes=10))
    with pytest.raises(MediaNotFound):
        asyncio.run(fetch("43"))
    with pytest.raises(MediaNotFound):
        asyncio.run(fetch("../messages"))
    with pytest.raises(MediaUnavailable):
        asyncio.run(fetch("42", token="wrong"))
