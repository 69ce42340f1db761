"""Company-started messages: the debtor's preferred channel first, the next one when undeliverable.

:func:`bot.channels.company_send.send_company_message` queues a template (a reminder) on
the first usable channel of the chain — the preferred contact point's channel, then
``policy.contact.channel_fallback`` — through the compliance door
(:func:`bot.compliance.outreach.queue_company_message`), and records the rest of the chain
on the outbox row. When the channel later says the message
cannot be delivered (WhatsApp 131026, RBM 404 or TTL expiry, no adapter for the channel),
:meth:`ChannelFallback.on_undeliverable` marks the contact point unreachable and queues the
same message on the next usable channel, in the same transaction. Every hop is audited.
A hop is the one other place that queues a company-started row: the door judged and
counted the message already; the hop skips numbers opted out there and wrong numbers,
keeps the send-before and waits for the contact window to open.

Adding a channel: its adapter module, plus its renderer in :data:`RENDERERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.base import OutboundMessage, RenderedMessage, TemplateMessage
from bot.channels.company_template import (
    company_info,
    template_from,
)
from bot.channels.rcs_render import render_rcs
from bot.channels.sms import render_sms
from bot.channels.whatsapp_render import render_whatsapp
from bot.clock import Clock
from bot.compliance.gate import (
    Decision,
    Verdict,
    account_suppression_reason,
    kind_of,
    record_decision,
)
from bot.compliance.profiles import ComplianceConfigError, contact_rules
from bot.compliance.window import debtor_zones, next_opening_in, window_end_in
from bot.config import Settings
from bot.conversation.claims import scheduling_now
from bot.conversation.outbox import enqueue
from bot.db.models import Account, Channel, ContactPoint, Conversation, Debtor, Message
from bot.domain.audit import record_audit
from bot.domain.conversations import get_or_create_conversation
from bot.domain.phones import mask_phone
from bot.policy import Policy


class Door(Protocol):
    """How the first send of a chain is queued (:mod:`bot.channels.company_send`)."""

    def queue(
        self,
        session: Session,
        clock: Clock,
        channel: str,
        address: str,
        template: TemplateMessage,
        company: dict[str, Any],
        author: str,
    ) -> Queued: ...


if TYPE_CHECKING:
    from bot.compliance.outreach import Queued

log = structlog.get_logger("acuerdo.fallback")

Renderer = Callable[[OutboundMessage], list[RenderedMessage]]
RENDERERS: dict[str, Renderer] = {
    Channel.WHATSAPP.value: render_whatsapp,
    Channel.RCS.value: render_rcs,
    Channel.SMS.value: render_sms,
}
# Payload keys that belong to one outbox row and never travel to its fallback.
_ROW_OWN_KEYS = frozenset({"body", "idempotency_key", "options", "company", "reengagement"})


@dataclass
class CompanySend:
    """What :func:`bot.channels.company_send.send_company_message` did."""

    message: Message | None  # the queued outbox row (its first part), or None
    channel: str | None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (channel, reason)


def enabled_channels(settings: Settings) -> tuple[str, ...]:
    """The channels a gateway with ``settings`` can send on."""
    channels = [Channel.WHATSAPP.value]
    if settings.rcs_enabled or settings.sandbox:
        channels.append(Channel.RCS.value)
    if settings.sms_enabled:
        channels.append(Channel.SMS.value)
    return tuple(channels)


def preferred_contact(session: Session, debtor_id: int) -> ContactPoint | None:
    contacts = session.scalars(
        select(ContactPoint)
        .where(ContactPoint.debtor_id == debtor_id)
        .order_by(ContactPoint.preferred.desc(), ContactPoint.id)
    ).all()
    return contacts[0] if contacts else None


def fallback_chain(
    policy: Policy, preferred: str | None, channels: Collection[str] | None
) -> list[str]:
    """The channels to try, in order: the preferred one, then the policy's order."""
    order = list(policy.contact.channel_fallback)
    if preferred in order:
        order.remove(preferred)
        order.insert(0, preferred)
    return [c for c in order if c in RENDERERS and (channels is None or c in channels)]


def contact_on(session: Session, channel: str, address: str) -> ContactPoint | None:
    """The contact point as the ledger has it now (sessions keep objects past a commit, and
    another process may have marked it opted out or unreachable since it was loaded)."""
    return session.scalars(
        select(ContactPoint)
        .where(ContactPoint.channel == channel, ContactPoint.address == address)
        .execution_options(populate_existing=True)
    ).first()


def is_wrong_number(session: Session, address: str) -> bool:
    return (
        session.scalars(
            select(ContactPoint.id).where(
                ContactPoint.address == address, ContactPoint.wrong_number_at.is_not(None)
            )
        ).first()
        is not None
    )


