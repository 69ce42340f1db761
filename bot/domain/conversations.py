"""Conversations with debtors: identity verification, opt-outs, wrong numbers, disputes.

A conversation is keyed by (channel, address); verification state lives here so
that a lockout survives restarts and new chat sessions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, object_session

from bot.clock import Clock
from bot.db.models import Account, ContactPoint, Conversation, ConversationState
from bot.domain.accounts import find_account_by_phone
from bot.domain.audit import record_audit
from bot.domain.phones import normalize_phone
from bot.policy import Policy

# Every stored message looks its conversation up: a statement built once.
_CONVERSATION_AT = select(Conversation).where(
    Conversation.channel == bindparam("channel"), Conversation.address == bindparam("address")
)


def get_or_create_conversation(
    session: Session, clock: Clock, channel: str, address: str
) -> Conversation:
    """The conversation with ``address`` on ``channel``, created (and linked) on first contact."""
    e164 = normalize_phone(address)
    conversation = session.scalars(_CONVERSATION_AT, {"channel": channel, "address": e164}).first()
    if conversation is not None:
        return conversation
    now = clock.now_utc()
    account = find_account_by_phone(session, e164)
    conversation = Conversation(
        channel=channel,
        address=e164,
        debtor_id=account.debtor_id if account else None,
        account_id=account.id if account else None,
        state=ConversationState.BOT.value,
        verification_failures=0,
        priority=0,
        created_at=now,
        updated_at=now,
    )
    session.add(conversation)
    session.flush()
    return conversation


class VerificationOutcome(enum.Enum):
    VERIFIED = "verified"
    FAILED = "failed"  # wrong answer, tries left
    LOCKED = "locked"  # too many failures: locked for policy.identity.lockout_hours
    # birth_date_then_last4: the birth date is right, the last 4 digits are still to come
    NEEDS_LAST4 = "needs_last4"


@dataclass(frozen=True)
class VerificationResult:
    outcome: VerificationOutcome
    tries_left: int


def _same_debtor(conversation: Conversation) -> list[Conversation]:
    """The debtor's conversations on every channel (just this one for an unknown number)."""
    session = object_session(conversation)
    if session is None or conversation.debtor_id is None:
        return [conversation]
    others = session.scalars(
        select(Conversation).where(
            Conversation.debtor_id == conversation.debtor_id, Conversation.id != conversation.id
        )
    ).all()
    return [conversation, *others]


def is_locked(conversation: Conversation, clock: Clock) -> bool:
    """Verification is locked on any of the debtor's channels (switching channels is no
    way around a lockout)."""
    now = clock.now_utc()
    return any(
        c.locked_until is not None and c.locked_until > now for c in _same_debtor(conversation)
    )


def verified_until(conversation: Conversation, policy: Policy) -> datetime | None:
    """When this conversation's verification ends, if it has one (it may already be over).

    A verification belongs to one conversation on one channel. It lasts while the person
    keeps writing (``identity.verification_idle_minutes`` since their last message) and never
    longer than ``identity.verification_max_hours`` after it was given.
    """
    if conversation.verified_at is None:
        return None
    terms = policy.identity
    hard_limit = conversation.verified_at + timedelta(hours=terms.verification_max_hours)
    last_seen = conversation.verified_at
    if conversation.last_inbound_at is not None and conversation.last_inbound_at > last_seen:
        last_seen = conversation.last_inbound_at
    idle_limit = last_seen + timedelta(minutes=terms.verification_idle_minutes)
    return min(hard_limit, idle_limit)


def is_verified(conversation: Conversation, clock: Clock, policy: Policy) -> bool:
    """The sender proved who they are in this conversation, and that proof is still live.

    Every disclosure (bot, console, notices) asks this. It never borrows a verification from
    another channel: the same phone on RCS answers again, and a number recycled months later
    starts from nothing.
    """
    until = verified_until(conversation, policy)
    return until is not None and clock.now_utc() < until


class VerificationEnd(str, enum.Enum):
    EXPIRED = "expired"  # idle too long, or past the hard limit (found when the person writes)
    WRONG_PERSON = "wrong_person"  # "no soy esa persona"
    NUMBER_CHANGED = "number_changed"  # WhatsApp's user_changed_number system message
    AGENT = "agent"  # an agent ended it from the console


def end_verification(
    session: Session,
    clock: Clock,
    conversation: Conversation,
    reason: VerificationEnd,
    *,
    actor: str = "bot",
) -> bool:
    """End the conversation's verification (True if there was one, live or not)."""
    if conversation.verified_at is None:
        return False
    conversation.verified_at = None
    conversation.updated_at = clock.now_utc()
    record_audit(
        session,
        clock,
        actor=actor,
        action="verification_ended",
        account_id=conversation.account_id,
        conversation_id=conversation.id,
        reason=reason.value,
    )
    return True


def expire_idle_verification(
    session: Session, clock: Clock, policy: Policy, conversation: Conversation
) -> bool:
    """Called as a new message arrives, before it counts as activity: a verification that
    ran out while the person was away stays over (True if it ended one)."""
    if conversation.verified_at is None or is_verified(conversation, clock, policy):
        return False
    return end_verification(session, clock, conversation, VerificationEnd.EXPIRED)


