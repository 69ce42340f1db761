"""Human handoff: who holds a conversation, and the messages and notes of agents.

A conversation moves ``bot → queued`` when the dialogue asks for a person
(:func:`bot.domain.conversations.request_handoff`), ``queued → agent`` when an agent claims
it (or a supervisor assigns it), and ``agent → bot`` (returned, context intact) or
``agent → closed``. While it is ``agent`` the pipeline marks the debtor's messages skipped
and the bot stays silent. ``assigned_agent_id`` names the agent who holds the conversation
or, after it was returned or closed, the last one who did (they may still read it).

Every function here writes an audit entry whose actor is ``agent:<username>``. Nothing here
knows HTTP or Rasa: pausing the Rasa tracker is the console's job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.channels.base import OutboundMessage, RenderedMessage
from bot.clock import Clock
from bot.conversation.outbox import enqueue
from bot.db.models import ConsoleUser, Conversation, ConversationNote, ConversationState, Message
from bot.domain.audit import record_audit
from bot.domain.errors import DomainError

Renderer = Callable[[OutboundMessage], list[RenderedMessage]]

SUPERVISOR = "supervisor"
MAX_NOTE_CHARS = 2000
MAX_REPLY_CHARS = 4096

QUEUED = ConversationState.QUEUED.value
AGENT = ConversationState.AGENT.value
BOT = ConversationState.BOT.value
CLOSED = ConversationState.CLOSED.value


class HandoffError(DomainError):
    """An agent action the handoff rules refuse; ``reason`` is a stable key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def actor_of(user: ConsoleUser) -> str:
    """How an agent is named in the audit log, on messages and in the ledger."""
    return f"agent:{user.username}"


def is_supervisor(user: ConsoleUser) -> bool:
    return user.role == SUPERVISOR


def can_view(user: ConsoleUser, conversation: Conversation) -> bool:
    """Supervisors read everything; agents read the queue and their own chats."""
    return (
        is_supervisor(user)
        or conversation.state == QUEUED
        or conversation.assigned_agent_id == user.id
    )


def can_act(user: ConsoleUser, conversation: Conversation) -> bool:
    """Write in a conversation: its holder, or a supervisor."""
    if is_supervisor(user):
        return conversation.state in (AGENT, QUEUED)
    return conversation.state == AGENT and conversation.assigned_agent_id == user.id


def require_view(user: ConsoleUser, conversation: Conversation) -> None:
    if not can_view(user, conversation):
        raise HandoffError("forbidden", f"{user.username} may not read this conversation")


def require_act(user: ConsoleUser, conversation: Conversation) -> None:
    if not can_view(user, conversation):
        raise HandoffError("forbidden", f"{user.username} may not read this conversation")
    if not can_act(user, conversation) or conversation.state != AGENT:
        raise HandoffError(
            "not_holder", f"{user.username} does not hold this conversation (claim it first)"
        )


def queued_conversations(session: Session) -> list[Conversation]:
    """The queue: highest priority first, then the longest waiting."""
    return list(
        session.scalars(
            select(Conversation)
            .where(Conversation.state == QUEUED)
            .order_by(
                Conversation.priority.desc(),
                Conversation.queued_at.asc().nulls_last(),
                Conversation.id,
            )
        )
    )


def held_conversations(session: Session, agent_id: int | None = None) -> list[Conversation]:
    """Conversations agents hold now (only ``agent_id``'s when given)."""
    query = select(Conversation).where(Conversation.state == AGENT)
    if agent_id is not None:
        query = query.where(Conversation.assigned_agent_id == agent_id)
    return list(session.scalars(query.order_by(Conversation.updated_at.desc())))


def _audit(
    session: Session,
    clock: Clock,
    user: ConsoleUser,
    action: str,
    conversation: Conversation,
    **details: object,
) -> None:
    record_audit(
        session,
        clock,
        actor=actor_of(user),
        action=action,
        account_id=conversation.account_id,
        conversation_id=conversation.id,
        **details,
    )


def _waited_seconds(conversation: Conversation, now: datetime) -> int | None:
    if conversation.queued_at is None:
        return None
    return max(0, int((now - conversation.queued_at).total_seconds()))


