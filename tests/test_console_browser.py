"""The agent console in a real browser (Playwright driving Debian's headless Chromium) in front
of a real gateway (uvicorn), the real Rasa model and action server; only the Graph API is
stood in. A debtor escalates on WhatsApp, an agent takes over, the bot gets the chat back."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright import sync_api as playwright_api
from sqlalchemy import select

from bot.channels.whatsapp import SIGNATURE_HEADER, sign_body
from bot.clock import Clock
from bot.config import SANDBOX_APP_SECRET, Settings
from bot.console_users import create_console_user
from bot.db.engine import session_scope
from bot.db.models import ConsoleUser, Conversation, Message
from bot.domain.debtors import upsert_account
from bot.domain.phones import whatsapp_id
from tests.accounts import account_data
from tests.conftest_gateway import FAST, envelope, text
from tests.graph_stub import GraphStub, describe, wait_until
from tests.rasa_stack import STACK_NOW, RasaStack, free_port

pytestmark = pytest.mark.rasa

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# A debtor of this test alone (added to the stack's ledger), and the agent who helps her.
PHONE = "+525559990601"
NAME = "Rosa Consola Hernández"
AGENT, PASSWORD = "ana_consola", "clave-de-ana-2026"
RASA_TURN = 90.0  # seconds: one Rasa answer on a busy two-core machine
UI = 30_000  # milliseconds: what the browser may take to show a change


@dataclass
class ServedGateway:
    url: str
    settings: Settings


@pytest.fixture
def served_gateway(
    rasa_stack: RasaStack, graph_server: GraphStub, gateway_policy_file: Path, tmp_path: Path
) -> Iterator[ServedGateway]:
    """The real gateway on a free port (uvicorn in a thread), on the stack's ledger."""
    from bot.gateway.app import create_app

    port = free_port()
    env = rasa_stack.env
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        sandbox=True,  # on the sandbox's built-in secrets (ACUERDO_SANDBOX=1)
        database_url=rasa_stack.db_url,
        now=STACK_NOW,
        whatsapp_api_base_url=graph_server.url,
        rasa_port=int(env["RASA_PORT"]),
        action_port=int(env["ACTION_PORT"]),
        policy_file=str(gateway_policy_file),
        var_dir=str(tmp_path / "var"),
        secret_key=env["ACUERDO_SECRET_KEY"],
        internal_token=rasa_stack.token,
        public_url=f"http://127.0.0.1:{port}",
    )
    clock = Clock.from_setting(STACK_NOW, "America/Mexico_City")
    with session_scope(rasa_stack.db_url) as session:
        upsert_account(
            session,
            clock,
            account_data("TC-CONSOLA-0601", NAME, PHONE, due_date=date(2026, 9, 24)),
        )
        if not session.scalars(select(ConsoleUser).where(ConsoleUser.username == AGENT)).first():
            create_console_user(session, clock, AGENT, PASSWORD, "agent")
    app = create_app(settings, tuning=dataclasses.replace(FAST, rasa_timeout=60.0))
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=5
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, "the gateway to listen")
    yield ServedGateway(f"http://127.0.0.1:{port}", settings)
    server.should_exit = True
    thread.join(30)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install chromium (.ci/run does)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Debtor:
    """Rosa on WhatsApp: signed webhooks in, what reached the Graph stand-in out."""

    def __init__(self, gateway: ServedGateway, graph: GraphStub) -> None:
        self.gateway, self.graph = gateway, graph
        self.wa_id = whatsapp_id(PHONE)

    def received(self) -> list[dict[str, Any]]:
        return [s.body for s in self.graph.sends if s.body.get("to") == self.wa_id]

    def write(self, words: str) -> None:
        raw = json.dumps(envelope([text(words, wa_id=self.wa_id)], name=NAME)).encode()
        answer = httpx.post(
            f"{self.gateway.url}/webhooks/whatsapp",
            content=raw,
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign_body(SANDBOX_APP_SECRET, raw),
            },
            timeout=10,
        )
        assert answer.status_code == 200, answer.text

    def say(self, words: str, expect: str) -> str:
        """Write and wait for an answer containing ``expect``; all the new answers."""
        before = len(self.received())

        def answered() -> str | None:
            new = " ".join(describe(body) for body in self.received()[before:])
            return new if expect in new else None

        self.write(words)
        return str(wait_until(answered, RASA_TURN, f"an answer to {words!r} with {expect!r}"))


def conversation(db_url: str) -> Conversation:
    with session_scope(db_url) as session:
        found = session.scalars(select(Conversation).where(Conversation.address == PHONE)).one()
        session.expunge(found)
        return found


def tracker_paused(stack: RasaStack) -> bool:
    answer = httpx.get(
        f"{stack.rasa_url}/conversations/{PHONE}/tracker",
        params={"include_events": "NONE", "token": stack.token},
        timeout=30,
    )
    answer.raise_for_status()
    return bool(answer.json()["paused"])


def inbound_status(db_url: str, words: str) -> str | None:
    with session_scope(db_url) as session:
        return session.scalars(
            select(Message.status).where(Message.direction == "in", Message.text == words)
        ).first()


