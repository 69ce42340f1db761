"""The shapes of a long conversation that ``bench_long_conversation`` drives (issue 14).

A turn must cost the same at turn 600 as at turn 1 whatever the conversation looks like, not
only in a friendly chat: a debtor who keeps ignoring a question inside a form, one who was
locked out of verification and keeps writing, one whose chat goes to an agent and back
again and again, and one who returns session after session. Each shape repeats a cycle of
ten turns, so turns 1-10 and the last ten are the same work.

Between turns (not measured) a shape may act as someone else would: an agent claims the
chat in the console and gives it back; or a new Rasa session starts, as Rasa starts one
itself after ``session_expiration_time`` of silence (``action_session_start``, run through
Rasa's own HTTP API instead of waiting an hour).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from bot.clock import Clock
from bot.console_users import create_console_user
from bot.db.engine import session_scope
from bot.db.models import Conversation, ConversationState
from tests.topology import TOPOLOGY_TOKEN

BIRTH_DATE = "15/03/1985"  # the first seeded debtor's
VERIFY = ["hola, buenas tardes", "cuánto debo?", BIRTH_DATE]
ASKS_IDENTITY = "fecha de nacimiento"
AGENT_USER, AGENT_PASSWORD = "bench-agent", "bench-agent-password-2026"


@dataclass
class ShapeContext:
    """What a shape's between-turn step may use."""

    gateway: httpx.Client
    rasa_url: str
    sender: str  # the debtor's phone, Rasa's sender id
    db_url: str
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Shape:
    name: str
    summary: str
    prelude: list[str]  # not measured: reach the state the shape is about
    cycle: list[str]  # ten turns, repeated
    # Run after turn n (1-based) when it returns True for n; not measured.
    between: Callable[[ShapeContext, int], None] | None = None
    # A reply that must never appear in a measured turn (the shape's state was lost).
    never: str | None = None
    # A reply the prelude's last turn must contain (the shape's state was reached).
    reached: str | None = None


def _agent_takes_and_returns(context: ShapeContext, turn: int) -> None:
    """After each cycle's request for a person: an agent claims the chat, then gives it back."""
    if turn % 10:
        return
    console = context.state.get("console")
    if console is None:
        with session_scope(context.db_url) as session:
            create_console_user(
                session, Clock.from_setting(None, "America/Mexico_City"),
                username=AGENT_USER, password=AGENT_PASSWORD, role="agent",
            )  # fmt: skip
        console = context.state["console"] = _signed_in(context.gateway)
    client, csrf = console
    chat = f"/console/chats/{_escalated_chat(context)}"
    for step in ("claim", "return"):
        answer = client.post(f"{chat}/{step}", data={"csrf_token": csrf}, follow_redirects=False)
        if answer.status_code != 303:
            raise SystemExit(f"the agent's {step} failed: {answer.status_code} {answer.text}")


def _signed_in(gateway: httpx.Client) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=str(gateway.base_url), timeout=60)
    form = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    if token is None:
        raise SystemExit("the console's login form has no CSRF token")
    answer = client.post(
        "/console/login",
        data={"username": AGENT_USER, "password": AGENT_PASSWORD, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    if answer.status_code != 303:
        raise SystemExit(f"the bench agent could not sign in: {answer.status_code}")
    csrf = re.search(r'data-csrf="([^"]+)"', client.get("/console").text)
    if csrf is None:
        raise SystemExit("the console page has no CSRF token")
    return client, csrf.group(1)


def _escalated_chat(context: ShapeContext) -> int:
    with session_scope(context.db_url) as session:
        found = session.scalars(
            select(Conversation.id).where(Conversation.state == ConversationState.QUEUED.value)
        ).all()
    if len(found) != 1:
        raise SystemExit(f"expected one chat waiting for an agent, found {len(found)}")
    return int(found[0])


def _new_rasa_session(context: ShapeContext, turn: int) -> None:
    """Every ten turns, a new session, as after an hour of silence."""
    if turn % 10:
        return
    answer = httpx.post(
        f"{context.rasa_url}/conversations/{context.sender}/execute",
        params={"token": TOPOLOGY_TOKEN},
        json={"name": "action_session_start"},
        timeout=60,
    )
    answer.raise_for_status()


CHAT = [
    "cuánto debo?",
    "cuándo vence mi pago",
    "por qué me cobran tanto",
    "cómo puedo pagar",
    "mándame la referencia para pagar en oxxo",
    "500",
    "muchas gracias",
    "eres un robot?",
    "hola otra vez",
    "ok gracias",
]

SHAPES = {
    shape.name: shape
    for shape in (
        Shape(
            "chat",
            "a verified debtor keeps the chat with the bot (balance, due date, an OXXO code)",
            VERIFY,
            CHAT,
            never=ASKS_IDENTITY,
        ),
        Shape(
            "form",
            "an unverified sender keeps ignoring the identity question (the form re-asks)",
            [],
            # Each of these keeps the identity form running (it re-asks, or answers a
            # question and asks again); a goodbye or "no entiendo" would end it.
            [
                "cuánto debo?",
                "hola",
                "cómo puedo pagar",
                "cuándo vence mi pago",
                "ok",
                "cuánto debo?",
                "por qué me cobran tanto",
                "hola",
                "ok",
                "cuánto debo?",
            ],
            never="$12,000.00",  # the balance, to someone who never verified
        ),
        Shape(
            "lockout",
            "a sender locked out after three wrong birth dates keeps writing",
            ["hola", "cuánto debo?", "01/01/1990", "02/02/1991", "03/03/1992"],
            [
                "cuánto debo?",
                "hola",
                "cómo puedo pagar",
                "cuándo vence mi pago",
                "ok",
                "cuánto debo?",
                "por qué me cobran tanto",
                "no entiendo",
                "buenas tardes",
                "gracias",
            ],
            never="$12,000.00",  # the balance, to someone who failed verification
            reached="bloqueada",
        ),
        Shape(
            "handback",
            "a verified debtor asks for a person every ten turns; an agent takes and returns it",
            VERIFY,
            [*CHAT[:9], "quiero hablar con un asesor"],
            between=_agent_takes_and_returns,
        ),
        Shape(
            "sessions",
            "a new session every ten turns; the debtor verifies again in each",
            VERIFY,
            [
                "hola",
                "cuánto debo?",
                BIRTH_DATE,
                "cuándo vence mi pago",
                "por qué me cobran tanto",
                "cómo puedo pagar",
                "muchas gracias",
                "eres un robot?",
                "cuánto debo?",
                "ok gracias",
            ],
            between=_new_rasa_session,
        ),
    )
}
