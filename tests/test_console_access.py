"""The agent console's doors: sign-in, sessions, CSRF, who may read and write which chat,
and the audit trail of agent actions. The real gateway on a real SQLite file; Rasa and
the Graph API are stood in at the network edge."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.config import Settings
from bot.console.auth import SESSION_COOKIE
from bot.console_users import create_console_user
from bot.db.engine import session_factory
from bot.db.models import Account, AuditEntry, Conversation, Message
from bot.domain.conversations import get_or_create_conversation, request_handoff
from bot.domain.phones import whatsapp_id
from tests.graph_stub import GraphStub, wait_until
from tests.rasa_standin import RasaStandIn

PASSWORD = "clave-segura-123"
PAGES = ["/console", "/console/supervision", "/console/chats/{id}"]
APIS = ["/console/api/queue", "/console/api/chats/{id}", "/console/events/queue",
        "/console/chats/{id}/events"]  # fmt: skip
ACTIONS = ["claim", "reply", "template", "code", "settlement", "promise", "verify", "note",
           "return", "close", "assign"]  # fmt: skip


@pytest.fixture
def people(session: Session, clock: Clock) -> dict[str, str]:
    """Two agents and a supervisor."""
    for name, role in (("lucia", "agent"), ("mateo", "agent"), ("sara", "supervisor")):
        create_console_user(session, clock, name, PASSWORD, role)
    session.commit()
    return {"lucia": "agent", "mateo": "agent", "sara": "supervisor"}


@pytest.fixture
def escalated(session: Session, clock: Clock, make_account: Callable[..., Account]) -> Conversation:
    """A debtor who asked for a person a moment ago (verified, window open)."""
    account = make_account(phone="+525512340001")
    conversation = get_or_create_conversation(session, clock, "whatsapp", "+525512340001")
    conversation.last_inbound_at = clock.now_utc()
    conversation.verified_at = clock.now_utc()
    request_handoff(session, clock, conversation, reason="debtor_request", priority=40)
    session.commit()
    assert conversation.account_id == account.id
    return conversation


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign in through the form; the session's CSRF token."""
    form = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    answer = client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    page = client.get("/console")
    csrf = re.search(r'data-csrf="([^"]+)"', page.text)
    assert csrf
    return csrf.group(1)


def client_for(gateway: TestClient) -> TestClient:
    """Another browser on the same running gateway (own cookie jar)."""
    return TestClient(gateway.app)


def audit(db_url: str, action: str) -> list[AuditEntry]:
    with session_factory(db_url)() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def state_of(db_url: str, conversation_id: int) -> tuple[str, int | None]:
    with session_factory(db_url)() as s:
        c = s.get(Conversation, conversation_id)
        assert c is not None
        return c.state, c.assigned_agent_id


def test_no_page_or_api_without_login(
    gateway: TestClient, escalated: Conversation, db_url: str
) -> None:
    for path in PAGES:
        answer = gateway.get(
            path.format(id=escalated.id), headers={"Accept": "text/html"}, follow_redirects=False
        )
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/console/login?next=")
    for path in APIS:
        answer = gateway.get(path.format(id=escalated.id), follow_redirects=False)
        assert answer.status_code == 401, path
    for action in ACTIONS:
        answer = gateway.post(
            f"/console/chats/{escalated.id}/{action}", data={"text": "hola"}, follow_redirects=False
        )
        assert answer.status_code == 401, action
    assert state_of(db_url, escalated.id) == ("queued", None)


def test_a_forged_or_tampered_session_cookie_is_no_login(
    gateway: TestClient, people: dict[str, str]
) -> None:
    login(gateway, "lucia")
    real = gateway.cookies[SESSION_COOKIE]
    stranger = client_for(gateway)
    stranger.cookies.set(SESSION_COOKIE, real[:-2] + ("AA" if not real.endswith("AA") else "BB"))
    assert stranger.get("/console/api/queue").status_code == 401


