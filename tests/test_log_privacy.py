"""The gateway's logs never hold a full phone number, a birth date, a token or a secret.

A real gateway process (``uvicorn bot.gateway.app:app_from_env``, as ``acuerdo up`` runs it)
writes everything it prints — structlog events, standard-library logging, uvicorn's access
log — to a file while realistic traffic goes through it: WhatsApp texts and identity answers
with birth dates in several spellings, statuses, Graph failures whose bodies carry the
number and the token, the Meta handshake, a payment webhook and the payment page, an agent
signing in to the console and acting, and RCS with an SMS fallback. Then every line is
searched for the debtors' numbers (E.164, wa_id, 10-digit national, with or without
separators), their birth dates, and every credential the process holds or handed out.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import create_engine
from sqlalchemy import text as sa_text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.channels.whatsapp import SIGNATURE_HEADER, sign_body
from bot.clock import Clock
from bot.config import Settings
from bot.console_users import create_console_user
from bot.db.models import PaymentCode
from bot.domain.conversations import get_or_create_conversation, request_handoff
from bot.domain.phones import whatsapp_id
from bot.gateway.logging import ScrubFilter, scrub, scrub_text
from bot.gateway.supervisor import ChildSpec, Supervisor
from bot.payments import get_provider
from bot.payments.local import local_webhook_body, sign_local_webhook
from bot.policy import Policy
from tests.conftest_gateway import PINNED_NOW, REPO_ROOT, envelope, message, text
from tests.graph_stub import wait_until
from tests.rasa_standin import RasaStandIn
from tests.rbm_stub import (
    AGENT_ID,
    CLIENT_TOKEN,
    SMS_FROM,
    SMS_SID,
    SMS_TOKEN,
    RbmStub,
    push,
    signed_headers,
    user_message,
)
from tests.test_gateway_processes import free_port

pytest_plugins = ["tests.conftest_gateway", "tests.rbm_stub"]

# Production-like credentials (not the sandbox's): each is searched for in the logs.
ACCESS_TOKEN = "EAAGm0PX4ZCpsBAKZCtokenQ7vJ2u9Lw3X"
APP_SECRET = "app-secret-4f9d2c8e1b7a"
VERIFY_TOKEN = "verify-token-b3e8a1d4"
PHONE_NUMBER_ID = "109876543210987"
PAYMENTS_SECRET = "payments-secret-8c1f0e7d"
SECRET_KEY = "secret-key-2d7b9e4c6a1f"
PASSWORD = "clave-segura-9081"

WHATSAPP_DEBTOR = "+525512340001"  # make_account's first debtor
CONSOLE_DEBTOR = "+525512340002"
RCS_DEBTOR = "+525587650003"
SMS_DEBTOR = "+525587650004"  # not RCS-capable: falls back to SMS
PHONES = [WHATSAPP_DEBTOR, CONSOLE_DEBTOR, RCS_DEBTOR, SMS_DEBTOR]
BIRTH_DATES = {
    WHATSAPP_DEBTOR: date(1985, 3, 15),
    CONSOLE_DEBTOR: date(1979, 11, 2),
    RCS_DEBTOR: date(1991, 7, 28),
}
MONTHS = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
          "septiembre", "octubre", "noviembre", "diciembre"]  # fmt: skip


# -- what must never appear ----------------------------------------------------------------
def phone_patterns(e164: str) -> list[re.Pattern[str]]:
    """The number as E.164, wa_id and national digits, with or without separators."""
    national = e164.removeprefix("+52")
    sep = r"[\s\-.()/]{0,3}"

    def spaced(digits: str) -> str:
        return sep.join(digits)

    forms = {national, "52" + national, "521" + national}
    return [re.compile(r"(?<!\d)" + spaced(form) + r"(?!\d)") for form in forms]


def birth_date_spellings(born: date) -> list[str]:
    d, m, y = born.day, born.month, born.year
    month = MONTHS[m - 1]
    return [
        f"{d:02d}/{m:02d}/{y}", f"{d}/{m}/{y}", f"{d:02d}-{m:02d}-{y}", f"{d:02d}.{m:02d}.{y}",
        f"{y}-{m:02d}-{d:02d}", f"{y}/{m:02d}/{d:02d}", f"{y}{m:02d}{d:02d}", f"{d:02d}{m:02d}{y}",
        f"{d} de {month} de {y}", f"{d} de {month} del {y}", f"{d} {month} {y}",
        f"{month} {d}, {y}", f"{d:02d}/{m:02d}/{y % 100:02d}",
    ]  # fmt: skip


@dataclass
class Leak:
    what: str
    line: str


def find_leaks(log: str, secrets: dict[str, str]) -> list[Leak]:
    """Every log line holding a debtor's number, birth date or one of ``secrets``."""
    leaks = []
    for line in log.splitlines():
        lowered = line.lower()
        for phone in PHONES:
            if any(p.search(line) for p in phone_patterns(phone)):
                leaks.append(Leak(f"phone {phone}", line))
        for phone, born in BIRTH_DATES.items():
            for spelling in birth_date_spellings(born):
                if spelling.lower() in lowered:
                    leaks.append(Leak(f"birth date of {phone} as {spelling!r}", line))
        for name, secret in secrets.items():
            if secret and secret.lower() in lowered:
                leaks.append(Leak(name, line))
    return leaks