def check_identity(
    session: Session,
    clock: Clock,
    policy: Policy,
    conversation: Conversation,
    *,
    birth_date: date | None = None,
    last4: str | None = None,
) -> VerificationResult:
    """Check a knowledge answer: the birth date or the last 4 digits of the account, or with
    ``identity.mode: birth_date_then_last4`` both (a right birth date alone is
    :attr:`VerificationOutcome.NEEDS_LAST4`; a wrong one counts as a failure)."""
    max_failures = policy.identity.max_failures
    both_needed = policy.identity.mode == "birth_date_then_last4"
    if is_locked(conversation, clock):
        return VerificationResult(VerificationOutcome.LOCKED, 0)
    if conversation.locked_until is not None:  # a past lockout: start counting again
        conversation.locked_until = None
        conversation.verification_failures = 0
    # A number that matches no account fails like a wrong answer: the reply must not
    # reveal whether a debt exists.
    account = session.get(Account, conversation.account_id) if conversation.account_id else None
    digits = "".join(ch for ch in account.external_id if ch.isdigit()) if account else ""
    born_right = (
        account is not None and birth_date is not None and birth_date == account.debtor.birth_date
    )
    digits_right = last4 is not None and len(last4) == 4 and digits.endswith(last4)
    if both_needed and born_right and last4 is None:
        return VerificationResult(
            VerificationOutcome.NEEDS_LAST4, max_failures - conversation.verification_failures
        )
    correct = account is not None and (
        (born_right and digits_right) if both_needed else (born_right or digits_right)
    )
    account_id = account.id if account else None
    now = clock.now_utc()
    if correct:
        conversation.verified_at = now
        conversation.verification_failures = 0
        record_audit(
            session,
            clock,
            actor="bot",
            action="identity_verified",
            account_id=account_id,
            conversation_id=conversation.id,
        )
        return VerificationResult(VerificationOutcome.VERIFIED, max_failures)
    conversation.verification_failures += 1
    tries_left = max_failures - conversation.verification_failures
    if tries_left <= 0:
        conversation.locked_until = now + timedelta(hours=policy.identity.lockout_hours)
        record_audit(
            session,
            clock,
            actor="bot",
            action="identity_locked",
            account_id=account_id,
            conversation_id=conversation.id,
            locked_until=conversation.locked_until.isoformat(),
        )
        return VerificationResult(VerificationOutcome.LOCKED, 0)
    record_audit(
        session,
        clock,
        actor="bot",
        action="identity_failed",
        account_id=account_id,
        conversation_id=conversation.id,
        tries_left=tries_left,
    )
    return VerificationResult(VerificationOutcome.FAILED, tries_left)


def _contact_point(session: Session, clock: Clock, channel: str, address: str) -> ContactPoint:
    e164 = normalize_phone(address)
    contact = session.scalars(
        select(ContactPoint).where(ContactPoint.channel == channel, ContactPoint.address == e164)
    ).first()
    if contact is None:
        contact = ContactPoint(channel=channel, address=e164, created_at=clock.now_utc())
        session.add(contact)
        session.flush()
    return contact


def opt_out(
    session: Session,
    clock: Clock,
    channel: str,
    address: str,
    *,
    conversation_id: int | None = None,
    actor: str = "debtor",
) -> bool:
    """No company-started message goes to this number on this channel from now on (True if
    this call recorded it; ``actor`` is ``agent:<name>`` when an agent records the request)."""
    contact = _contact_point(session, clock, channel, address)
    if contact.opted_out_at is not None:
        return False  # already recorded (the gateway's stop word, then Rasa's opt_out intent)
    contact.opted_out_at = clock.now_utc()
    record_audit(
        session,
        clock,
        actor=actor,
        action="opt_out",
        conversation_id=conversation_id,
        channel=channel,
        contact_point_id=contact.id,
    )
    return True


def flag_wrong_number(
    session: Session,
    clock: Clock,
    channel: str,
    address: str,
    *,
    conversation_id: int | None = None,
) -> None:
    """The person at this number is not the debtor: never contact it again, and whatever
    verification the conversation had is over."""
    contact = _contact_point(session, clock, channel, address)
    conversation = session.scalars(
        select(Conversation).where(
            Conversation.channel == channel, Conversation.address == contact.address
        )
    ).first()
    if conversation is not None:
        end_verification(session, clock, conversation, VerificationEnd.WRONG_PERSON)
    contact.wrong_number_at = clock.now_utc()
    contact.do_not_contact_reason = "wrong_person"
    record_audit(
        session,
        clock,
        actor="debtor",
        action="wrong_number",
        conversation_id=conversation_id,
        channel=channel,
        contact_point_id=contact.id,
    )


def open_dispute(
    session: Session,
    clock: Clock,
    account: Account,
    *,
    reason: str,
    conversation_id: int | None = None,
) -> None:
    """Record a dispute: collection messages on the account stop until it is resolved."""
    account.dispute_open = True
    record_audit(
        session,
        clock,
        actor="debtor",
        action="dispute_opened",
        account_id=account.id,
        conversation_id=conversation_id,
        reason=reason[:500],
    )


def request_handoff(
    session: Session, clock: Clock, conversation: Conversation, *, reason: str, priority: int = 0
) -> None:
    """Queue the conversation for a human agent with its reason and priority."""
    if conversation.state in (ConversationState.QUEUED.value, ConversationState.AGENT.value):
        return
    conversation.state = ConversationState.QUEUED.value
    conversation.handoff_reason = reason
    conversation.priority = priority
    conversation.queued_at = clock.now_utc()
    conversation.updated_at = clock.now_utc()
    record_audit(
        session,
        clock,
        actor="bot",
        action="handoff_requested",
        account_id=conversation.account_id,
        conversation_id=conversation.id,
        reason=reason,
        priority=priority,
    )