def test_the_wrong_password_is_refused(gateway: TestClient, people: dict[str, str]) -> None:
    form = gateway.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    answer = gateway.post(
        "/console/login",
        data={"username": "lucia", "password": "no-es-la-clave", "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert answer.status_code == 401
    assert "incorrectos" in answer.text
    assert SESSION_COOKIE not in gateway.cookies
    assert gateway.get("/console/api/queue").status_code == 401


def test_repeated_wrong_passwords_lock_the_name_from_that_address_for_a_while(
    gateway: TestClient, people: dict[str, str]
) -> None:
    form = gateway.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    codes = [
        gateway.post(
            "/console/login",
            data={"username": "mateo", "password": f"mala-{n}", "csrf_token": token.group(1)},
        ).status_code
        for n in range(6)
    ]
    assert codes == [401] * 5 + [429]
    good = gateway.post(
        "/console/login",
        data={"username": "mateo", "password": PASSWORD, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert good.status_code == 429  # even the right password waits
    assert 0 < int(good.headers["Retry-After"]) <= 15 * 60
    assert "Demasiados intentos con este usuario" in good.text
    # Elsewhere (tests/test_hostile_sign_in.py) the same person still signs in.
    elsewhere = TestClient(gateway.app, client=("203.0.113.20", 50000))
    assert login(elsewhere, "mateo")


def test_the_session_cookie_is_http_only_and_same_site(
    gateway: TestClient, people: dict[str, str]
) -> None:
    form = gateway.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    answer = gateway.post(
        "/console/login",
        data={"username": "lucia", "password": PASSWORD, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and SESSION_COOKIE in v
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # the public URL of the tests is http


def test_the_cookie_is_secure_behind_https(
    start_gateway: Callable[..., TestClient], gateway_settings: Settings, people: dict[str, str]
) -> None:
    client = start_gateway(
        gateway_settings.model_copy(update={"public_url": "https://cobranza.mx"})
    )
    form = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    answer = client.post(
        "/console/login",
        data={"username": "lucia", "password": PASSWORD, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    cookies = [v for k, v in answer.headers.multi_items() if k == "set-cookie"]
    assert any(SESSION_COOKIE in c and "Secure" in c for c in cookies)


def test_login_without_the_forms_token_is_refused(
    gateway: TestClient, people: dict[str, str]
) -> None:
    answer = gateway.post(
        "/console/login", data={"username": "lucia", "password": PASSWORD, "csrf_token": "x"}
    )
    assert answer.status_code == 403
    assert SESSION_COOKIE not in gateway.cookies


def test_csrf_is_enforced_on_every_post(
    gateway: TestClient, people: dict[str, str], escalated: Conversation, db_url: str
) -> None:
    csrf = login(gateway, "lucia")
    url = f"/console/chats/{escalated.id}/claim"
    assert gateway.post(url, follow_redirects=False).status_code == 403
    assert gateway.post(url, data={"csrf_token": "nope"}, follow_redirects=False).status_code == 403
    assert (
        gateway.post(url, headers={"X-CSRF-Token": "nope"}, follow_redirects=False).status_code
        == 403
    )
    assert state_of(db_url, escalated.id)[0] == "queued"
    for action in ACTIONS:
        answer = gateway.post(
            f"/console/chats/{escalated.id}/{action}", data={"text": "x"}, follow_redirects=False
        )
        assert answer.status_code == 403, action
    assert gateway.post("/console/logout", follow_redirects=False).status_code == 403

    answer = gateway.post(url, data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303
    assert state_of(db_url, escalated.id)[0] == "agent"


def test_an_agent_cannot_read_another_agents_chat_unless_supervisor(
    gateway: TestClient, people: dict[str, str], escalated: Conversation, db_url: str
) -> None:
    lucia = gateway
    lucia_csrf = login(lucia, "lucia")
    mateo = client_for(gateway)
    mateo_csrf = login(mateo, "mateo")
    chat = f"/console/chats/{escalated.id}"

    assert mateo.get(chat).status_code == 200  # queued chats are everyone's to look at
    lucia.post(f"{chat}/claim", data={"csrf_token": lucia_csrf})

    assert mateo.get(chat).status_code == 403
    assert mateo.get(f"/console/api/chats/{escalated.id}").status_code == 403
    assert mateo.get(f"{chat}/events").status_code == 403
    for action in ("reply", "note", "return", "close", "code"):
        answer = mateo.post(
            f"{chat}/{action}", data={"csrf_token": mateo_csrf, "text": "hola", "amount": "100"}
        )
        assert answer.status_code == 403, action
    taken = mateo.post(f"{chat}/claim", data={"csrf_token": mateo_csrf})
    assert taken.status_code == 403
    assert "la atiende otra persona" in taken.text
    assert mateo.get("/console/supervision", headers={"Accept": "text/html"}).status_code == 403
    assert (
        mateo.post(f"{chat}/assign", data={"csrf_token": mateo_csrf, "username": "mateo"})
    ).status_code == 403

    sara = client_for(gateway)
    sara_csrf = login(sara, "sara")
    assert sara.get(chat).status_code == 200
    assert "lucia" in sara.get("/console/supervision").text
    sara.post(f"{chat}/assign", data={"csrf_token": sara_csrf, "username": "mateo"})

    assert state_of(db_url, escalated.id)[0] == "agent"
    assert mateo.get(chat).status_code == 200
    assert lucia.get(chat).status_code == 403
    (entry,) = audit(db_url, "handoff_reassigned")
    assert entry.actor == "agent:sara"
    assert entry.details == {"from_agent": "lucia", "to_agent": "mateo"}


def test_agent_actions_are_audited_with_the_agents_name(
    gateway: TestClient,
    people: dict[str, str],
    escalated: Conversation,
    db_url: str,
    graph_server: GraphStub,
    rasa_standin: RasaStandIn,
) -> None:
    csrf = login(gateway, "lucia")
    chat = f"/console/chats/{escalated.id}"
    gateway.post(f"{chat}/claim", data={"csrf_token": csrf})
    answer = gateway.post(
        f"{chat}/reply",
        data={"text": "Hola, soy Lucía. ¿En qué te ayudo?"},
        headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
    )
    assert answer.json() == {"ok": True, "message": "Mensaje enviado."}
    gateway.post(f"{chat}/note", data={"csrf_token": csrf, "text": "Pide descuento"})
    gateway.post(f"{chat}/code", data={"csrf_token": csrf, "amount": "500", "method": "oxxo"})
    gateway.post(f"{chat}/return", data={"csrf_token": csrf})

    sends = graph_server.wait_for_sends(2)
    to = whatsapp_id(escalated.address)
    assert (sends[0].body["to"], sends[0].body["type"]) == (to, "text")
    assert sends[0].body["text"]["body"] == "Hola, soy Lucía. ¿En qué te ayudo?"
    assert sends[1].body["to"] == to
    assert sends[1].body["type"] == "image"
    assert "Monto: $500.00" in sends[1].body["image"]["caption"]
    for action in (
        "handoff_claimed",
        "agent_message",
        "agent_note",
        "payment_code",
        "agent_payment_code",
        "handoff_returned",
    ):
        entries = audit(db_url, action)
        assert [e.actor for e in entries] == ["agent:lucia"], action
    assert audit(db_url, "console_login")[0].actor == "agent:lucia"
    with session_factory(db_url)() as s:
        authors = s.scalars(
            select(Message.author).where(Message.direction == "out").order_by(Message.id)
        ).all()
    assert authors == ["agent:lucia", "agent:lucia"]
    # The Rasa tracker was paused at the claim and resumed on the way back.
    events = [r.get("event") for r in rasa_standin.requests if "event" in r]
    assert events == ["pause", "resume"]
    assert state_of(db_url, escalated.id)[0] == "bot"


def test_a_chat_stays_with_the_agent_when_rasa_cannot_be_resumed(
    gateway: TestClient,
    people: dict[str, str],
    escalated: Conversation,
    db_url: str,
    rasa_standin: RasaStandIn,
) -> None:
    csrf = login(gateway, "lucia")
    chat = f"/console/chats/{escalated.id}"
    gateway.post(f"{chat}/claim", data={"csrf_token": csrf})
    rasa_standin.rasa_down = True

    answer = gateway.post(f"{chat}/return", data={"csrf_token": csrf}, follow_redirects=True)

    assert "No pudimos reactivar al asistente" in answer.text
    assert state_of(db_url, escalated.id)[0] == "agent"
    assert audit(db_url, "handoff_returned") == []


def test_outside_the_24_hour_window_only_templates_go(
    gateway: TestClient,
    people: dict[str, str],
    escalated: Conversation,
    db_url: str,
    clock: Clock,
    graph_server: GraphStub,
) -> None:
    with session_factory(db_url)() as s:
        conversation = s.get(Conversation, escalated.id)
        assert conversation is not None
        conversation.last_inbound_at = clock.now_utc() - timedelta(hours=25)
        s.commit()
    csrf = login(gateway, "lucia")
    chat = f"/console/chats/{escalated.id}"
    gateway.post(f"{chat}/claim", data={"csrf_token": csrf})

    page = gateway.get(chat).text
    assert 'id="reply-form"' not in page
    assert 'id="template-form"' in page and "reanudar_conversacion" in page
    refused = gateway.post(
        f"{chat}/reply",
        data={"text": "hola"},
        headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
    )
    assert refused.status_code == 409
    assert "solo puedes enviar una plantilla" in refused.json()["message"]

    gateway.post(f"{chat}/template", data={"csrf_token": csrf, "template": "reanudar_conversacion"})
    (send,) = graph_server.wait_for_sends(1)
    assert send.body["type"] == "template"
    assert send.body["template"]["name"] == "reanudar_conversacion"
    wait_until(lambda: audit(db_url, "agent_template"), 5, "the audit entry")