# -- a Graph API stand-in whose errors carry what must not be logged ------------------------
@dataclass
class Scripted:
    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass
class HostileGraph:
    """Answers the first sends with failures quoting the number and the token, then accepts."""

    faulty_recipient: str  # the wa_id whose sends get the failures
    failures: deque[Scripted] = field(default_factory=deque)
    sends: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (wamid, body)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        graph = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _reply(self, status: int, raw: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if body.get("status") == "read":  # mark-as-read: never faulted
                    self._reply(200, b'{"success": true}', "application/json")
                    return
                with graph._lock:
                    graph.sends.append(body)
                    # Only the WhatsApp debtor's sends fail: the others' path stays predictable.
                    faulty = graph.failures and body.get("to") == graph.faulty_recipient
                    failure = graph.failures.popleft() if faulty else None
                    wamid = f"wamid.hostile.{uuid.uuid4().hex}"
                    if failure is None:
                        graph.accepted.append((wamid, body))
                if failure is not None:
                    self._reply(failure.status, failure.body, failure.content_type)
                else:
                    answer = {"messaging_product": "whatsapp", "messages": [{"id": wamid}]}
                    self._reply(200, json.dumps(answer).encode(), "application/json")

        return Handler


def graph_error(status: int, code: int, message: str, details: str) -> Scripted:
    error = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details},
        "fbtrace_id": "AbCdEfGh123",
    }
    return Scripted(status, json.dumps({"error": error}).encode())


def hostile_failures() -> deque[Scripted]:
    wa_id = whatsapp_id(WHATSAPP_DEBTOR)
    national = WHATSAPP_DEBTOR.removeprefix("+52")
    return deque(
        [
            Scripted(
                502,
                f"<html>Bad gateway for to={wa_id} Authorization: Bearer {ACCESS_TOKEN}"
                "</html>".encode(),
                "text/html",
            ),
            graph_error(429, 130429, f"Rate limit hit sending to +{wa_id}", wa_id),
            graph_error(
                500,
                131000,
                f"Something went wrong for {national[:2]} {national[2:6]} {national[6:]}",
                f"to: {WHATSAPP_DEBTOR}",
            ),
            graph_error(400, 100, f"(#100) Invalid parameter to={wa_id}", f"to {wa_id}"),
        ]
    )


# -- the gateway process --------------------------------------------------------------------
@dataclass
class Debtors:
    code: PaymentCode
    console_conversation_id: int


