"""What the console's routes ask for: one function per agent action, each one transaction.

They run in a worker thread (blocking database work), call the domain
(:mod:`bot.domain.handoff`, :mod:`bot.domain.agent_ledger`), put the Spanish the debtor reads
into the outbox through the channel's adapter, and commit. Pausing and resuming the Rasa
tracker is async HTTP and stays in the routes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.base import RESUME_PAYLOAD, OutboundMessage, TemplateMessage
from bot.compliance.gate import Decision, Verdict
from bot.compliance.outreach import contact_point_of, queue_company_message, renderers_of
from bot.console.auth import Agent
from bot.console.texts import console_texts
from bot.conversation.responses import payment_code_message
from bot.db.models import Account, ConsoleUser, Conversation, PaymentCode
from bot.domain import agent_ledger, handoff
from bot.domain.audit import record_audit
from bot.domain.conversations import VerificationOutcome
from bot.domain.errors import DomainError, OfferRejected, PromiseRejected
from bot.domain.handoff import HandoffError, Renderer
from bot.domain.money import InvalidAmount, format_money, pesos_to_cents
from bot.gateway.runtime import GatewayRuntime
from bot.payments import PAYMENT_METHODS, PaymentCodeError, get_provider, payment_url


class Refused(Exception):
    """The action was not done; ``reason`` names the Spanish message in ``texts.yml``."""

    def __init__(self, reason: str, status: int = 409) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def refusal_of(error: DomainError) -> Refused:
    if isinstance(error, (HandoffError, PaymentCodeError, PromiseRejected, OfferRejected)):
        return Refused(error.reason, 403 if error.reason == "forbidden" else 409)
    return Refused("generic")


def parse_amount(value: str) -> int:
    """Centavos from what an agent types: ``1500``, ``1,500.50``, ``$1 500``."""
    cleaned = re.sub(r"[\s$,]", "", value or "")
    try:
        cents = pesos_to_cents(cleaned)
    except (InvalidAmount, ValueError, ArithmeticError):
        raise Refused("bad_amount", 422) from None
    if cents <= 0:
        raise Refused("bad_amount", 422)
    return cents


def parse_date(value: str) -> date:
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        raise Refused("bad_date", 422) from None


@dataclass
class _Unit:
    session: Session
    user: ConsoleUser
    conversation: Conversation


@contextmanager
def _unit(runtime: GatewayRuntime, agent: Agent, conversation_id: int) -> Iterator[_Unit]:
    """The signed-in user and the conversation; commits when the block succeeds."""
    with runtime.sessions() as session:
        user = session.get(ConsoleUser, agent.id)
        conversation = session.get(Conversation, conversation_id)
        if user is None or not user.active:
            raise Refused("forbidden", 403)
        if conversation is None:
            raise Refused("not_found", 404)
        try:
            yield _Unit(session, user, conversation)
            session.commit()
        except DomainError as error:
            session.rollback()
            raise refusal_of(error) from None


def _render(runtime: GatewayRuntime, conversation: Conversation) -> Renderer:
    adapter = runtime.adapters.get(conversation.channel)
    if adapter is None:
        raise Refused("generic")
    return adapter.render


def service_window(runtime: GatewayRuntime, conversation: Conversation) -> timedelta | None:
    adapter = runtime.adapters.get(conversation.channel)
    return adapter.service_window if adapter is not None else None


def approved_templates(runtime: GatewayRuntime) -> dict[str, TemplateMessage]:
    """Templates an agent may send outside the service window: those needing no data.
    Their quick replies only reopen the chat (the held messages and the agent's replies)."""
    found = {}
    for name, template in runtime.policy.templates.items():
        if "{{" in template.body:
            continue
        found[name] = TemplateMessage(
            name=name,
            language=template.language,
            button_payloads=tuple(RESUME_PAYLOAD for _ in template.buttons),
            preview=template.body,
            button_titles=tuple(template.buttons),
        )
    return found


# -- state changes ------------------------------------------------------------------------
def claim(runtime: GatewayRuntime, agent: Agent, conversation_id: int) -> str:
    """Take a queued chat; returns the sender whose Rasa tracker to pause."""
    with _unit(runtime, agent, conversation_id) as unit:
        handoff.require_view(unit.user, unit.conversation)
        handoff.claim(unit.session, runtime.clock, unit.conversation, unit.user)
        return unit.conversation.address


def assign(
    runtime: GatewayRuntime, agent: Agent, conversation_id: int, username: str
) -> tuple[str, bool]:
    """A supervisor gives a chat to ``username``; (sender, whether it was queued)."""
    with _unit(runtime, agent, conversation_id) as unit:
        target = unit.session.scalars(
            select(ConsoleUser).where(ConsoleUser.username == username)
        ).first()
        if target is None:
            raise Refused("unknown_agent", 422)
        was_queued = unit.conversation.state == handoff.QUEUED
        handoff.assign(unit.session, runtime.clock, unit.conversation, target, by=unit.user)
        return unit.conversation.address, was_queued


def releasable(
    runtime: GatewayRuntime, agent: Agent, conversation_id: int, *, closing: bool
) -> str:
    """Check the agent may return (or close) the chat before Rasa is resumed; the sender."""
    with _unit(runtime, agent, conversation_id) as unit:
        if closing and handoff.can_act(unit.user, unit.conversation):
            return unit.conversation.address
        handoff.require_act(unit.user, unit.conversation)
        return unit.conversation.address


def return_to_bot(runtime: GatewayRuntime, agent: Agent, conversation_id: int) -> None:
    with _unit(runtime, agent, conversation_id) as unit:
        handoff.return_to_bot(unit.session, runtime.clock, unit.conversation, unit.user)


def close(runtime: GatewayRuntime, agent: Agent, conversation_id: int) -> None:
    with _unit(runtime, agent, conversation_id) as unit:
        handoff.close(unit.session, runtime.clock, unit.conversation, unit.user)


def add_note(runtime: GatewayRuntime, agent: Agent, conversation_id: int, text: str) -> None:
    with _unit(runtime, agent, conversation_id) as unit:
        handoff.add_note(unit.session, runtime.clock, unit.conversation, unit.user, text)


# -- messages to the debtor ---------------------------------------------------------------
def reply(runtime: GatewayRuntime, agent: Agent, conversation_id: int, text: str) -> None:
    with _unit(runtime, agent, conversation_id) as unit:
        handoff.agent_reply(
            unit.session,
            runtime.clock,
            unit.conversation,
            unit.user,
            text,
            _render(runtime, unit.conversation),
            window=service_window(runtime, unit.conversation),
        )


def send_template(runtime: GatewayRuntime, agent: Agent, conversation_id: int, name: str) -> str:
    """An agent's template is company-started: through the compliance door, whatever the
    window. Returns the notice key; a refusal (opt-out, wrong number…) is committed to the
    audit log first, then raised for the agent to read why."""
    template = approved_templates(runtime).get(name)
    if template is None:
        raise Refused("unknown_template", 422)
    with _unit(runtime, agent, conversation_id) as unit:
        decision = _template_through_the_door(runtime, unit, template)
    if decision.verdict == Verdict.SUPPRESS:
        raise Refused(decision.reason or "generic")
    if decision.verdict == Verdict.DELAY:
        return f"template_held_{decision.reason}"
    return "template_sent"


def _template_through_the_door(
    runtime: GatewayRuntime, unit: _Unit, template: TemplateMessage
) -> Decision:
    handoff.require_act(unit.user, unit.conversation)
    conversation, actor = unit.conversation, handoff.actor_of(unit.user)
    account = (
        unit.session.get(Account, conversation.account_id) if conversation.account_id else None
    )
    queued = queue_company_message(
        unit.session,
        runtime.clock,
        runtime.policy,
        renderers_of(runtime.adapters),
        account,
        contact_point_of(unit.session, runtime.clock, conversation),
        OutboundMessage(template=template),
        "agent_template",
        conversation=conversation,
        actor=actor,
        author=actor,
        fallback=False,  # the approved agent templates only reopen a WhatsApp chat
    )
    conversation.updated_at = runtime.clock.now_utc()
    decision = queued.decision
    record_audit(
        unit.session,
        runtime.clock,
        actor=actor,
        action="agent_template",
        account_id=conversation.account_id,
        conversation_id=conversation.id,
        template=template.name,
        message_ids=[row.id for row in queued.messages],
        verdict=decision.verdict.value,
        reason=decision.reason,
        until=decision.until.isoformat() if decision.until else None,
    )
    return decision


def _code_message(runtime: GatewayRuntime, code: PaymentCode) -> OutboundMessage:
    """The QR image with the same caption the bot uses for a payment code."""
    url = payment_url(runtime.settings.public_url, code.token)
    custom: dict[str, Any] = {
        "method": code.method,
        "reference": code.reference,
        "clabe": code.clabe,
        "amount_cents": code.amount_cents,
        "expires_at": code.expires_at.isoformat(),
        "pay_url": url,
        "qr_png_url": f"{url}/qr.png",
    }
    return payment_code_message(custom, runtime.replies, runtime.clock)


def send_code(
    runtime: GatewayRuntime, agent: Agent, conversation_id: int, amount: str, method: str
) -> None:
    if method not in PAYMENT_METHODS:
        raise Refused("unknown_method", 422)
    cents = parse_amount(amount)
    with _unit(runtime, agent, conversation_id) as unit:
        code = agent_ledger.issue_code_for_agent(
            unit.session,
            runtime.clock,
            runtime.policy,
            get_provider(runtime.settings),
            unit.conversation,
            unit.user,
            amount_cents=cents,
            method=method,
        )
        handoff.send_as_agent(
            unit.session,
            runtime.clock,
            unit.conversation,
            unit.user,
            [_code_message(runtime, code)],
            _render(runtime, unit.conversation),
            window=service_window(runtime, unit.conversation),
            action="agent_payment_code",
            payment_code_id=code.id,
        )


def approve_settlement(
    runtime: GatewayRuntime, agent: Agent, conversation_id: int, amount: str, deadline: str
) -> None:
    cents, until = parse_amount(amount), parse_date(deadline)
    texts = console_texts()
    with _unit(runtime, agent, conversation_id) as unit:
        approved = agent_ledger.approve_settlement(
            unit.session,
            runtime.clock,
            runtime.policy,
            get_provider(runtime.settings),
            unit.conversation,
            unit.user,
            amount_cents=cents,
            deadline=until,
        )
        confirmation = texts.to_debtor(
            "settlement_confirmed",
            amount=format_money(cents),
            deadline=texts.spoken_date(until),
            creditor=_creditor(unit),
        )
        handoff.send_as_agent(
            unit.session,
            runtime.clock,
            unit.conversation,
            unit.user,
            [OutboundMessage(text=confirmation), _code_message(runtime, approved.code)],
            _render(runtime, unit.conversation),
            window=service_window(runtime, unit.conversation),
            action="agent_settlement_sent",
            agreement_id=approved.agreement.id,
            below_floor=approved.below_floor,
        )


def _creditor(unit: _Unit) -> str:
    account = unit.session.get(Account, unit.conversation.account_id)
    return account.creditor if account else ""


def record_promise(
    runtime: GatewayRuntime, agent: Agent, conversation_id: int, amount: str, when: str
) -> None:
    cents, promised = parse_amount(amount), parse_date(when)
    texts = console_texts()
    with _unit(runtime, agent, conversation_id) as unit:
        agent_ledger.record_promise_for_agent(
            unit.session,
            runtime.clock,
            runtime.policy,
            unit.conversation,
            unit.user,
            promised_date=promised,
            amount_cents=cents,
        )
        confirmation = texts.to_debtor(
            "promise_confirmed", amount=format_money(cents), date=texts.spoken_date(promised)
        )
        handoff.send_as_agent(
            unit.session,
            runtime.clock,
            unit.conversation,
            unit.user,
            [OutboundMessage(text=confirmation)],
            _render(runtime, unit.conversation),
            window=service_window(runtime, unit.conversation),
            action="agent_promise_confirmed",
        )


def end_verification(runtime: GatewayRuntime, agent: Agent, conversation_id: int) -> str:
    """End the sender's verification; the notice key."""
    with _unit(runtime, agent, conversation_id) as unit:
        agent_ledger.end_verification_by_agent(
            unit.session, runtime.clock, unit.conversation, unit.user
        )
    return "verification_ended"


def record_opt_out(runtime: GatewayRuntime, agent: Agent, conversation_id: int) -> str:
    """Record the debtor's request for no more messages, and confirm it to them once (as the
    gateway confirms a stop word) while the service window is open; the notice key."""
    with _unit(runtime, agent, conversation_id) as unit:
        if not agent_ledger.record_opt_out_by_agent(
            unit.session, runtime.clock, unit.conversation, unit.user
        ):
            return "already_opted_out"
        window = service_window(runtime, unit.conversation)
        if not handoff.window_open(unit.conversation, runtime.clock, window):
            return "opt_out_recorded"
        handoff.send_as_agent(
            unit.session,
            runtime.clock,
            unit.conversation,
            unit.user,
            [OutboundMessage(text=runtime.replies.opt_out_confirmed)],
            _render(runtime, unit.conversation),
            window=window,
            action="agent_opt_out_confirmed",
        )
    return "opt_out_confirmed"


def verify_identity(
    runtime: GatewayRuntime, agent: Agent, conversation_id: int, birth_date: str, last4: str
) -> str:
    """Check the answer the debtor gave the agent; the notice key of the outcome."""
    born = parse_date(birth_date) if birth_date.strip() else None
    digits = re.sub(r"\D", "", last4 or "") or None
    with _unit(runtime, agent, conversation_id) as unit:
        outcome = agent_ledger.check_identity_for_agent(
            unit.session,
            runtime.clock,
            runtime.policy,
            unit.conversation,
            unit.user,
            birth_date=born,
            last4=digits,
        )
    return {
        VerificationOutcome.VERIFIED: "verified",
        VerificationOutcome.FAILED: "not_verified",
        VerificationOutcome.LOCKED: "locked",
    }[outcome]
