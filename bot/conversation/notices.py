"""Messages the company starts from an event (a payment came in), queued in the outbox."""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.base import ChannelAdapter, OutboundMessage
from bot.clock import Clock
from bot.conversation.outbox import enqueue
from bot.conversation.replies import Replies
from bot.db.models import Account, ContactPoint, Conversation
from bot.domain.conversations import is_verified
from bot.domain.money import format_money
from bot.policy import Policy

log = structlog.get_logger("acuerdo.notices")


def thank_for_payment(
    session: Session,
    clock: Clock,
    policy: Policy,
    replies: Replies,
    adapters: Mapping[str, ChannelAdapter],
    *,
    account_id: int,
    amount_cents: int,
    reference: str,
) -> int:
    """Queue a thank-you on the debtor's most recent conversation about ``account_id``.

    Nothing goes to a number that opted out or is flagged as a wrong number; amounts are
    named only in a conversation whose sender verified their identity. Returns how many
    messages were queued.
    """
    account = session.get(Account, account_id)
    if account is None:
        return 0
    conversation = session.scalars(
        select(Conversation)
        .where(
            Conversation.debtor_id == account.debtor_id,
            Conversation.channel.in_(list(adapters)),
        )
        .order_by(Conversation.last_inbound_at.desc().nulls_last(), Conversation.id.desc())
        .limit(1)
    ).first()
    if conversation is None:
        return 0
    contact = session.scalars(
        select(ContactPoint).where(
            ContactPoint.channel == conversation.channel,
            ContactPoint.address == conversation.address,
        )
    ).first()
    if contact is not None and (contact.opted_out_at or contact.wrong_number_at):
        log.info("notices.suppressed", conversation_id=conversation.id, reason="do_not_contact")
        return 0
    if is_verified(conversation, clock, policy):  # a live verification in that conversation
        text = replies.payment_thanks.format(amount=format_money(amount_cents), reference=reference)
    else:
        text = replies.payment_thanks_unverified
    adapter = adapters[conversation.channel]
    rendered = adapter.render(OutboundMessage(text=text))
    for item in rendered:
        enqueue(
            session,
            clock,
            conversation_id=conversation.id,
            channel=conversation.channel,
            rendered=item,
            author="system",
        )
    return len(rendered)
