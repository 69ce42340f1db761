"""Queueing a company-started template through the gate and the outbox.

Reminders, promise follow-ups and an agent starting a chat all go through
:func:`queue_company_template`: it asks :func:`~bot.compliance.gate.decide`, and only on
"send" renders the template with the contact point's channel adapter, queues it in the
outbox and counts it against the weekly cap, in the caller's transaction. The row carries
the channel fallback chain (:func:`bot.channels.fallback.fallback_extra`): if its channel
says the number cannot receive, the same message is queued on the next channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.channels.base import ChannelAdapter, OutboundMessage, TemplateMessage
from bot.clock import Clock
from bot.compliance.gate import Decision, Kind, decide, record_company_message
from bot.compliance.profiles import contact_rules
from bot.compliance.window import debtor_zones, window_end_in
from bot.conversation.outbox import enqueue
from bot.db.models import Account, ContactPoint, Message
from bot.domain.conversations import get_or_create_conversation
from bot.policy import Policy


@dataclass(frozen=True)
class Queued:
    """What happened: the gate's decision and, when it said send, the outbox rows."""

    decision: Decision
    conversation_id: int | None = None
    messages: list[Message] = field(default_factory=list)


def window_end_utc(clock: Clock, policy: Policy, account: Account) -> datetime:
    """When today's contact window closes for this debtor, first among its zones (aware UTC)."""
    zones = debtor_zones(account.debtor, clock)
    end = window_end_in(clock.now(), zones, contact_rules(policy))
    return end.astimezone(clock.now_utc().tzinfo)


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
    """Queue ``template`` to ``contact_point`` if the gate allows it now.

    ``decision`` skips asking the gate again when the caller just did (and recorded it).
    A contact point on a channel without an adapter is suppressed as ``no_adapter``.
    """
    if decision is None:
        decision = decide(session, clock, policy, account, contact_point, kind, actor=actor)
    if not decision.sends or contact_point is None:
        return Queued(decision)
    adapter = adapters.get(contact_point.channel)
    if adapter is None:
        return Queued(Decision.suppress("no_adapter"))
    conversation = get_or_create_conversation(
        session, clock, contact_point.channel, contact_point.address
    )
    from bot.channels.fallback import fallback_extra  # the RCS/SMS chain, if WhatsApp fails

    payload_extra = {
        "company_started": True,
        "kind": kind,
        "account_id": account.id,
        # Not to be sent after the debtor's window closes (for the outbox to honour).
        "send_before": window_end_utc(clock, policy, account).isoformat(),
        **fallback_extra(
            policy,
            template,
            channel=contact_point.channel,
            debtor_id=account.debtor_id,
            account_id=account.id,
            channels=list(adapters),
        ),
        **(extra or {}),
    }
    rows = [
        enqueue(
            session,
            clock,
            conversation_id=conversation.id,
            channel=contact_point.channel,
            rendered=rendered,
            author=author,
            extra=payload_extra,
        )
        for rendered in adapter.render(OutboundMessage(template=template))
    ]
    session.flush()
    record_company_message(
        session,
        clock,
        account,
        contact_point,
        kind,
        message_id=rows[0].id if rows else None,
        actor=actor,
        template=template.name,
    )
    return Queued(decision, conversation.id, rows)