@pytest.fixture
def debtors(
    session: Session, clock: Clock, policy: Policy, make_account: Any, gateway_settings: Settings
) -> Debtors:
    whatsapp = make_account(phone=WHATSAPP_DEBTOR, birth_date=BIRTH_DATES[WHATSAPP_DEBTOR])
    console = make_account(phone=CONSOLE_DEBTOR, birth_date=BIRTH_DATES[CONSOLE_DEBTOR])
    make_account(phone=RCS_DEBTOR, birth_date=BIRTH_DATES[RCS_DEBTOR])
    make_account(phone=SMS_DEBTOR)
    settings = gateway_settings.model_copy(
        update={"payments_webhook_secret": PAYMENTS_SECRET, "secret_key": SECRET_KEY}
    )
    code = get_provider(settings).issue_code(
        session, clock, policy, whatsapp, amount_cents=125_000, method="oxxo"
    )
    create_console_user(session, clock, "lucia", PASSWORD, "supervisor")
    conversation = get_or_create_conversation(session, clock, "whatsapp", CONSOLE_DEBTOR)
    conversation.last_inbound_at = clock.now_utc()
    request_handoff(session, clock, conversation, reason="debtor_request", priority=40)
    session.commit()
    assert conversation.account_id == console.id
    session.expunge_all()
    return Debtors(code, conversation.id)


