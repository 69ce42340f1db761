"""Messages the company starts from an event (a payment came in, an account was paid off),
through the compliance door."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.base import ChannelAdapter, OutboundMessage
from bot.clock import Clock
from bot.compliance.gate import decide
from bot.compliance.outreach import contact_point_of, queue_company_message, renderers_of
from bot.conversation.replies import Replies
from bot.db.models import Account, Conversation
from bot.documents.letters import pdf_filename, pdf_url, verification_url
from bot.domain.accounts import balance_breakdown
from bot.domain.conversations import is_verified
from bot.domain.money import format_money
from bot.domain.settlement_letters import letter_facts, letter_of_account
from bot.policy import Policy
from bot.spanish import spoken_date

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
    paid_at: datetime | None = None,
) -> int:
    """Queue a thank-you on the debtor's most recent conversation about ``account_id``.

    It is company-started, so it goes through the compliance door: refused (and audited)
    for a number that opted out or is a wrong person, a do-not-contact or an open dispute;
    outside contact hours, or over the weekly cap, it is scheduled for when the window
    opens (a payment confirmed at 03:00 is thanked at 07:00). Amounts are named only when
    it goes at once in a conversation whose sender verified their identity. Returns how
    many messages were queued or scheduled.
    """
    account = session.get(Account, account_id)
    if account is None:
        return 0
    conversation = _latest_conversation(session, account, adapters)
    if conversation is None:
        return 0
    contact = contact_point_of(session, clock, conversation)
    decision = decide(
        session, clock, policy, account, contact, "payment_thanks", reference=reference
    )
    if decision.sends and is_verified(conversation, clock, policy):
        paid_on = (paid_at or clock.now_utc()).astimezone(clock.tz).date()
        text = replies.payment_thanks.format(
            amount=format_money(amount_cents),
            reference=reference,
            paid_on=spoken_date(paid_on),
            balance=format_money(balance_breakdown(session, account, clock).total_cents),
        )
    else:  # a later send may find the verification over: no amounts in it
        text = replies.payment_thanks_unverified
    queued = queue_company_message(
        session,
        clock,
        policy,
        renderers_of(adapters),
        account,
        contact,
        OutboundMessage(text=text),
        "payment_thanks",
        conversation=conversation,
        decision=decision,
        extra={"payment_reference": reference},
    )
    if not queued.messages:
        log.info(
            "notices.suppressed", conversation_id=conversation.id, reason=queued.decision.reason
        )
    return len(queued.messages)


def send_settlement_letter(
    session: Session,
    clock: Clock,
    policy: Policy,
    replies: Replies,
    adapters: Mapping[str, ChannelAdapter],
    *,
    account_id: int,
    public_url: str,
) -> int:
    """Queue the account's carta finiquito on the debtor's most recent conversation.

    The same door and rules as :func:`thank_for_payment`. The document (its PDF by link,
    which names the verification code) goes only when it goes at once to a sender who
    verified their identity in that chat; otherwise a text that says nothing of the
    account invites them to verify, and the document comes with their balance
    (``actions/account.py``). Returns how many messages were queued or scheduled.
    """
    account = session.get(Account, account_id)
    letter = letter_of_account(session, account_id) if account is not None else None
    if account is None or letter is None:
        return 0
    conversation = _latest_conversation(session, account, adapters)
    if conversation is None:
        return 0
    contact = contact_point_of(session, clock, conversation)
    decision = decide(
        session, clock, policy, account, contact, "settlement_letter", letter_id=letter.id
    )
    if decision.sends and is_verified(conversation, clock, policy):
        facts = letter_facts(letter)
        code = letter.verification_code
        message = OutboundMessage(
            text=replies.settlement_letter_caption.format(
                product=facts.product,
                last4=facts.account_last4,
                creditor=facts.creditor,
                verify_url=verification_url(public_url, code),
            ),
            document_url=pdf_url(public_url, code),
            document_name=pdf_filename(letter),
        )
    else:
        message = OutboundMessage(text=replies.settlement_letter_unverified)
    queued = queue_company_message(
        session,
        clock,
        policy,
        renderers_of(adapters),
        account,
        contact,
        message,
        "settlement_letter",
        conversation=conversation,
        decision=decision,
        extra={"settlement_letter_id": letter.id},
    )
    if not queued.messages:
        log.info(
            "notices.suppressed", conversation_id=conversation.id, reason=queued.decision.reason
        )
    return len(queued.messages)


def _latest_conversation(
    session: Session, account: Account, adapters: Mapping[str, ChannelAdapter]
) -> Conversation | None:
    """The debtor's conversation they wrote in last, on a channel we can send on."""
    return session.scalars(
        select(Conversation)
        .where(
            Conversation.debtor_id == account.debtor_id,
            Conversation.channel.in_(list(adapters)),
        )
        .order_by(Conversation.last_inbound_at.desc().nulls_last(), Conversation.id.desc())
        .limit(1)
    ).first()
