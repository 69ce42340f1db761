"""Attacks on the contact rules through messages the company starts (issue 13, point 7).

Every message the company starts — campaigns, follow-ups, an agent's template, the
re-engagement template, the payment thank-you, the fallback chain — must pass the
compliance gate (opt-out, wrong number, do-not-contact, dispute, weekly cap, contact hours)
and leave its verdict in the audit log. The last tests read the source of ``bot/`` and fail
when any code other than the door (and the two kinds of reply) queues an outbound row.
Real SQLite ledger, pinned clocks, the real gateway where the console is involved.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.base import ChannelAdapter, OutboundMessage, RenderedMessage, TemplateMessage
from bot.channels.whatsapp import WhatsAppAdapter
from bot.clock import Clock
from bot.compliance.gate import record_company_message
from bot.config import Settings
from bot.console_users import create_console_user
from bot.conversation.notices import thank_for_payment
from bot.conversation.outbox import enqueue
from bot.conversation.replies import load_replies
from bot.db.engine import session_factory
from bot.db.models import Account, AuditEntry, ContactPoint, Conversation, Message
from bot.domain import handoff
from bot.domain.conversations import flag_wrong_number, get_or_create_conversation, opt_out
from bot.domain.handoff import HandoffError
from bot.gateway.runtime import GatewayRuntime
from bot.policy import Policy
from tests.conftest import REPO_ROOT
from tests.test_console_access import escalated, login, people  # noqa: F401 (fixtures)

pytest_plugins = ["tests.conftest_gateway"]

TZ = "America/Mexico_City"
NIGHT = "2026-11-23T23:00:00-06:00"  # Monday 23:00: the window (07:00-22:00) is closed
SMALL_HOURS = "2026-11-24T03:00:00-06:00"  # Tuesday 03:00
PHONE = "+525512340001"


def at(moment: str) -> Clock:
    return Clock.from_setting(moment, TZ)


def adapters() -> dict[str, ChannelAdapter]:
    """A WhatsApp adapter for rendering only (nothing is sent in the ledger tests)."""
    return {
        "whatsapp": WhatsAppAdapter(
            app_secret="s", access_token="t", phone_number_id="1", api_base_url="http://x"
        )
    }


def audit(session: Session, action: str) -> list[AuditEntry]:
    session.expire_all()
    return list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
    )


def outbound(session: Session) -> list[Message]:
    session.expire_all()
    return list(
        session.scalars(select(Message).where(Message.direction == "out").order_by(Message.id))
    )


def fill_weekly_cap(session: Session, policy: Policy, account: Account) -> None:
    """The account got every company message the policy allows in 7 days, two days ago."""
    contact = session.scalars(
        select(ContactPoint).where(ContactPoint.debtor_id == account.debtor_id)
    ).first()
    two_days_ago = at("2026-11-21T12:00:00-06:00")
    for _ in range(policy.contact.max_company_messages_per_7_days):
        record_company_message(session, two_days_ago, account, contact, "reminder", message_id=None)
    session.commit()


@pytest.fixture
def chat(session: Session, clock: Clock, make_account: Callable[..., Account]) -> Conversation:
    """A debtor who wrote to us at noon on Monday (the service window is open)."""
    make_account(phone=PHONE)
    conversation = get_or_create_conversation(session, clock, "whatsapp", PHONE)
    conversation.last_inbound_at = clock.now_utc()
    session.commit()
    return conversation


def thank(session: Session, clock: Clock, policy: Policy, account_id: int) -> int:
    count = thank_for_payment(
        session,
        clock,
        policy,
        load_replies(),
        adapters(),
        account_id=account_id,
        amount_cents=125_000,
        reference="REF-1",
    )
    session.commit()
    return count


# -- the payment thank-you ---------------------------------------------------------------------
def test_a_payment_confirmed_at_3am_is_thanked_when_the_window_opens_not_at_3am(
    session: Session, policy: Policy, chat: Conversation
) -> None:
    paid_at = at(SMALL_HOURS).now_utc()
    chat.last_inbound_at = chat.verified_at = paid_at - timedelta(minutes=1)  # paid in chat
    session.commit()

    assert thank(session, at(SMALL_HOURS), policy, chat.account_id or 0) == 1

    (row,) = outbound(session)
    assert row.status == "scheduled"  # never claimable by the outbox at 03:00
    assert row.payload["not_before"] == "2026-11-24T07:00:00-06:00"
    assert "$" not in (row.text or "")  # by 07:00 the verification may be over: no amounts
    (delay,) = audit(session, "delay")
    assert delay.details["kind"] == "payment_thanks"
    assert delay.details["reason"] == "outside_hours"
    assert delay.details["until"] == "2026-11-24T07:00:00-06:00"
    assert audit(session, "company_message") == []  # not sent (yet), not counted

    from bot.compliance.outreach import release_scheduled

    assert release_scheduled(session, at("2026-11-24T06:59:00-06:00"), policy) == 0
    assert outbound(session)[0].status == "scheduled"
    assert release_scheduled(session, at("2026-11-24T07:00:00-06:00"), policy) == 1
    session.commit()
    assert outbound(session)[0].status == "queued"
    (counted,) = audit(session, "company_message")
    assert counted.details["kind"] == "payment_thanks"


def test_a_thank_you_scheduled_at_night_is_dropped_if_the_person_opts_out_before_morning(
    session: Session, policy: Policy, chat: Conversation
) -> None:
    from bot.compliance.outreach import release_scheduled

    thank(session, at(SMALL_HOURS), policy, chat.account_id or 0)
    opt_out(session, at("2026-11-24T05:00:00-06:00"), "whatsapp", PHONE)
    session.commit()

    release_scheduled(session, at("2026-11-24T07:00:00-06:00"), policy)
    session.commit()

    (row,) = outbound(session)
    assert (row.status, row.error_code) == ("failed", "opted_out")
    (refused,) = audit(session, "suppression")
    assert (refused.details["kind"], refused.details["reason"]) == ("payment_thanks", "opted_out")


@pytest.mark.parametrize(
    ("mark", "reason"), [(opt_out, "opted_out"), (flag_wrong_number, "wrong_number")]
)
def test_the_thank_you_to_a_number_that_said_stop_is_refused_and_audited(
    session: Session,
    clock: Clock,
    policy: Policy,
    chat: Conversation,
    mark: Callable[..., None],
    reason: str,
) -> None:
    mark(session, clock, "whatsapp", PHONE)
    session.commit()

    assert thank(session, clock, policy, chat.account_id or 0) == 0

    assert outbound(session) == []
    (refused,) = audit(session, "suppression")  # never dropped silently
    assert (refused.details["kind"], refused.details["reason"]) == ("payment_thanks", reason)


def test_a_thank_you_on_a_channel_without_a_contact_point_is_judged_on_that_channel(
    session: Session, clock: Clock, policy: Policy, make_account: Callable[..., Account]
) -> None:
    from bot.channels.rcs_render import render_rcs

    class Rcs:
        render = staticmethod(render_rcs)

    account = make_account(phone=PHONE)  # a WhatsApp contact point only
    rcs = get_or_create_conversation(session, clock, "rcs", PHONE)
    rcs.last_inbound_at = clock.now_utc()
    session.commit()
    channels: dict[str, Any] = {**adapters(), "rcs": Rcs()}

    def thank_on_rcs() -> int:
        count = thank_for_payment(
            session,
            clock,
            policy,
            load_replies(),
            channels,
            account_id=account.id,
            amount_cents=100_00,
            reference="REF-RCS",
        )
        session.commit()
        return count

    assert thank_on_rcs() >= 1
    assert {row.channel for row in outbound(session)} == {"rcs"}
    opt_out(session, clock, "rcs", PHONE)  # the contact point the door recorded
    session.commit()
    before = len(outbound(session))
    assert thank_on_rcs() == 0
    assert len(outbound(session)) == before
    assert audit(session, "suppression")[-1].details["reason"] == "opted_out"


def test_the_thank_you_waits_during_an_open_dispute_but_goes_when_the_account_is_paid_off(
    session: Session, clock: Clock, policy: Policy, chat: Conversation
) -> None:
    account = session.get(Account, chat.account_id)
    assert account is not None
    account.dispute_open = True
    session.commit()
    assert thank(session, clock, policy, account.id) == 0
    assert audit(session, "suppression")[0].details["reason"] == "dispute_open"

    account.dispute_open = False
    account.status = "paid"  # the payment paid it off: the thank-you is exactly what is wanted
    session.commit()
    assert thank(session, clock, policy, account.id) == 1
    assert outbound(session)[0].status == "queued"


def test_the_weekly_cap_counts_and_holds_the_thank_you(
    session: Session, clock: Clock, policy: Policy, chat: Conversation
) -> None:
    account = session.get(Account, chat.account_id)
    assert account is not None
    assert thank(session, clock, policy, account.id) == 1
    (counted,) = audit(session, "company_message")
    assert counted.details["kind"] == "payment_thanks"  # it counts against the cap

    fill_weekly_cap(session, policy, account)
    assert thank(session, clock, policy, account.id) == 1

    assert outbound(session)[-1].status == "scheduled"
    assert audit(session, "delay")[-1].details["reason"] == "weekly_cap"


# -- the re-engagement template ----------------------------------------------------------------
@pytest.fixture
def runtime_at(gateway_settings: Settings) -> Iterator[Callable[[str], GatewayRuntime]]:
    """The gateway's wiring (outbox, fallback, door) at a pinned moment, workers not started."""

    def _make(moment: str) -> GatewayRuntime:
        return GatewayRuntime(gateway_settings.model_copy(update={"now": moment}))

    yield _make