def claim(session: Session, clock: Clock, conversation: Conversation, agent: ConsoleUser) -> bool:
    """``agent`` takes a queued conversation; False when they already held it."""
    if conversation.state == AGENT and conversation.assigned_agent_id == agent.id:
        return False
    if conversation.state == AGENT:
        raise HandoffError("already_claimed", "another agent already took this conversation")
    if conversation.state != QUEUED:
        raise HandoffError("not_queued", "this conversation is not waiting for an agent")
    now = clock.now_utc()
    # Compare-and-set: of two agents clicking at once, exactly one gets the chat.
    taken = session.execute(
        update(Conversation)
        .where(Conversation.id == conversation.id, Conversation.state == QUEUED)
        .values(state=AGENT, assigned_agent_id=agent.id, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(conversation)
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        if conversation.state == AGENT and conversation.assigned_agent_id == agent.id:
            return False  # their own double click
        raise HandoffError("already_claimed", "another agent already took this conversation")
    _audit(
        session,
        clock,
        agent,
        "handoff_claimed",
        conversation,
        reason=conversation.handoff_reason,
        waited_seconds=_waited_seconds(conversation, now),
    )
    return True


def assign(
    session: Session,
    clock: Clock,
    conversation: Conversation,
    to_agent: ConsoleUser,
    *,
    by: ConsoleUser,
) -> None:
    """A supervisor gives a queued or held conversation to ``to_agent``."""
    if not is_supervisor(by):
        raise HandoffError("supervisor_only", "only a supervisor can reassign conversations")
    if not to_agent.active:
        raise HandoffError("inactive_agent", f"{to_agent.username} is not an active user")
    if conversation.state not in (QUEUED, AGENT):
        raise HandoffError("not_assignable", "only queued or held conversations can be assigned")
    previous = conversation.assigned_agent_id if conversation.state == AGENT else None
    previous_user = session.get(ConsoleUser, previous) if previous is not None else None
    now = clock.now_utc()
    conversation.state = AGENT
    conversation.assigned_agent_id = to_agent.id
    conversation.updated_at = now
    _audit(
        session,
        clock,
        by,
        "handoff_reassigned",
        conversation,
        from_agent=previous_user.username if previous_user else None,
        to_agent=to_agent.username,
    )


def return_to_bot(
    session: Session, clock: Clock, conversation: Conversation, agent: ConsoleUser
) -> None:
    """Give the conversation back to the bot; its dialogue context is left as it was."""
    require_act(agent, conversation)
    conversation.state = BOT
    conversation.queued_at = None
    conversation.priority = 0
    conversation.updated_at = clock.now_utc()
    _audit(session, clock, agent, "handoff_returned", conversation)


def close(session: Session, clock: Clock, conversation: Conversation, agent: ConsoleUser) -> None:
    """End the case: out of the queue; if the debtor writes again, the bot answers."""
    if not can_act(agent, conversation):
        require_view(agent, conversation)
        raise HandoffError("not_holder", f"{agent.username} does not hold this conversation")
    conversation.state = CLOSED
    conversation.queued_at = None
    conversation.priority = 0
    conversation.updated_at = clock.now_utc()
    _audit(session, clock, agent, "conversation_closed", conversation)


def add_note(
    session: Session, clock: Clock, conversation: Conversation, agent: ConsoleUser, text: str
) -> ConversationNote:
    """An internal note for colleagues; the debtor never sees it."""
    require_act(agent, conversation)
    body = text.strip()
    if not body:
        raise HandoffError("empty", "the note is empty")
    if len(body) > MAX_NOTE_CHARS:
        raise HandoffError("too_long", f"a note has at most {MAX_NOTE_CHARS} characters")
    note = ConversationNote(
        conversation_id=conversation.id,
        author=actor_of(agent),
        text=body,
        created_at=clock.now_utc(),
    )
    session.add(note)
    session.flush()
    _audit(session, clock, agent, "agent_note", conversation, note_id=note.id)
    return note


def notes_of(session: Session, conversation_id: int) -> list[ConversationNote]:
    return list(
        session.scalars(
            select(ConversationNote)
            .where(ConversationNote.conversation_id == conversation_id)
            .order_by(ConversationNote.id)
        )
    )


def window_open(conversation: Conversation, clock: Clock, window: timedelta | None) -> bool:
    """Whether free-form messages may go now (the channel's service window, e.g. 24 h)."""
    if window is None:
        return True
    if conversation.last_inbound_at is None:
        return False
    return clock.now_utc() - conversation.last_inbound_at < window


def send_as_agent(
    session: Session,
    clock: Clock,
    conversation: Conversation,
    agent: ConsoleUser,
    messages: Sequence[OutboundMessage],
    render: Renderer,
    *,
    window: timedelta | None,
    action: str = "agent_message",
    **details: object,
) -> list[Message]:
    """Queue ``messages`` in the outbox as ``agent:<username>`` (the caller commits and wakes
    the outbox).

    Only replies in the service window the debtor opened go this way: they answer the
    person, so the contact hours do not apply (CONTRACT 6.9). A template is the company
    writing first: it goes through the compliance door
    (``bot.compliance.outreach.queue_company_message``), never through here.
    """
    require_act(agent, conversation)
    if any(message.template is not None for message in messages):
        raise HandoffError(
            "company_started", "a template is company-started: it goes through the gate"
        )
    if not window_open(conversation, clock, window):
        raise HandoffError(
            "window_closed", "the 24-hour window is closed: only an approved template may go"
        )
    rows = [
        enqueue(
            session,
            clock,
            conversation_id=conversation.id,
            channel=conversation.channel,
            rendered=rendered,
            author=actor_of(agent),
        )
        for message in messages
        for rendered in render(message)
    ]
    session.flush()
    conversation.updated_at = clock.now_utc()
    _audit(
        session,
        clock,
        agent,
        action,
        conversation,
        message_ids=[row.id for row in rows],
        **details,
    )
    return rows


def agent_reply(
    session: Session,
    clock: Clock,
    conversation: Conversation,
    agent: ConsoleUser,
    text: str,
    render: Renderer,
    *,
    window: timedelta | None,
) -> list[Message]:
    """A free-form reply typed by the agent."""
    body = text.strip()
    if not body:
        raise HandoffError("empty", "the reply is empty")
    if len(body) > MAX_REPLY_CHARS:
        raise HandoffError("too_long", f"a reply has at most {MAX_REPLY_CHARS} characters")
    return send_as_agent(
        session, clock, conversation, agent, [OutboundMessage(text=body)], render, window=window
    )
