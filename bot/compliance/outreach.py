"""The one door for company-started messages: the gate, the audit log, then the outbox.

Every message the company starts — campaign reminders and promise follow-ups, an agent's
template from the console, the re-engagement template, the payment thank-you, a
company-started template queued on the fallback chain — reaches the outbox through
:func:`queue_company_message`:

1. it asks the gate (:func:`bot.compliance.gate.decide`), which writes a delay or a
   suppression to the audit log with its reason;
2. on *suppress* nothing is queued (the caller tells the agent, or the report, why);
3. on *delay* (hours, holiday, weekly cap) the rows are queued ``scheduled`` until the
   contact window opens (``not_before``). :func:`release_scheduled`, which the outbox runs
   as it claims, asks the gate again at that moment: a number that opted out, or an
   account that opened a dispute, meanwhile gets nothing (audited). Callers that decide
   again on their own (the campaign run) pass ``schedule=False`` and get nothing queued;
4. on *send* the rows are queued and counted against the weekly cap (a
   ``company_message`` audit entry: the "sent" verdict).

Not company-started, and so not through this door (CONTRACT 6.9): the bot's replies to an
inbound message (:mod:`bot.conversation.pipeline`) and an agent's free-form reply inside
the 24-hour window the debtor opened (:func:`bot.domain.handoff.send_as_agent`). A fallback
hop (:mod:`bot.channels.fallback`) re-queues on the next channel a message this door
already judged and counted, after asking the gate about the account again.
``tests/test_hostile_one_door.py`` fails when any other code queues an outbound row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.base import ChannelAdapter, OutboundMessage, RenderedMessage, TemplateMessage
from bot.clock import Clock, aware_instant
from bot.compliance.gate import (
    KINDS,
    Decision,
    Kind,
    Verdict,
    decide,
    kind_of,
    record_company_message,
    record_decision,
)
from bot.compliance.profiles import contact_rules
from bot.compliance.window import debtor_zones, window_end_in
from bot.conversation.claims import OutboundStatus, scheduling_now
from bot.conversation.outbox import enqueue
from bot.db.models import Account, ContactPoint, Conversation, Direction, Message
from bot.domain.conversations import get_or_create_conversation
from bot.policy import Policy

log = structlog.get_logger("acuerdo.outreach")

Renderer = Callable[[OutboundMessage], list[RenderedMessage]]


@dataclass(frozen=True)
class Queued:
    """What happened: the gate's decision and the outbox rows (queued, or scheduled for
    ``decision.until`` when it said delay)."""

    decision: Decision
    conversation_id: int | None = None
    messages: list[Message] = field(default_factory=list)

    @property
    def scheduled(self) -> bool:
        return self.decision.verdict == Verdict.DELAY and bool(self.messages)


def window_end_utc(
    clock: Clock, policy: Policy, account: Account | None, at: datetime | None = None
) -> datetime:
    """When the contact window of the day of ``at`` (default now) closes for this debtor,
    first among its candidate zones (aware UTC)."""
    zones = debtor_zones(account.debtor if account else None, clock)
    end = window_end_in(at or clock.now(), zones, contact_rules(policy))
    return end.astimezone(clock.now_utc().tzinfo)


def contact_point_at(session: Session, channel: str, address: str) -> ContactPoint | None:
    """The contact point of ``address`` on ``channel``, if we have one."""
    return session.scalars(
        select(ContactPoint).where(ContactPoint.channel == channel, ContactPoint.address == address)
    ).first()


def contact_point_of(
    session: Session, clock: Clock, conversation: Conversation
) -> ContactPoint | None:
    """The contact point a conversation writes to, for the gate to judge.

    A debtor's conversation on a channel we had no contact point for (the same phone on
    RCS) gets one, so that its opt-out and flags are recorded and read per channel.
    """
    found = contact_point_at(session, conversation.channel, conversation.address)
    if found is not None or conversation.debtor_id is None:
        return found
    contact = ContactPoint(
        debtor_id=conversation.debtor_id,
        channel=conversation.channel,
        address=conversation.address,
        preferred=False,
        created_at=clock.now_utc(),
    )
    session.add(contact)
    session.flush()
    return contact


def renderers_of(adapters: Mapping[str, ChannelAdapter]) -> dict[str, Renderer]:
    return {name: adapter.render for name, adapter in adapters.items()}


def queue_company_message(
    session: Session,
    clock: Clock,
    policy: Policy,
    renderers: Mapping[str, Renderer],
    account: Account | None,
    contact_point: ContactPoint | None,
    message: OutboundMessage,
    kind: Kind,
    *,
    conversation: Conversation | None = None,
    channel: str | None = None,
    actor: str = "system",
    author: str = "system",
    decision: Decision | None = None,
    schedule: bool = True,
    fallback: bool = True,
    extra: Mapping[str, Any] | None = None,
    first_extra: Mapping[str, Any] | None = None,
) -> Queued:
    """The door: judge ``message`` with the gate, audit the verdict, and only then queue it.

    The target is ``conversation``, else ``channel`` (default the contact point's) at the
    contact point's address. ``decision`` skips asking the gate again when the caller just
    did (and recorded it). ``account`` None is a number linked to no account. A template
    carries the fallback chain unless ``fallback`` is False; ``first_extra`` goes on the
    first row only. A channel without a renderer is suppressed as ``no_adapter``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind of company-started message '{kind}'")
    if decision is None:
        decision = decide(session, clock, policy, account, contact_point, kind, actor=actor)
    if decision.verdict == Verdict.SUPPRESS or (not decision.sends and not schedule):
        return Queued(decision)
    if conversation is not None:
        channel, address = conversation.channel, conversation.address
    elif contact_point is not None:
        channel, address = channel or contact_point.channel, contact_point.address
    else:
        refused = Decision.suppress("no_contact_point")
        record_decision(session, clock, refused, account, None, kind, actor=actor)
        return Queued(refused)
    render = renderers.get(channel)
    if render is None:
        refused = Decision.suppress("no_adapter")
        record_decision(session, clock, refused, account, contact_point, kind, actor=actor)
        return Queued(refused)
    if conversation is None:
        conversation = get_or_create_conversation(session, clock, channel, address)
    opens = decision.until if decision.verdict == Verdict.DELAY else None
    payload_extra = {
        "company_started": True,
        "kind": kind,
        "account_id": account.id if account else None,
        "actor": actor,
        # Not to be sent after the debtor's window closes (for the outbox to honour).
        "send_before": window_end_utc(clock, policy, account, opens).isoformat(),
        **_fallback(policy, message.template, channel, account, renderers, fallback),
        **(extra or {}),
    }
    if opens is not None:
        payload_extra["not_before"] = opens.isoformat()
    rows = []
    for index, rendered in enumerate(render(message)):
        own = {**payload_extra, **(first_extra or {})} if index == 0 else payload_extra
        rows.append(
            enqueue(
                session,
                clock,
                conversation_id=conversation.id,
                channel=channel,
                rendered=rendered,
                author=author,
                extra=own,
            )
        )
    if opens is not None:  # waits, not blocking the conversation's other messages
        wait = max(opens - clock.now(), timedelta(0))
        for row in rows:
            row.status = OutboundStatus.SCHEDULED
            row.next_attempt_at = scheduling_now() + wait
    session.flush()
    if decision.sends:
        _count(session, clock, account, contact_point, kind, rows, actor, message)
    return Queued(decision, conversation.id, rows)


def queue_company_template(
    session: Session,
    clock: Clock,
    policy: Policy,
    adapters: Mapping[str, ChannelAdapter],
    account: Account,
    contact_point: ContactPoint | None,
    template: TemplateMessage,
    kind: Kind,
    *,
    actor: str = "system",
    author: str = "system",
    decision: Decision | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Queued:
    """A campaign's template through the door; a delay queues nothing (the next run
    decides again)."""
    return queue_company_message(
        session,
        clock,
        policy,
        renderers_of(adapters),
        account,
        contact_point,
        OutboundMessage(template=template),
        kind,
        actor=actor,
        author=author,
        decision=decision,
        schedule=False,
        extra=extra,
    )


def release_scheduled(session: Session, clock: Clock, policy: Policy) -> int:
    """Ask the gate again about every scheduled row whose moment came; the caller commits.

    Send: the row is queued and counted. Delay again: it stays scheduled, for the new
    moment. Suppress (opted out meanwhile, a dispute…): it fails with the reason. Every
    verdict is audited. Returns how many rows changed.
    """
    now = clock.now()
    changed = 0
    for row in session.scalars(
        select(Message)
        .where(Message.direction == Direction.OUT.value, Message.status == OutboundStatus.SCHEDULED)
        .order_by(Message.id)
    ):
        payload = dict(row.payload or {})
        not_before = aware_instant(payload.get("not_before"))
        if not_before is not None and not_before > now:
            continue
        changed += 1
        _rejudge(session, clock, policy, row, payload)
    return changed


def _rejudge(
    session: Session, clock: Clock, policy: Policy, row: Message, payload: dict[str, Any]
) -> None:
    conversation = session.get(Conversation, row.conversation_id)
    account = session.get(Account, payload["account_id"]) if payload.get("account_id") else None
    contact = (
        contact_point_at(session, conversation.channel, conversation.address)
        if conversation
        else None
    )
    kind = kind_of(payload.get("kind")) or "reengagement"
    actor = str(payload.get("actor") or "system")
    row.updated_at = clock.now_utc()
    if payload.get("reengagement") and not _still_held(session, row.conversation_id):
        decision = Decision.suppress("nothing_held")  # the person wrote back meanwhile
        record_decision(session, clock, decision, account, contact, kind, message_id=row.id)
    else:
        decision = decide(
            session, clock, policy, account, contact, kind, actor=actor, message_id=row.id
        )
    if decision.verdict == Verdict.SUPPRESS:
        row.status = OutboundStatus.FAILED
        row.error_code = (decision.reason or "suppressed")[:32]
        row.next_attempt_at = None
        return
    if decision.verdict == Verdict.DELAY and decision.until is not None:
        payload["not_before"] = decision.until.isoformat()
        payload["send_before"] = window_end_utc(clock, policy, account, decision.until).isoformat()
        row.payload = payload
        row.next_attempt_at = scheduling_now() + max(decision.until - clock.now(), timedelta(0))
        return
    payload.pop("not_before", None)
    payload["send_before"] = window_end_utc(clock, policy, account).isoformat()
    row.payload = payload
    row.status = OutboundStatus.QUEUED
    row.next_attempt_at = None
    record_company_message(
        session, clock, account, contact, kind, message_id=row.id, actor=actor, released=True
    )


def _still_held(session: Session, conversation_id: int) -> bool:
    """Whether a reply still waits for the person to come back (for an invitation)."""
    held = session.scalars(
        select(Message.id).where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.OUT.value,
            Message.status == OutboundStatus.HELD,
        )
    ).first()
    return held is not None


def _count(
    session: Session,
    clock: Clock,
    account: Account | None,
    contact_point: ContactPoint | None,
    kind: Kind,
    rows: list[Message],
    actor: str,
    message: OutboundMessage,
) -> None:
    record_company_message(
        session,
        clock,
        account,
        contact_point,
        kind,
        message_id=rows[0].id if rows else None,
        actor=actor,
        template=message.template.name if message.template else None,
    )


def _fallback(
    policy: Policy,
    template: TemplateMessage | None,
    channel: str,
    account: Account | None,
    renderers: Mapping[str, Renderer],
    wanted: bool,
) -> dict[str, Any]:
    """The RCS/SMS chain for a template, if WhatsApp cannot deliver it."""
    if template is None or account is None or not wanted:
        return {}
    from bot.channels.fallback import fallback_extra  # channels builds on this door

    return fallback_extra(
        policy,
        template,
        channel=channel,
        debtor_id=account.debtor_id,
        account_id=account.id,
        channels=list(renderers),
    )