def _skip_reason(session: Session, channel: str, address: str) -> str | None:
    """Why ``channel`` cannot carry a company message to ``address`` now (None: it can)."""
    contact = contact_on(session, channel, address)
    if contact is None:
        return None
    if contact.opted_out_at is not None:
        return "opted_out"
    if contact.unreachable_at is not None:
        return "unreachable"  # until the person writes to us on that channel (the inbox clears it)
    return None


def window_end_after(policy: Policy, clock: Clock, debtor: Debtor, delay: timedelta) -> datetime:
    """When the contact window that opens after ``delay`` closes again (aware UTC)."""
    zones = debtor_zones(debtor, clock)
    end = window_end_in(clock.now() + delay, zones, contact_rules(policy))
    return end.astimezone(timezone.utc)


def contact_delay(policy: Policy, clock: Clock, debtor: Debtor) -> timedelta:
    """How long until the contact window (the compliance rules) opens for ``debtor``."""
    now = clock.now()
    try:
        opening = next_opening_in(now, debtor_zones(debtor, clock), contact_rules(policy))
    except ComplianceConfigError:
        return timedelta(0)  # the compliance gate reports a policy that leaves no window
    return opening - now if opening is not None else timedelta(0)


def fallback_extra(
    policy: Policy,
    template: TemplateMessage,
    *,
    channel: str,
    debtor_id: int,
    account_id: int | None = None,
    channels: Collection[str] | None = None,
) -> dict[str, Any]:
    """The outbox-row ``extra`` that lets a template queued by other code fall back.

    For callers that pick the contact point and ``enqueue`` themselves (the compliance
    outreach): pass this as (part of) ``extra`` on the row of ``channel``; if that channel
    cannot deliver, the rest of the chain is tried as for :func:`send_company_message`.
    """
    chain = [c for c in fallback_chain(policy, channel, channels) if c != channel]
    info = company_info(template, debtor_id=debtor_id, account_id=account_id)
    return {"company": {**info, "chain": chain, "hop": 0}}


def _queue(
    session: Session,
    clock: Clock,
    *,
    channel: str,
    address: str,
    template: TemplateMessage,
    company: dict[str, Any],
    author: str,
    carried: Mapping[str, Any],
) -> Message | None:
    conversation = get_or_create_conversation(session, clock, channel, address)
    rendered = RENDERERS[channel](OutboundMessage(template=template))
    first: Message | None = None
    for index, item in enumerate(rendered):
        # Only the first part carries the chain, so one failure makes one hop.
        extra = {**carried, "company": company} if index == 0 else dict(carried)
        row = enqueue(
            session,
            clock,
            conversation_id=conversation.id,
            channel=channel,
            rendered=item,
            author=author,
            extra=extra,
        )
        first = first or row
    session.flush()
    return first


def queue_on_chain(
    session: Session,
    clock: Clock,
    *,
    address: str,
    template: TemplateMessage,
    chain: list[str],
    info: Mapping[str, Any],
    hop: int,
    author: str,
    carried: Mapping[str, Any] | None = None,
    door: Door | None = None,
) -> CompanySend:
    result = CompanySend(message=None, channel=None)
    for position, channel in enumerate(chain):
        reason = _skip_reason(session, channel, address)
        if reason is not None:
            result.skipped.append((channel, reason))
            continue
        company = {**info, "chain": chain[position + 1 :], "hop": hop}
        if door is not None:  # the first send: through the compliance door
            queued = door.queue(session, clock, channel, address, template, company, author)
            if queued.decision.verdict == Verdict.SUPPRESS:
                result.skipped.append((channel, queued.decision.reason or "suppressed"))
                return result  # the gate refused the person, not the channel
            row = queued.messages[0] if queued.messages else None
        else:  # a hop: the door judged and counted this message already
            row = _queue(
                session,
                clock,
                channel=channel,
                address=address,
                template=template,
                company=company,
                author=author,
                carried=carried or {},
            )
        if row is None:
            result.skipped.append((channel, "nothing_to_send"))
            continue
        result.message, result.channel = row, channel
        record_audit(
            session,
            clock,
            actor="system",
            action="company_message_queued",
            account_id=info.get("account_id"),
            conversation_id=row.conversation_id,
            channel=channel,
            hop=hop,
            template=template.name,
            message_id=row.id,
            skipped=[list(item) for item in result.skipped],
        )
        return result
    return result