def held_reply(session: Session, conversation: Conversation, clock: Clock) -> Message:
    """A bot reply that could not go: the 24-hour window closed."""
    text = "Aquí está tu saldo."
    row = enqueue(
        session,
        clock,
        conversation_id=conversation.id,
        channel=conversation.channel,
        rendered=RenderedMessage(kind="text", text=text, body={"text": {"body": text}}),
    )
    session.flush()
    return row


def test_the_reengagement_template_waits_for_the_contact_window(
    session: Session, chat: Conversation, runtime_at: Callable[[str], GatewayRuntime]
) -> None:
    runtime = runtime_at(NIGHT)
    reply = held_reply(session, chat, runtime.clock)

    runtime.outbox.hold_in_session(session, reply)
    session.commit()

    held, invitation = outbound(session)
    assert held.status == "held"
    assert invitation.payload.get("reengagement") is True
    assert invitation.status == "scheduled"  # not at 23:00
    assert invitation.payload["not_before"] == "2026-11-24T07:00:00-06:00"
    (delay,) = audit(session, "delay")
    assert (delay.details["kind"], delay.details["reason"]) == ("reengagement", "outside_hours")


def test_a_scheduled_invitation_is_dropped_when_the_person_wrote_back_before_morning(
    session: Session,
    policy: Policy,
    chat: Conversation,
    runtime_at: Callable[[str], GatewayRuntime],
) -> None:
    from bot.compliance.outreach import release_scheduled

    runtime = runtime_at(NIGHT)
    reply = held_reply(session, chat, runtime.clock)
    runtime.outbox.hold_in_session(session, reply)
    reply.status = "sent"  # the person wrote at 01:00: the held reply went out
    session.commit()

    release_scheduled(session, at("2026-11-24T07:00:00-06:00"), policy)
    session.commit()

    invitation = outbound(session)[-1]
    assert (invitation.status, invitation.error_code) == ("failed", "nothing_held")
    assert audit(session, "suppression")[-1].details["reason"] == "nothing_held"