def test_an_agent_takes_over_an_escalated_chat_and_hands_it_back(
    served_gateway: ServedGateway,
    graph_server: GraphStub,
    rasa_stack: RasaStack,
    browser: Any,
    tmp_path: Path,
) -> None:
    expect = playwright_api.expect
    base, db_url = served_gateway.url, rasa_stack.db_url
    rosa = Debtor(served_gateway, graph_server)
    rosa.say("cuanto debo", "fecha de nacimiento")
    assert "$12,000.00" in rosa.say("15/03/1985", "$")

    # The agent signs in and watches the queue.
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.goto(f"{base}/console")
    expect(page).to_have_url(f"{base}/console/login?next=%2Fconsole")
    page.fill("#username", AGENT)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#queue")).to_contain_text("Mis conversaciones")
    expect(page.locator("#queue[data-live=on]")).to_have_count(1, timeout=UI)
    page.evaluate("window.sinRecargar = true")

    # Rosa asks for a person: the chat shows up in the queue without a reload.
    rosa.say("quiero hablar con un asesor", "asesor")
    row = page.locator("#queued tr", has_text=NAME)
    expect(row).to_be_visible(timeout=UI)
    expect(row).to_contain_text("Pidió hablar con un asesor")
    assert page.evaluate("window.sinRecargar") is True

    # Claim: the bot falls silent and its tracker shows the pause.
    row.get_by_role("button", name="Tomar").click()
    expect(page.locator(".flash.ok")).to_contain_text("Tomaste la conversación")
    expect(page.locator("#state")).to_have_text("Con asesor")
    assert conversation(db_url).state == "agent"
    assert tracker_paused(rasa_stack)
    expect(page.locator("#transcript")).to_contain_text("quiero hablar con un asesor")
    expect(page.locator("#balance")).to_contain_text("$12,000.00")

    # Reply: it reaches WhatsApp (the Graph stand-in) and the transcript, marked as sent.
    sent_before = len(rosa.received())
    page.fill("#reply-form textarea", "Hola Rosa, soy Ana. Con gusto te ayudo con tu cuenta.")
    page.click("#reply-form button[type=submit]")
    wait_until(
        lambda: any(
            describe(b) == "Hola Rosa, soy Ana. Con gusto te ayudo con tu cuenta."
            for b in rosa.received()[sent_before:]
        ),
        15,
        "the agent's reply at the Graph stand-in",
    )
    reply = page.locator("#transcript .msg.agent", has_text="soy Ana")
    expect(reply).to_be_visible(timeout=UI)
    expect(reply.locator(".mark")).to_have_text("✓", timeout=UI)

    # Rosa answers: it appears live; the bot does not answer it.
    page.evaluate("window.sinRecargar = true")
    sent_before = len(rosa.received())
    rosa.write("me podrian hacer un descuento? puedo pagar 1500 en oxxo")
    expect(page.locator("#transcript .msg.debtor", has_text="puedo pagar 1500")).to_be_visible(
        timeout=UI
    )
    assert page.evaluate("window.sinRecargar") is True
    wait_until(
        lambda: (
            inbound_status(db_url, "me podrian hacer un descuento? puedo pagar 1500 en oxxo")
            == "skipped"
        ),
        RASA_TURN,
        "the pipeline to leave the message to the agent",
    )
    assert len(rosa.received()) == sent_before  # the bot stayed silent

    # A payment code from the panel: the QR and its reference go out as the agent.
    page.click("summary:has-text('Enviar código de pago')")
    page.fill("#code-form input[name=amount]", "1500")
    page.select_option("#code-form select[name=method]", "oxxo")
    page.click("#code-form button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("Código de pago enviado")
    image = wait_until(
        lambda: next((b for b in rosa.received() if b.get("type") == "image"), None),
        15,
        "the payment code at the Graph stand-in",
    )
    assert "Monto: $1,500.00" in image["image"]["caption"]
    assert "Referencia:" in image["image"]["caption"]
    expect(page.locator("#codes")).to_contain_text("$1,500.00")
    expect(page.locator("#transcript .msg.agent img")).to_have_count(1, timeout=UI)
    expect(page.locator("#transcript .msg.agent img")).to_have_js_property(
        "complete", True, timeout=UI
    )
    page.locator("#transcript").evaluate("t => t.scrollTop = t.scrollHeight")
    screenshot = tmp_path / "console-chat.png"
    page.screenshot(path=str(screenshot), full_page=True)
    keep = os.environ.get("ACUERDO_CONSOLE_SCREENSHOT")
    if keep:
        shutil.copyfile(screenshot, keep)

    # Back to the bot: the tracker resumes, and the bot answers the next message with the
    # context intact (Rosa is still verified: no new identity question).
    page.click("#return")
    expect(page.locator(".flash.ok")).to_contain_text("regresó al asistente")
    assert conversation(db_url).state == "bot"
    assert not tracker_paused(rasa_stack)
    answer = rosa.say("cuanto debo?", "$")
    assert "$12,000.00" in answer
    assert "fecha de nacimiento" not in answer
    page.close()
