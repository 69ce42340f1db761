"""Handoff mechanics and the agent's ledger actions, without a server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.base import OutboundMessage, RenderedMessage
from bot.clock import Clock
from bot.config import Settings
from bot.console_users import create_console_user
from bot.db.models import (
    Account,
    Agreement,
    AuditEntry,
    ConsoleUser,
    Conversation,
    Message,
    Offer,
    PaymentCode,
)
from bot.domain import agent_ledger, handoff
from bot.domain.conversations import get_or_create_conversation, request_handoff
from bot.domain.errors import PromiseRejected
from bot.domain.handoff import HandoffError
from bot.payments import PaymentProvider, get_provider
from bot.policy import Policy
from tests.conftest import REPO_ROOT

DAY = timedelta(hours=24)


def render(message: OutboundMessage) -> list[RenderedMessage]:
    return [RenderedMessage(kind="text", text=message.text or "", body={"text": message.text})]


@pytest.fixture
def users(session: Session, clock: Clock) -> dict[str, ConsoleUser]:
    made = {
        name: create_console_user(session, clock, name, "clave-segura-1", role)
        for name, role in (("lucia", "agent"), ("mateo", "agent"), ("sara", "supervisor"))
    }
    session.commit()
    return made


@pytest.fixture
def queued(session: Session, clock: Clock, make_account: Callable[..., Account]) -> Conversation:
    make_account(phone="+525512340001")
    conversation = get_or_create_conversation(session, clock, "whatsapp", "+525512340001")
    conversation.last_inbound_at = clock.now_utc()
    request_handoff(session, clock, conversation, reason="debtor_request", priority=30)
    session.commit()
    return conversation


def actions(session: Session) -> list[tuple[str, str]]:
    return [
        (e.actor, e.action) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
    ]


def test_a_handoff_request_starts_the_waiting_clock(queued: Conversation, clock: Clock) -> None:
    assert queued.state == "queued"
    assert queued.queued_at == clock.now_utc()


def test_the_queue_puts_priority_first_then_the_longest_wait(
    session: Session, clock: Clock
) -> None:
    made = []
    for n, priority in enumerate((10, 50, 10)):
        c = get_or_create_conversation(session, clock, "whatsapp", f"+52551234990{n}")
        request_handoff(session, clock, c, reason="debtor_request", priority=priority)
        made.append(c)
    made[2].queued_at = made[0].queued_at - timedelta(minutes=5)  # waited longer
    session.flush()

    assert handoff.queued_conversations(session) == [made[1], made[2], made[0]]


def test_claiming_gives_the_chat_to_the_agent_and_audits_it(
    session: Session, clock: Clock, users: dict[str, ConsoleUser], queued: Conversation
) -> None:
    assert handoff.claim(session, clock, queued, users["lucia"]) is True

    assert (queued.state, queued.assigned_agent_id) == ("agent", users["lucia"].id)
    assert ("agent:lucia", "handoff_claimed") in actions(session)
    assert handoff.claim(session, clock, queued, users["lucia"]) is False  # a double click
    with pytest.raises(HandoffError) as taken:
        handoff.claim(session, clock, queued, users["mateo"])
    assert taken.value.reason == "already_claimed"


def test_only_queued_chats_can_be_claimed(
    session: Session, clock: Clock, users: dict[str, ConsoleUser], queued: Conversation
) -> None:
    queued.state = "bot"
    with pytest.raises(HandoffError) as refused:
        handoff.claim(session, clock, queued, users["lucia"])
    assert refused.value.reason == "not_queued"


def test_agents_see_the_queue_and_their_own_chats_supervisors_everything(
    session: Session, clock: Clock, users: dict[str, ConsoleUser], queued: Conversation
) -> None:
    lucia, mateo, sara = users["lucia"], users["mateo"], users["sara"]
    assert handoff.can_view(mateo, queued)
    handoff.claim(session, clock, queued, lucia)
    assert handoff.can_view(lucia, queued) and handoff.can_act(lucia, queued)
    assert not handoff.can_view(mateo, queued) and not handoff.can_act(mateo, queued)
    assert handoff.can_view(sara, queued) and handoff.can_act(sara, queued)
    with pytest.raises(HandoffError) as refused:
        handoff.add_note(session, clock, queued, mateo, "hola")
    assert refused.value.reason == "forbidden"


def test_only_a_supervisor_reassigns(
    session: Session, clock: Clock, users: dict[str, ConsoleUser], queued: Conversation
) -> None:
    handoff.claim(session, clock, queued, users["lucia"])
    with pytest.raises(HandoffError) as refused:
        handoff.assign(session, clock, queued, users["mateo"], by=users["lucia"])
    assert refused.value.reason == "supervisor_only"

    handoff.assign(session, clock, queued, users["mateo"], by=users["sara"])

    assert queued.assigned_agent_id == users["mateo"].id
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "handoff_reassigned")
    ).one()
    assert (entry.actor, entry.details) == (
        "agent:sara",
        {"from_agent": "lucia", "to_agent": "mateo"},
    )


def test_returning_to_the_bot_and_closing(
    session: Session, clock: Clock, users: dict[str, ConsoleUser], queued: Conversation
) -> None:
    handoff.claim(session, clock, queued, users["lucia"])
    handoff.return_to_bot(session, clock, queued, users["lucia"])
    assert (queued.state, queued.queued_at) == ("bot", None)
    with pytest.raises(HandoffError):
        handoff.return_to_bot(session, clock, queued, users["lucia"])  # not held any more
    assert handoff.can_view(users["lucia"], queued)  # the last agent may still read it

    request_handoff(session, clock, queued, reason="dispute")
    handoff.claim(session, clock, queued, users["lucia"])
    handoff.close(session, clock, queued, users["lucia"])
    assert queued.state == "closed"
    assert [a for a in actions(session) if a[0] == "agent:lucia"] == [
        ("agent:lucia", "handoff_claimed"),
        ("agent:lucia", "handoff_returned"),
        ("agent:lucia", "handoff_claimed"),
        ("agent:lucia", "conversation_closed"),
    ]


def test_an_agent_reply_goes_through_the_outbox_as_the_agent(
    session: Session, clock: Clock, users: dict[str, ConsoleUser], queued: Conversation
) -> None:
    handoff.claim(session, clock, queued, users["lucia"])

    (row,) = handoff.agent_reply(
        session, clock, queued, users["lucia"], "  Hola, soy Lucía  ", render, window=DAY
    )

    assert (row.direction, row.status, row.author, row.text) == (
        "out",
        "queued",
        "agent:lucia",
        "Hola, soy Lucía",
    )
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "agent_message")).one()
    assert entry.actor == "agent:lucia" and entry.details == {"message_ids": [row.id]}


def test_outside_the_window_only_templates_go(
    session: Session, clock: Clock, users: dict[str, ConsoleUser], queued: Conversation
) -> None:
    handoff.claim(session, clock, queued, users["lucia"])
    queued.last_inbound_at = clock.now_utc() - timedelta(hours=24, minutes=1)

    with pytest.raises(HandoffError) as refused:
        handoff.agent_reply(session, clock, queued, users["lucia"], "hola", render, window=DAY)
    assert refused.value.reason == "window_closed"
    assert session.scalars(select(Message)).all() == []
    assert handoff.window_open(queued, clock, None)  # a channel without a window


def test_notes_stay_internal(
    session: Session, clock: Clock, users: dict[str, ConsoleUser], queued: Conversation
) -> None:
    handoff.claim(session, clock, queued, users["lucia"])
    note = handoff.add_note(session, clock, queued, users["lucia"], "Pide 3 meses")
    assert [n.text for n in handoff.notes_of(session, queued.id)] == ["Pide 3 meses"]
    assert note.author == "agent:lucia"
    assert session.scalars(select(Message)).all() == []


@pytest.fixture
def provider() -> PaymentProvider:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        sandbox=True,  # the sandbox's payments secret
        secret_key="test-secret-key",
        policy_file=str(REPO_ROOT / "policy.yml"),
    )
    return get_provider(settings)


@pytest.fixture
def held(
    session: Session, clock: Clock, users: dict[str, ConsoleUser], queued: Conversation
) -> Conversation:
    handoff.claim(session, clock, queued, users["lucia"])
    return queued


def test_nothing_about_the_account_for_an_unverified_sender(
    session: Session,
    clock: Clock,
    policy: Policy,
    provider: PaymentProvider,
    users: dict[str, ConsoleUser],
    held: Conversation,
) -> None:
    with pytest.raises(HandoffError) as refused:
        agent_ledger.issue_code_for_agent(
            session,
            clock,
            policy,
            provider,
            held,
            users["lucia"],
            amount_cents=50_000,
            method="spei",
        )
    assert refused.value.reason == "not_verified"


def test_the_agent_checks_identity_with_the_same_rule(
    session: Session,
    clock: Clock,
    policy: Policy,
    users: dict[str, ConsoleUser],
    held: Conversation,
) -> None:
    outcome = agent_ledger.check_identity_for_agent(
        session, clock, policy, held, users["lucia"], birth_date=date(1990, 1, 1)
    )
    assert outcome.value == "failed"
    outcome = agent_ledger.check_identity_for_agent(
        session, clock, policy, held, users["lucia"], birth_date=date(1985, 3, 15)
    )
    assert outcome.value == "verified" and held.verified_at is not None
    assert ("agent:lucia", "identity_checked_by_agent") in actions(session)


def test_a_supervisor_approves_a_settlement_below_the_floor(
    session: Session,
    clock: Clock,
    policy: Policy,
    provider: PaymentProvider,
    users: dict[str, ConsoleUser],
    held: Conversation,
) -> None:
    """Lucía holds the chat; below the floor it takes Sara, a supervisor, to approve."""
    held.verified_at = clock.now_utc()
    deadline = clock.today() + timedelta(days=10)

    approved = agent_ledger.approve_settlement(
        session,
        clock,
        policy,
        provider,
        held,
        users["sara"],
        amount_cents=500_000,  # $5,000 of $12,000: far below the bot's floor
        deadline=deadline,
    )

    assert approved.below_floor
    agreement = session.scalars(select(Agreement)).one()
    assert (agreement.total_cents, agreement.deadline, agreement.approved_by) == (
        500_000,
        deadline,
        "agent:sara",
    )
    offer = session.scalars(select(Offer)).one()
    assert (offer.made_by, offer.status) == ("agent:sara", "accepted")
    code = session.scalars(select(PaymentCode)).one()
    assert (code.method, code.amount_cents, code.agreement_id) == ("spei", 500_000, agreement.id)
    assert {"offer", "agreement", "payment_code"} <= {
        action for actor, action in actions(session) if actor == "agent:sara"
    }
    with pytest.raises(HandoffError) as again:
        agent_ledger.approve_settlement(
            session,
            clock,
            policy,
            provider,
            held,
            users["sara"],
            amount_cents=400_000,
            deadline=deadline,
        )
    assert again.value.reason == "agreement_active"


def test_an_agent_records_a_promise_within_the_policy(
    session: Session,
    clock: Clock,
    policy: Policy,
    users: dict[str, ConsoleUser],
    held: Conversation,
) -> None:
    held.verified_at = clock.now_utc()
    promise = agent_ledger.record_promise_for_agent(
        session,
        clock,
        policy,
        held,
        users["lucia"],
        promised_date=clock.today() + timedelta(days=5),
        amount_cents=100_000,
    )
    assert promise.made_by == "agent:lucia"
    with pytest.raises(PromiseRejected):
        agent_ledger.record_promise_for_agent(
            session,
            clock,
            policy,
            held,
            users["lucia"],
            promised_date=clock.today() + timedelta(days=90),
            amount_cents=100_000,
        )


def test_of_two_agents_claiming_at_once_exactly_one_gets_the_chat(
    db_url: str, clock: Clock, users: dict[str, ConsoleUser], queued: Conversation
) -> None:
    from bot.db.engine import session_factory

    first, second = session_factory(db_url)(), session_factory(db_url)()
    mine = first.get(Conversation, queued.id)
    theirs = second.get(Conversation, queued.id)
    assert mine is not None and theirs is not None
    assert mine.state == theirs.state == "queued"  # both pages showed it waiting

    handoff.claim(first, clock, mine, first.get(ConsoleUser, users["lucia"].id))  # type: ignore[arg-type]
    first.commit()
    with pytest.raises(HandoffError) as late:
        handoff.claim(second, clock, theirs, second.get(ConsoleUser, users["mateo"].id))  # type: ignore[arg-type]
    second.rollback()

    assert late.value.reason == "already_claimed"
    assert (theirs.state, theirs.assigned_agent_id) == ("agent", users["lucia"].id)
    first.close()
    second.close()