def test_the_reengagement_template_respects_an_opt_out_and_counts_against_the_cap(
    session: Session,
    clock: Clock,
    policy: Policy,
    chat: Conversation,
    runtime_at: Callable[[str], GatewayRuntime],
) -> None:
    runtime = runtime_at("2026-11-23")  # noon: the window is open
    first = held_reply(session, chat, runtime.clock)
    runtime.outbox.hold_in_session(session, first)
    session.commit()
    (counted,) = audit(session, "company_message")
    assert counted.details["kind"] == "reengagement"

    # The person writes again (releasing nothing here), then opts out.
    session.add(
        Message(
            conversation_id=chat.id,
            channel="whatsapp",
            direction="in",
            external_id="wamid.again",
            author="debtor",
            kind="text",
            text="BAJA",
            payload={},
            status="done",
            attempts=0,
            created_at=clock.now_utc(),
            updated_at=clock.now_utc(),
        )
    )
    opt_out(session, clock, "whatsapp", PHONE)
    second = held_reply(session, chat, runtime.clock)
    runtime.outbox.hold_in_session(session, second)
    session.commit()

    invitations = [row for row in outbound(session) if (row.payload or {}).get("reengagement")]
    assert len(invitations) == 1  # only the one before the opt-out
    (refused,) = audit(session, "suppression")
    assert (refused.details["kind"], refused.details["reason"]) == ("reengagement", "opted_out")