def mark_unreachable(
    session: Session, clock: Clock, conversation: Conversation, reason: str | None
) -> ContactPoint:
    """Record that ``conversation``'s channel cannot deliver to its address."""
    contact = contact_on(session, conversation.channel, conversation.address)
    if contact is None:
        contact = ContactPoint(
            debtor_id=conversation.debtor_id,
            channel=conversation.channel,
            address=conversation.address,
            preferred=False,
            created_at=clock.now_utc(),
        )
        session.add(contact)
    contact.unreachable_at = clock.now_utc()
    contact.unreachable_reason = (reason or "undeliverable")[:64]
    session.flush()
    return contact


class ChannelFallback:
    """The outbox's and inbox's hook for undeliverable messages (runs in their transaction)."""

    def __init__(self, policy: Policy, clock: Clock, channels: Collection[str] | None) -> None:
        self._policy = policy
        self._clock = clock
        self._channels = None if channels is None else frozenset(channels)

    def _refusal(
        self,
        session: Session,
        info: Mapping[str, Any],
        payload: Mapping[str, Any],
        contact: ContactPoint,
        hop: int,
    ) -> str | None:
        """The gate's word on the account before a hop: a dispute, a do-not-contact, a
        paid account since the first send stop it (audited). The door counted the message
        already; the number's own rules are judged per channel on the chain."""
        account = session.get(Account, info["account_id"]) if info.get("account_id") else None
        if account is None:
            return None
        kind = kind_of(payload.get("kind")) or "reminder"
        reason = account_suppression_reason(session, self._clock, account, kind)
        if reason is not None:
            record_decision(
                session, self._clock, Decision.suppress(reason), account, contact, kind, hop=hop
            )
        return reason

    def on_undeliverable(self, session: Session, message: Message) -> None:
        """``message`` (already marked failed) cannot be delivered: mark, then hop on."""
        conversation = session.get(Conversation, message.conversation_id)
        if conversation is None:
            return
        contact = mark_unreachable(session, self._clock, conversation, message.error_code)
        payload = dict(message.payload or {})
        info = payload.get("company")
        if not isinstance(info, dict) or info.get("fell_back_to"):
            log.info(
                "fallback.contact_unreachable",
                channel=conversation.channel,
                to=mask_phone(conversation.address),
                code=message.error_code,
            )
            return
        debtor = session.get(Debtor, info.get("debtor_id")) if info.get("debtor_id") else None
        chain = [
            c for c in info.get("chain") or [] if self._channels is None or c in self._channels
        ]
        hop = int(info.get("hop") or 0) + 1
        details = {
            "from_channel": message.channel,
            "reason": message.error_code or "undeliverable",
            "failed_message_id": message.id,
            "contact_point_id": contact.id,
            "template": info.get("template"),
        }
        result = CompanySend(message=None, channel=None)
        refusal = self._refusal(session, info, payload, contact, hop)
        if refusal is not None:
            result.skipped.append(("*", refusal))
        elif debtor is not None and not is_wrong_number(session, conversation.address):
            # Keys other code put on the row (campaign markers, send-before) travel along.
            carried = {k: v for k, v in payload.items() if k not in _ROW_OWN_KEYS}
            result = queue_on_chain(
                session,
                self._clock,
                address=conversation.address,
                template=template_from(info),
                chain=chain,
                info={k: v for k, v in info.items() if k not in ("chain", "hop")},
                hop=hop,
                author=message.author,
                carried=carried,
            )
        payload["company"] = {**info, "fell_back_to": result.channel or "-"}
        message.payload = payload
        if result.message is None:
            record_audit(
                session,
                self._clock,
                actor="system",
                action="company_message_undeliverable",
                account_id=info.get("account_id"),
                conversation_id=conversation.id,
                skipped=[list(item) for item in result.skipped],
                **details,
            )
            log.warning("fallback.no_channel_left", to=mask_phone(conversation.address), **details)
            return
        delay = contact_delay(self._policy, self._clock, debtor) if debtor else timedelta(0)
        if delay > timedelta(0):  # outside the contact window: the hop waits for its opening
            result.message.next_attempt_at = scheduling_now() + delay
            if debtor is not None and "send_before" in (result.message.payload or {}):
                result.message.payload = {
                    **(result.message.payload or {}),
                    "send_before": window_end_after(
                        self._policy, self._clock, debtor, delay
                    ).isoformat(),
                }
        record_audit(
            session,
            self._clock,
            actor="system",
            action="channel_fallback",
            account_id=info.get("account_id"),
            conversation_id=result.message.conversation_id,
            to_channel=result.channel,
            message_id=result.message.id,
            hop=hop,
            **details,
        )
        log.info(
            "fallback.hop",
            to_channel=result.channel,
            to=mask_phone(conversation.address),
            hop=hop,
            **details,
        )
