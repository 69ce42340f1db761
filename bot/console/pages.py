"""What the console pages show, read in one database session each: the queue, the
supervision tables, the chat with the debtor panel, and the fingerprints of live updates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.console import letters, views
from bot.console.auth import Agent
from bot.console.media import media_viewable
from bot.console.service import Refused, approved_templates, service_window
from bot.console.texts import canned_replies, console_texts
from bot.db.models import ConsoleUser, Conversation
from bot.domain import handoff
from bot.domain.agent_hours import agents_available, next_agent_opening
from bot.gateway.runtime import GatewayRuntime
from bot.payments import PAYMENT_METHODS


def agent_hours(runtime: GatewayRuntime) -> dict[str, Any]:
    now = runtime.clock.now()
    hours = runtime.policy.contact.agent_hours
    open_now = agents_available(runtime.policy, now)
    return {
        "open": open_now,
        "span": f"{hours.start:%H:%M}–{hours.end:%H:%M}",
        "next": None if open_now else f"{next_agent_opening(runtime.policy, now):%d/%m %H:%M}",
    }


def queue_context(runtime: GatewayRuntime, agent: Agent) -> dict[str, Any]:
    texts = console_texts()
    with runtime.sessions() as session:
        queued = views.queue_rows(
            session, runtime.clock, texts, handoff.queued_conversations(session)
        )
        mine = views.queue_rows(
            session, runtime.clock, texts, handoff.held_conversations(session, agent.id)
        )
    return {"queued": queued, "mine": mine, "hours": agent_hours(runtime)}


def supervision_context(runtime: GatewayRuntime) -> dict[str, Any]:
    texts = console_texts()
    with runtime.sessions() as session:
        held = views.queue_rows(session, runtime.clock, texts, handoff.held_conversations(session))
        queued = views.queue_rows(
            session, runtime.clock, texts, handoff.queued_conversations(session)
        )
        agents = list(
            session.scalars(
                select(ConsoleUser.username)
                .where(ConsoleUser.active.is_(True))
                .order_by(ConsoleUser.username)
            )
        )
    by_agent: dict[str, list[views.QueueRow]] = {name: [] for name in agents}
    for row in held:
        by_agent.setdefault(row.holder or "?", []).append(row)
    return {"by_agent": by_agent, "queued": queued, "agents": agents}


def chat_context(runtime: GatewayRuntime, agent: Agent, conversation_id: int) -> dict[str, Any]:
    """Everything the chat page shows; :class:`Refused` (403) for someone else's chat."""
    texts = console_texts()
    with runtime.sessions() as session:
        user = session.get(ConsoleUser, agent.id)
        conversation = session.get(Conversation, conversation_id)
        if conversation is None or user is None:
            raise Refused("not_found", 404)
        if not handoff.can_view(user, conversation):
            raise Refused("forbidden", 403)
        window = service_window(runtime, conversation)
        holder = (
            session.get(ConsoleUser, conversation.assigned_agent_id)
            if conversation.assigned_agent_id
            else None
        )
        agents = list(
            session.scalars(
                select(ConsoleUser.username)
                .where(ConsoleUser.active.is_(True))
                .order_by(ConsoleUser.username)
            )
        )
        return {
            "conversation": {
                "id": conversation.id,
                "state": conversation.state,
                "state_label": texts.label("states", conversation.state),
                "reason": texts.label("reasons", conversation.handoff_reason, "—"),
                "channel": texts.label("channels", conversation.channel),
                "priority": conversation.priority,
                "holder": holder.username if holder else None,
                "waiting": views.waited(conversation.queued_at, runtime.clock.now_utc()),
            },
            "can_act": handoff.can_act(user, conversation) and conversation.state == handoff.AGENT,
            "can_claim": conversation.state == handoff.QUEUED,
            "window_open": handoff.window_open(conversation, runtime.clock, window),
            "window_left": views.service_window_left(conversation, runtime.clock, window),
            "transcript": transcript_html_context(runtime, session, conversation),
            "ledger": views.ledger(session, runtime.clock, runtime.policy, texts, conversation),
            "letter": letters.letter_panel(runtime, session, conversation),
            "notes": views.notes(session, runtime.clock, conversation.id),
            "templates": approved_templates(runtime),
            "canned": [
                {"title": c.title, "text": c.text.replace("{agent}", agent.username)}
                for c in canned_replies()
            ],
            "methods": {m: texts.label("payment_methods", m) for m in PAYMENT_METHODS},
            "agents": agents,
            "today": runtime.clock.today().isoformat(),
            "both_answers": runtime.policy.identity.mode == "birth_date_then_last4",
            "default_deadline": (
                runtime.clock.today()
                + timedelta(days=runtime.policy.settlement.offer_validity_days)
            ).isoformat(),
            "state_key": f"{conversation.state}:{conversation.assigned_agent_id}",
        }


def transcript_html_context(
    runtime: GatewayRuntime, session: Session, conversation: Conversation
) -> list[views.TranscriptItem]:
    return views.transcript(
        session,
        runtime.clock,
        console_texts(),
        conversation,
        runtime.settings.public_url,
        media_viewable=media_viewable(runtime),
    )


def live_chat(
    runtime: GatewayRuntime, agent: Agent, conversation_id: int
) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
    """(fingerprint, what the live parts of the chat page show) — None when not allowed."""
    with runtime.sessions() as session:
        fingerprint = views.chat_fingerprint(session, conversation_id)
    try:
        return fingerprint, chat_context(runtime, agent, conversation_id)
    except Refused:
        return fingerprint, None


def chat_fingerprint(runtime: GatewayRuntime, conversation_id: int) -> tuple[Any, ...]:
    with runtime.sessions() as session:
        return views.chat_fingerprint(session, conversation_id)


def queue_fingerprint(runtime: GatewayRuntime) -> tuple[Any, ...]:
    with runtime.sessions() as session:
        return views.queue_fingerprint(session, runtime.clock)