# -- the agent's template, from the console ----------------------------------------------------
@pytest.fixture
def night_gateway(
    start_gateway: Callable[..., TestClient], gateway_settings: Settings
) -> TestClient:
    return start_gateway(gateway_settings.model_copy(update={"now": NIGHT}))


def send_template(client: TestClient, conversation_id: int) -> Any:
    csrf = login(client, "lucia")
    chat_url = f"/console/chats/{conversation_id}"
    assert client.post(f"{chat_url}/claim", data={"csrf_token": csrf}).status_code in (200, 303)
    return client.post(
        f"{chat_url}/template",
        data={"template": "reanudar_conversacion"},
        headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
    )


def test_an_agent_template_at_23h_is_held_until_the_window_opens(
    night_gateway: TestClient,
    people: dict[str, str],  # noqa: F811
    escalated: Conversation,  # noqa: F811
    db_url: str,
) -> None:
    answer = send_template(night_gateway, escalated.id)

    assert answer.status_code == 200
    assert "programada" in answer.json()["message"]  # the agent reads why it did not go
    with session_factory(db_url)() as s:
        (row,) = outbound(s)
        assert (row.kind, row.status, row.author) == ("template", "scheduled", "agent:lucia")
        (delay,) = audit(s, "delay")
        assert delay.actor == "agent:lucia"
        assert (delay.details["kind"], delay.details["reason"]) == (
            "agent_template",
            "outside_hours",
        )
        (entry,) = audit(s, "agent_template")
        assert entry.details["verdict"] == "delay"
        assert audit(s, "company_message") == []


def test_an_agent_template_to_an_opted_out_number_is_refused_and_the_agent_told_why(
    gateway: TestClient,
    people: dict[str, str],  # noqa: F811
    escalated: Conversation,  # noqa: F811
    db_url: str,
    clock: Clock,
) -> None:
    with session_factory(db_url)() as s:
        opt_out(s, clock, "whatsapp", escalated.address)
        s.commit()

    answer = send_template(gateway, escalated.id)

    assert answer.status_code == 409
    assert "BAJA" in answer.json()["message"]
    with session_factory(db_url)() as s:
        assert outbound(s) == []
        (refused,) = audit(s, "suppression")  # committed although the action was refused
        assert refused.actor == "agent:lucia"
        assert (refused.details["kind"], refused.details["reason"]) == (
            "agent_template",
            "opted_out",
        )


def test_an_agent_template_counts_against_the_weekly_cap_and_waits_when_it_is_full(
    gateway: TestClient,
    people: dict[str, str],  # noqa: F811
    escalated: Conversation,  # noqa: F811
    db_url: str,
    session: Session,
    policy: Policy,
) -> None:
    account = session.get(Account, escalated.account_id)
    assert account is not None
    fill_weekly_cap(session, policy, account)

    answer = send_template(gateway, escalated.id)

    assert answer.status_code == 200
    assert "7 días" in answer.json()["message"]
    with session_factory(db_url)() as s:
        assert [row.status for row in outbound(s)] == ["scheduled"]
        assert audit(s, "delay")[0].details["reason"] == "weekly_cap"