def identity_responder(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Rasa's side of the identity gate, briefly (no echo: replies are not at issue here)."""
    if "message" not in body:  # a tracker event from the console
        return []
    said = str(body["message"])
    if any(ch.isdigit() for ch in said):
        return [{"text": "Gracias, ya confirmé tu identidad. Soy un asistente automatizado."}]
    return [{"text": "Hola, soy un asistente automatizado. ¿Me confirmas tu fecha de nacimiento?"}]


class LoggedGateway:
    """The gateway as a production process, everything it prints going to ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path, uvicorn_level: str) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bot.gateway.app:app_from_env", "--factory",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", uvicorn_level],
            env=env, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self._healthy, 30, "the gateway to answer /healthz")
        self.http = httpx.Client(base_url=self.url, timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _healthy(self) -> bool:
        assert self.process.poll() is None, self.log_path.read_text(errors="replace")[-3000:]
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def whatsapp(self, body: dict[str, Any], secret: str = APP_SECRET) -> httpx.Response:
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(secret, raw)}
        return self.http.post("/webhooks/whatsapp", content=raw, headers=headers)

    def stop(self) -> str:
        """SIGTERM (a clean shutdown, which logs too); everything the process printed."""
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self._log.close()
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def hostile_graph() -> Iterator[HostileGraph]:
    graph = HostileGraph(whatsapp_id(WHATSAPP_DEBTOR), hostile_failures())
    yield graph
    graph.close()


@pytest.fixture
def gateway_env(
    db_url: str,
    rasa_standin: RasaStandIn,
    hostile_graph: HostileGraph,
    rbm_server: RbmStub,
    service_account_file: Path,
    gateway_policy_file: Path,
    tmp_path: Path,
) -> dict[str, str]:
    rasa_standin.responder = identity_responder
    rbm_server.not_rcs_capable.add(SMS_DEBTOR)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACUERDO_", "WHATSAPP_"))}
    env.update(
        {
            "ACUERDO_DATABASE_URL": db_url,
            "ACUERDO_NOW": PINNED_NOW,
            "ACUERDO_SECRET_KEY": SECRET_KEY,
            "ACUERDO_POLICY_FILE": str(gateway_policy_file),
            "ACUERDO_VAR_DIR": str(tmp_path / "var"),
            "ACUERDO_PUBLIC_URL": "http://cobranza.example.mx",  # cookies without Secure
            "ACUERDO_RETRY_BASE_SECONDS": "0.05",
            "ACUERDO_RETRY_CAP_SECONDS": "0.3",
            "RASA_PORT": str(rasa_standin.port),
            "ACTION_PORT": str(rasa_standin.port),
            "WHATSAPP_API_BASE_URL": hostile_graph.url,
            "WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
            "WHATSAPP_APP_SECRET": APP_SECRET,
            "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
            "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
            "PAYMENTS_WEBHOOK_SECRET": PAYMENTS_SECRET,
            "RCS_AGENT_ID": AGENT_ID,
            "RCS_CLIENT_TOKEN": CLIENT_TOKEN,
            "RCS_SERVICE_ACCOUNT_FILE": str(service_account_file),
            "RCS_API_BASE_URL": rbm_server.rbm_url,
            "SMS_API_BASE_URL": rbm_server.sms_url,
            "SMS_ACCOUNT_SID": SMS_SID,
            "SMS_AUTH_TOKEN": SMS_TOKEN,
            "SMS_FROM": SMS_FROM,
        }
    )
    return env


# -- the traffic ----------------------------------------------------------------------------
def whatsapp_traffic(gateway: LoggedGateway, graph: HostileGraph) -> None:
    wa_id = whatsapp_id(WHATSAPP_DEBTOR)
    meta: dict[str, Any] = {"phone_number_id": PHONE_NUMBER_ID, "wa_id": wa_id}
    handshake = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
    assert (
        gateway.http.get(
            "/webhooks/whatsapp", params={**handshake, "hub.verify_token": VERIFY_TOKEN}
        ).text
        == "1158201444"
    )
    assert (
        gateway.http.get(
            "/webhooks/whatsapp", params={**handshake, "hub.verify_token": "wrong-" + VERIFY_TOKEN}
        ).status_code
        == 403
    )
    said = ["hola, quiero saber cuánto debo", "15/03/1985", "nací el 15 de marzo de 1985",
            "1985-03-15", f"mi número es {WHATSAPP_DEBTOR} y el otro 55 1234 0001"]  # fmt: skip
    for words in said:
        assert gateway.whatsapp(envelope([text(words, wa_id=wa_id)], **meta)).status_code == 200
    # A broken item next to a good one (422), a bad signature (401), a redelivery.
    broken = dict(text("15/03/1985", wa_id=wa_id), **{"from": "52155123400019999"})
    good = text("¿sigue ahí?", wa_id=wa_id)
    assert gateway.whatsapp(envelope([broken, good], **meta)).status_code == 422
    assert gateway.whatsapp(envelope([good], **meta), secret="nope").status_code == 401
    assert gateway.whatsapp(envelope([good], **meta)).json()["duplicates"] == 1
    sticker = message("sticker", {"id": "media-1", "mime_type": "image/webp"}, wa_id=wa_id)
    assert gateway.whatsapp(envelope([sticker], **meta)).status_code == 200
    sms_wa_id = whatsapp_id(SMS_DEBTOR)

    def sent_to(someone: str) -> list[str]:
        return [wamid for wamid, body in graph.accepted if body.get("to") == someone]

    # The start-up campaign reminds the SMS debtor too; the replies get past the failures.
    wait_until(lambda: len(sent_to(wa_id)) >= 4 and sent_to(sms_wa_id), 30, "the sends")
    # Receipts for what was sent, and a failure naming the number (falls back to RCS, SMS).
    statuses: list[dict[str, Any]] = [
        {"id": wamid, "status": status, "timestamp": "1795000000", "recipient_id": wa_id}
        for wamid in sent_to(wa_id)[:3]
        for status in ("sent", "delivered", "read")
    ]
    statuses.append(
        {
            "id": sent_to(sms_wa_id)[0],
            "status": "failed",
            "timestamp": "1795000001",
            "recipient_id": sms_wa_id,
            "errors": [
                {
                    "code": 131026,
                    "title": f"Message undeliverable to {sms_wa_id}",
                    "message": f"Message undeliverable to +{sms_wa_id}",
                    "error_data": {"details": f"Recipient {SMS_DEBTOR} unreachable"},
                }
            ],
        }
    )
    assert gateway.whatsapp(envelope(statuses=statuses, **meta)).status_code == 200


def payment_traffic(gateway: LoggedGateway, code: PaymentCode) -> None:
    raw = local_webhook_body(
        event_id="evt-privacy-1",
        reference=code.reference,
        amount_cents=code.amount_cents,
        paid_at=datetime(2026, 11, 23, 17, 0, tzinfo=timezone.utc),
    )
    for secret, expected in (("wrong", 401), (PAYMENTS_SECRET, 200)):
        answer = gateway.http.post(
            "/webhooks/payments/local",
            content=raw,
            headers={
                "Content-Type": "application/json",
                "X-Acuerdo-Signature": sign_local_webhook(secret, raw),
            },
        )
        assert answer.status_code == expected, answer.text
    assert gateway.http.get(f"/pay/{code.token}").status_code == 200
    assert gateway.http.get(f"/pay/{code.token}/qr.png").status_code == 200
    assert gateway.http.get(f"/pay/{code.token}x/qr.svg").status_code == 404


def console_traffic(
    gateway: LoggedGateway, conversation_id: int, rasa: RasaStandIn
) -> dict[str, str]:
    """Sign in and act on a chat; the browser's cookie and CSRF token (secrets too)."""
    browser = httpx.Client(base_url=gateway.url, timeout=10)
    form = browser.get("/console/login")
    login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert login_csrf, form.text
    wrong = {"username": "lucia", "password": "no-" + PASSWORD, "csrf_token": login_csrf[1]}
    assert browser.post("/console/login", data=wrong).status_code in (200, 401, 403)
    form = browser.get("/console/login")
    login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert login_csrf
    answer = browser.post(
        "/console/login",
        data={"username": "lucia", "password": PASSWORD, "csrf_token": login_csrf[1]},
    )
    assert answer.status_code == 303, answer.text
    page = browser.get("/console")
    csrf = re.search(r'data-csrf="([^"]+)"', page.text)
    assert csrf, page.text
    chat = f"/console/chats/{conversation_id}"
    assert browser.get(chat).status_code == 200
    born = BIRTH_DATES[CONSOLE_DEBTOR]
    rasa.rasa_down = True  # the tracker cannot be paused: logged, and the agent told
    claimed = browser.post(f"{chat}/claim", data={"csrf_token": csrf[1]})
    assert claimed.status_code == 303, claimed.text[:500]
    rasa.rasa_down = False
    for action, data in (
        ("verify", {"birth_date": born.strftime("%d/%m/%Y"), "last4": "0002"}),
        ("reply", {"text": f"Confirmo tu fecha {born:%d/%m/%Y} y tu número {CONSOLE_DEBTOR}"}),
        ("note", {"text": f"Nació el {born:%d/%m/%Y}; tel. {CONSOLE_DEBTOR}"}),
        ("return", {}),
    ):  # fmt: skip
        done = browser.post(f"{chat}/{action}", data={**data, "csrf_token": csrf[1]})
        assert done.status_code == 303, (action, done.text[:500])
    assert browser.get("/console/api/queue").status_code == 200
    cookie = browser.cookies.get("acuerdo_console") or ""
    assert cookie
    browser.post("/console/logout", data={"csrf_token": csrf[1]})
    browser.close()
    return {"console session cookie": cookie, "console CSRF token": csrf[1],
            "login CSRF token": login_csrf[1]}  # fmt: skip


def rcs_traffic(gateway: LoggedGateway, rbm: RbmStub) -> None:
    secret = "rcs-handshake-" + uuid.uuid4().hex[:8]
    assert (
        gateway.http.post(
            "/webhooks/rcs", json={"clientToken": CLIENT_TOKEN, "secret": secret}
        ).text
        == secret
    )
    for phone, words in (
        (RCS_DEBTOR, "hola"),
        (RCS_DEBTOR, "28/07/1991"),
        (RCS_DEBTOR, "28 de julio de 1991"),
        (SMS_DEBTOR, "hola, ¿me ayudas?"),
    ):
        raw = push(user_message(phone, text=words))
        answer = gateway.http.post("/webhooks/rcs", content=raw, headers=signed_headers(raw))
        assert answer.status_code == 200, answer.text
    wait_until(lambda: len(rbm.sends) >= 3 and rbm.sms, 30, "RCS replies and the SMS fallback")
    assert any(s.body.get("To") == SMS_DEBTOR for s in rbm.sms)


def settled(gateway: LoggedGateway) -> bool:
    metrics = gateway.http.get("/metrics").text
    return all(
        f'acuerdo_queue_depth{{queue="{queue}"}} 0.0' in metrics for queue in ("inbox", "outbox")
    )


# -- the test -------------------------------------------------------------------------------
@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_the_gateway_logs_no_number_birth_date_or_secret(
    level: str,
    gateway_env: dict[str, str],
    debtors: Debtors,
    hostile_graph: HostileGraph,
    rbm_server: RbmStub,
    rasa_standin: RasaStandIn,
    service_account_file: Path,
    tmp_path: Path,
) -> None:
    env = {**gateway_env, "ACUERDO_LOG_LEVEL": level}
    gateway = LoggedGateway(env, tmp_path / "gateway.log", level.lower())
    try:
        whatsapp_traffic(gateway, hostile_graph)
        payment_traffic(gateway, debtors.code)
        console_secrets = console_traffic(gateway, debtors.console_conversation_id, rasa_standin)
        rcs_traffic(gateway, rbm_server)
        wait_until(lambda: settled(gateway), 30, "inbox and outbox to drain")
    finally:
        log = gateway.stop()

    private_key = json.loads(service_account_file.read_text())["private_key"]
    key_body = "".join(private_key.splitlines()[1:3])
    secrets = {
        "WhatsApp access token": ACCESS_TOKEN,
        "WhatsApp app secret": APP_SECRET,
        "WhatsApp verify token": VERIFY_TOKEN,
        "payments webhook secret": PAYMENTS_SECRET,
        "ACUERDO_SECRET_KEY": SECRET_KEY,
        "RCS client token": CLIENT_TOKEN,
        "SMS auth token": SMS_TOKEN,
        "SMS basic credentials": base64.b64encode(f"{SMS_SID}:{SMS_TOKEN}".encode()).decode(),
        "RBM service-account key": key_body[:40],
        "console password": PASSWORD,
        "payment page token": debtors.code.token,
        **console_secrets,
        **{f"RBM access token {n}": token for n, token in enumerate(rbm_server.issued)},
    }
    # The log is the real thing: it has the traffic we sent, or the scan proves nothing.
    for expected in ("inbox.stored", "outbox.retry", "payments.webhook", "/console/login",
                     "/webhooks/whatsapp", "/pay/", "fallback.hop", "console.tracker_event_failed",
                     "outbox.delivery_failed", "channel=sms"):  # fmt: skip
        assert expected in log, f"{expected!r} missing from the log:\n{log[-3000:]}"
    leaks = find_leaks(log, secrets)
    report = "\n".join(f"{leak.what}: {leak.line[:300]}" for leak in leaks[:40])
    assert not leaks, f"{len(leaks)} log lines leak personal data or secrets:\n{report}"


# -- the safety net, alone --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "gone"),
    [
        ("could not reach 5215512340001", "5512340001"),
        ("to +52 1 55 1234 0001 failed", "1234 0001"),
        ("tel. (55) 1234-0001", "1234-0001"),
        ("55.1234.0001 no contesta", "1234.0001"),
        ("nació el 15/03/1985", "1985"),
        ("born 1985-03-15", "1985"),
        ("dice: 15 de marzo de 1985", "1985"),
        ("Authorization: Bearer EAAGm0PX4ZCpsBAKZCtoken", "EAAGm0PX4ZCpsBAKZCtoken"),
        ("https://x/?access_token=abc123&n=1", "abc123"),
        ('{"client_secret": "s3cr3t-value"}', "s3cr3t-value"),
        ("GET /pay/eyJjIjoxfQ.omTSUgT63V-5xchTgN/qr.png", "eyJjIjoxfQ"),
    ],
)
def test_the_safety_net_hides_numbers_birth_dates_and_tokens_in_any_text(
    raw: str, gone: str
) -> None:
    assert gone not in scrub_text(raw)