def test_handoff_never_queues_a_template_itself(
    session: Session, clock: Clock, chat: Conversation
) -> None:
    agent = create_console_user(session, clock, "lucia", "clave-segura-1", "agent")
    chat.state, chat.assigned_agent_id = "agent", agent.id
    session.commit()
    template = TemplateMessage(name="reanudar_conversacion", language="es_MX")

    with pytest.raises(HandoffError) as refused:
        handoff.send_as_agent(
            session,
            clock,
            chat,
            agent,
            [OutboundMessage(template=template)],
            adapters()["whatsapp"].render,
            window=timedelta(hours=24),
        )
    assert refused.value.reason == "company_started"
    assert outbound(session) == []


# -- the fallback chain (RCS, SMS) ---------------------------------------------------------------
VARIABLES = ["Laura", "Banco Ejemplo", "$1,250.00", "26/11/2026", "http://testserver/pay/abc"]


def test_the_first_send_of_the_fallback_chain_waits_for_the_contact_window(
    session: Session, policy: Policy, make_account: Callable[..., Account]
) -> None:
    from bot.channels.company_send import send_company_message

    account = make_account(phone=PHONE)
    result = send_company_message(
        session, at(NIGHT), policy, account.debtor, "recordatorio_preventivo", VARIABLES,
        account_id=account.id,
    )  # fmt: skip
    session.commit()

    assert result.message is not None and result.message.status == "scheduled"
    assert result.message.payload["company"]["chain"]  # the rest of the chain rides along
    (delay,) = audit(session, "delay")
    assert (delay.details["kind"], delay.details["reason"]) == ("reminder", "outside_hours")


def test_a_fallback_hop_asks_the_gate_again_and_a_dispute_opened_since_stops_it(
    session: Session, clock: Clock, policy: Policy, make_account: Callable[..., Account]
) -> None:
    from bot.channels.company_send import send_company_message
    from bot.channels.fallback import ChannelFallback

    account = make_account(phone=PHONE)
    first = send_company_message(
        session, clock, policy, account.debtor, "recordatorio_preventivo", VARIABLES,
        account_id=account.id,
    ).message  # fmt: skip
    assert first is not None and first.channel == "whatsapp"
    account.dispute_open = True  # the person disputed the debt before WhatsApp said 131026
    first.status, first.error_code = "failed", "131026"

    ChannelFallback(policy, clock, None).on_undeliverable(session, first)
    session.commit()

    assert [row.channel for row in outbound(session)] == ["whatsapp"]  # no RCS, no SMS
    refused = audit(session, "suppression")[-1]
    assert (refused.details["reason"], refused.details["hop"]) == ("dispute_open", 1)
    assert len(audit(session, "company_message")) == 1  # counted once, at the door


# -- one door: nothing else in bot/ queues an outbound row -------------------------------------
BOT = REPO_ROOT / "bot"
# (module, function) → why it may queue outbound rows without the door.
ALLOWED_ENQUEUE = {
    ("bot/compliance/outreach.py", "queue_company_message"): "the door itself",
    ("bot/conversation/pipeline.py", "Pipeline._complete"): "the bot's replies to an inbound",
    ("bot/domain/handoff.py", "send_as_agent"): "an agent's reply in the open window",
    ("bot/channels/fallback.py", "_queue"): "a hop of a message the door already judged",
}
# Where a Message row may be built: the outbox's enqueue, the inbox's inbound rows.
ALLOWED_ROWS = {
    ("bot/conversation/outbox.py", "enqueue"),
    ("bot/conversation/inbox.py", "_store_message"),
}
MODULES_WITH_ENQUEUE = {module for module, _ in ALLOWED_ENQUEUE} | {"bot/conversation/outbox.py"}


def _called(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def queue_sites(module: str, source: str) -> list[tuple[str, str, int]]:
    """Every (function, what, line) in ``source`` that queues or builds an outbound row."""
    found: list[tuple[str, str, int]] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, [*scope, child.name])
                continue
            where = ".".join(scope) or "<module>"
            if isinstance(child, ast.Call) and _called(child) in ("enqueue", "Message"):
                found.append((where, str(_called(child)), child.lineno))
            if (  # insert(Message)…: a row without the Message constructor
                isinstance(child, ast.Call)
                and _called(child) == "insert"
                and any(isinstance(a, ast.Name) and a.id == "Message" for a in child.args)
            ):
                found.append((where, "Message", child.lineno))
            if (
                isinstance(child, ast.ImportFrom)
                and child.module == "bot.conversation.outbox"
                and any(alias.name == "enqueue" for alias in child.names)
            ):
                found.append((where, "import enqueue", child.lineno))
            visit(child, scope)

    visit(ast.parse(source, filename=module), [])
    return found


def violations(module: str, source: str) -> list[str]:
    problems = []
    for function, what, line in queue_sites(module, source):
        if what == "import enqueue":
            allowed = module in MODULES_WITH_ENQUEUE
        elif what == "Message":
            allowed = (module, function) in ALLOWED_ROWS
        else:
            allowed = (module, function) in ALLOWED_ENQUEUE
        if not allowed:
            problems.append(f"{module}:{line} {function}: {what}")
    return problems


def bot_sources() -> Iterator[tuple[str, str]]:
    """Every module of the application: bot/ and the Rasa actions."""
    for path in sorted([*BOT.rglob("*.py"), *(REPO_ROOT / "actions").rglob("*.py")]):
        yield path.relative_to(REPO_ROOT).as_posix(), path.read_text(encoding="utf-8")


def test_only_the_door_and_the_replies_queue_outbound_messages() -> None:
    problems = [p for module, source in bot_sources() for p in violations(module, source)]
    assert problems == [], (
        "company-started messages must go through "
        "bot.compliance.outreach.queue_company_message:\n" + "\n".join(problems)
    )


def test_every_allowed_site_still_exists() -> None:
    """An allow-list entry that no longer queues anything would hide a future bypass."""
    present = {
        (module, function)
        for module, source in bot_sources()
        for function, what, _ in queue_sites(module, source)
        if what in ("enqueue", "Message")
    }
    assert set(ALLOWED_ENQUEUE) | ALLOWED_ROWS <= present


@pytest.mark.parametrize(
    "bypass",
    [
        "from bot.conversation.outbox import enqueue\n"
        "def thank(session, clock):\n    enqueue(session, clock, conversation_id=1)\n",
        "import bot.conversation.outbox as o\n"
        "def thank(session, clock):\n    o.enqueue(session, clock, conversation_id=1)\n",
        "from bot.db.models import Message\n"
        "def thank(session):\n    session.add(Message(direction='out'))\n",
        "from sqlalchemy import insert\nfrom bot.db.models import Message\n"
        "def thank(session):\n    session.execute(insert(Message).values(direction='out'))\n",
    ],
)
def test_the_guard_catches_a_direct_enqueue_in_notices(bypass: str) -> None:
    notices = Path(BOT / "conversation" / "notices.py").read_text(encoding="utf-8")
    assert violations("bot/conversation/notices.py", notices) == []
    assert violations("bot/conversation/notices.py", notices + "\n" + bypass) != []


def test_a_scheduled_row_is_not_claimable_and_wakes_the_outbox_when_due(
    session: Session, chat: Conversation, runtime_at: Callable[[str], GatewayRuntime]
) -> None:
    runtime = runtime_at(SMALL_HOURS)
    thank(session, runtime.clock, runtime.policy, chat.account_id or 0)

    assert runtime.outbox.claim(10) == []  # released only when the gate says so
    due = runtime.outbox.next_due()
    assert isinstance(due, datetime)  # the worker wakes up for it

    morning = runtime_at("2026-11-24T07:00:00-06:00")
    (claimed,) = morning.outbox.claim(10)  # the outbox asks the door, the gate says send
    (row,) = outbound(session)
    assert (row.id, row.status) == (claimed.message_id, "sending")
    assert audit(session, "company_message")[0].details["kind"] == "payment_thanks"