@pytest.mark.parametrize(
    "kept",
    [
        "2026-11-23T07:23:41.926182",
        "2026-11-23 07:23:41+00:00",
        "promesa para el 27/11/2026",
        "monto $12,500.00 en 3 pagos",
        "attempt=2 message_id=1234 code=131026",
        "Invalid OAuth access token - Cannot parse access token",
        "Loading model models/20261123-101530-brave-dog.tar.gz",
    ],
)
def test_the_safety_net_leaves_ordinary_log_text_alone(kept: str) -> None:
    assert scrub_text(kept) == kept


def _integrity_error() -> BaseException:
    """A real SQLAlchemy error, which prints the statement's parameters."""
    engine = create_engine("sqlite://")
    with engine.begin() as connection:
        connection.execute(sa_text("CREATE TABLE t (phone TEXT UNIQUE, said TEXT)"))
    try:
        with engine.begin() as connection:
            for _ in range(2):
                connection.execute(
                    sa_text("INSERT INTO t VALUES (:phone, :said)"),
                    {"phone": WHATSAPP_DEBTOR, "said": "nací el 15/03/1985"},
                )
    except IntegrityError as exc:
        assert "15/03/1985" in str(exc)  # the premise: SQLAlchemy would print it
        return exc
    raise AssertionError("no error")


def test_a_database_error_logged_with_its_traceback_shows_no_parameters() -> None:
    error = _integrity_error()
    event = structlog.processors.format_exc_info(None, "error", {"event": "x", "exc_info": error})
    line = str(scrub(None, "error", event))
    assert "IntegrityError" in line and "[parameters: [redacted]]" in line
    assert "15/03/1985" not in line and "5512340001" not in line

    stream = io.StringIO()
    logger = logging.getLogger("acuerdo.test_log_privacy")
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubFilter())
    logger.addHandler(handler)
    try:
        logger.error("store failed for %s", WHATSAPP_DEBTOR, exc_info=error)
    finally:
        logger.removeHandler(handler)
    printed = stream.getvalue()
    assert "IntegrityError" in printed
    assert "15/03/1985" not in printed and "5512340001" not in printed


def test_what_rasa_and_the_action_server_print_under_acuerdo_up_is_scrubbed() -> None:
    """Their own log settings may print the sender and the text (Rasa at DEBUG does)."""
    said = (
        f"DEBUG rasa.core.processor - Received user message '15/03/1985' from {WHATSAPP_DEBTOR}"
        f"\nINFO sanic.access - POST /conversations/{WHATSAPP_DEBTOR}/tracker/events 200"
    )
    out = io.StringIO()
    command = [sys.executable, "-c", f"print({said!r})"]
    supervisor = Supervisor([ChildSpec("rasa", command, dict(os.environ))], out=out, grace=5)
    supervisor.start()
    wait_until(lambda: out.getvalue().count("\n") >= 2, 10, "the child's two lines")
    supervisor.stop()
    printed = out.getvalue()
    assert "rasa |" in printed and "/tracker/events" in printed
    assert "15/03/1985" not in printed and "5512340001" not in printed


# -- the access log's own scrubber, alone -----------------------------------------------------
def access_record(path: str) -> logging.LogRecord:
    """A record shaped like uvicorn's access log line."""
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:50000", "GET", path, "1.1", 200), None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("path", "kept", "gone"),
    [
        ("/pay/eyJhbGciOi.abc-DEF_123/qr.png", "/pay/", "eyJhbGciOi.abc-DEF_123"),
        ("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=s3cr3t&hub.challenge=9",
         "hub.challenge=9", "s3cr3t"),
        ("/sandbox/api/messages?phone=%2B525512340001&after=3", "after=3", "5512340001"),
        ("/sandbox/rbm/v1/phones/+525512340001/agentMessages", "agentMessages", "5512340001"),
    ],
)  # fmt: skip
def test_the_access_log_hides_path_tokens_and_numbers(path: str, kept: str, gone: str) -> None:
    record = access_record(path)
    assert ScrubFilter().filter(record)
    line = record.getMessage()
    assert kept in line and gone not in line, line
