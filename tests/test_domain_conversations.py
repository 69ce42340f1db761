"""Conversations (CONTRACT 6.1-6.4, 6.7): identity before disclosure, opt-out, wrong
person, dispute and handoff, each in the audit log.

policy.yml: identity.max_failures 3, identity.lockout_hours 24. The test debtor was
born 1985-03-15; the clock is Monday 2026-11-23 noon in Mexico City (18:00 UTC).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.engine import session_factory
from bot.db.models import Account, AuditEntry, ContactPoint, Conversation, ConversationState
from bot.domain.conversations import (
    VerificationOutcome,
    VerificationResult,
    check_identity,
    flag_wrong_number,
    get_or_create_conversation,
    is_locked,
    is_verified,
    open_dispute,
    opt_out,
    request_handoff,
)
from bot.policy import Policy

MakeAccount = Callable[..., Account]
BIRTH_DATE = date(1985, 3, 15)
WRONG_DATE = date(1990, 1, 1)
PHONE = "+525512345678"
UNKNOWN_PHONE = "+525599990000"


def at(moment: str) -> Clock:
    return Clock.from_setting(moment, "America/Mexico_City")


def audit(session: Session, action: str) -> list[AuditEntry]:
    session.flush()
    return list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
    )


@pytest.fixture
def account(make_account: MakeAccount) -> Account:
    return make_account(external_id="TDC-00045678", phone=PHONE, birth_date=BIRTH_DATE)


@pytest.fixture
def conversation(session: Session, clock: Clock, account: Account) -> Conversation:
    # WhatsApp sends Mexican senders in the 521 form.
    return get_or_create_conversation(session, clock, "whatsapp", "5215512345678")


def test_a_conversation_from_the_521_form_is_linked_to_the_account(
    session: Session, clock: Clock, policy: Policy, account: Account, conversation: Conversation
) -> None:
    assert conversation.address == PHONE
    assert conversation.account_id == account.id
    assert conversation.debtor_id == account.debtor_id
    assert conversation.state == ConversationState.BOT.value
    assert not is_verified(conversation, clock, policy)
    assert get_or_create_conversation(session, clock, "whatsapp", PHONE) is conversation


def test_the_right_birth_date_verifies_the_sender(
    session: Session, clock: Clock, policy: Policy, conversation: Conversation
) -> None:
    result = check_identity(session, clock, policy, conversation, birth_date=BIRTH_DATE)

    assert result.outcome is VerificationOutcome.VERIFIED
    assert is_verified(conversation, clock, policy)
    assert conversation.verified_at == clock.now_utc()
    assert len(audit(session, "identity_verified")) == 1


def test_the_last_four_digits_of_the_account_verify_the_sender(
    session: Session, clock: Clock, policy: Policy, conversation: Conversation
) -> None:
    result = check_identity(session, clock, policy, conversation, last4="5678")

    assert result.outcome is VerificationOutcome.VERIFIED


@pytest.mark.parametrize("last4", ["0004", "678", "45678", "", "abcd"])
def test_other_digits_do_not_verify(
    session: Session, clock: Clock, policy: Policy, conversation: Conversation, last4: str
) -> None:
    result = check_identity(session, clock, policy, conversation, last4=last4)

    assert result.outcome is VerificationOutcome.FAILED
    assert not is_verified(conversation, clock, policy)


def test_no_answer_at_all_is_a_failure(
    session: Session, clock: Clock, policy: Policy, conversation: Conversation
) -> None:
    assert (
        check_identity(session, clock, policy, conversation).outcome is VerificationOutcome.FAILED
    )


def wrong_answers(
    session: Session, clock: Clock, policy: Policy, conversation: Conversation, times: int
) -> list[VerificationResult]:
    return [
        check_identity(session, clock, policy, conversation, birth_date=WRONG_DATE)
        for _ in range(times)
    ]


def test_wrong_answers_count_down_then_lock_for_a_day(
    session: Session, clock: Clock, policy: Policy, conversation: Conversation
) -> None:
    results = wrong_answers(session, clock, policy, conversation, 3)

    assert [(r.outcome, r.tries_left) for r in results] == [
        (VerificationOutcome.FAILED, 2),
        (VerificationOutcome.FAILED, 1),
        (VerificationOutcome.LOCKED, 0),
    ]
    assert conversation.locked_until == datetime(2026, 11, 24, 18, 0, tzinfo=timezone.utc)
    assert is_locked(conversation, clock)
    assert [e.details["tries_left"] for e in audit(session, "identity_failed")] == [2, 1]
    (locked,) = audit(session, "identity_locked")
    assert locked.details["locked_until"] == "2026-11-24T18:00:00+00:00"


def test_the_right_answer_is_refused_while_locked(
    session: Session, clock: Clock, policy: Policy, conversation: Conversation
) -> None:
    wrong_answers(session, clock, policy, conversation, 3)

    result = check_identity(session, clock, policy, conversation, birth_date=BIRTH_DATE)

    assert result == VerificationResult(VerificationOutcome.LOCKED, 0)
    assert not is_verified(conversation, clock, policy)


def test_the_lock_holds_until_the_last_minute_of_the_lockout(
    session: Session, clock: Clock, policy: Policy, conversation: Conversation
) -> None:
    wrong_answers(session, clock, policy, conversation, 3)
    almost_a_day_later = at("2026-11-24T11:59:00-06:00")

    result = check_identity(
        session, almost_a_day_later, policy, conversation, birth_date=BIRTH_DATE
    )

    assert result.outcome is VerificationOutcome.LOCKED


def test_the_lock_survives_a_reload_from_the_database(
    session: Session, clock: Clock, policy: Policy, db_url: str, conversation: Conversation
) -> None:
    wrong_answers(session, clock, policy, conversation, 3)
    session.commit()

    with session_factory(db_url)() as fresh:
        reloaded = fresh.get(Conversation, conversation.id)
        assert reloaded is not None
        assert is_locked(reloaded, clock)
        result = check_identity(fresh, clock, policy, reloaded, birth_date=BIRTH_DATE)
        assert result.outcome is VerificationOutcome.LOCKED


def test_the_right_answer_is_accepted_once_the_lock_expires(
    session: Session, clock: Clock, policy: Policy, conversation: Conversation
) -> None:
    wrong_answers(session, clock, policy, conversation, 3)
    a_day_later = at("2026-11-24")  # noon: exactly lockout_hours later

    result = check_identity(session, a_day_later, policy, conversation, birth_date=BIRTH_DATE)

    assert result.outcome is VerificationOutcome.VERIFIED
    assert conversation.verified_at == a_day_later.now_utc()


def test_after_the_lock_expires_the_count_starts_again(
    session: Session, clock: Clock, policy: Policy, conversation: Conversation
) -> None:
    wrong_answers(session, clock, policy, conversation, 3)
    two_days_later = at("2026-11-25")

    results = wrong_answers(session, two_days_later, policy, conversation, 3)

    assert [r.tries_left for r in results] == [2, 1, 0]
    assert results[-1].outcome is VerificationOutcome.LOCKED


def test_a_right_answer_resets_the_failures(
    session: Session, clock: Clock, policy: Policy, conversation: Conversation
) -> None:
    wrong_answers(session, clock, policy, conversation, 2)

    check_identity(session, clock, policy, conversation, birth_date=BIRTH_DATE)

    assert conversation.verification_failures == 0


def test_a_number_with_no_account_never_verifies_and_locks_the_same_way(
    session: Session, clock: Clock, policy: Policy, account: Account, conversation: Conversation
) -> None:
    stranger = get_or_create_conversation(session, clock, "whatsapp", UNKNOWN_PHONE)
    assert stranger.account_id is None

    # The stranger even knows the real debtor's birth date and account digits.
    stranger_results = [
        check_identity(session, clock, policy, stranger, birth_date=BIRTH_DATE),
        check_identity(session, clock, policy, stranger, last4="5678"),
        check_identity(session, clock, policy, stranger, birth_date=BIRTH_DATE),
        check_identity(session, clock, policy, stranger, birth_date=BIRTH_DATE),
    ]
    debtor_results = wrong_answers(session, clock, policy, conversation, 4)

    # Answers are indistinguishable from a real debtor answering wrong.
    assert stranger_results == debtor_results
    assert [r.outcome for r in stranger_results] == [
        VerificationOutcome.FAILED,
        VerificationOutcome.FAILED,
        VerificationOutcome.LOCKED,
        VerificationOutcome.LOCKED,
    ]
    assert not is_verified(stranger, clock, policy)
    assert stranger.locked_until == datetime(2026, 11, 24, 18, 0, tzinfo=timezone.utc)


def test_opt_out_is_recorded_on_the_existing_contact_and_audited(
    session: Session, clock: Clock, account: Account, conversation: Conversation
) -> None:
    opt_out(session, clock, "whatsapp", "5215512345678", conversation_id=conversation.id)

    contacts = session.scalars(select(ContactPoint)).all()
    assert len(contacts) == 1
    assert contacts[0].debtor_id == account.debtor_id
    assert contacts[0].opted_out_at == clock.now_utc()
    (entry,) = audit(session, "opt_out")
    assert entry.conversation_id == conversation.id
    assert entry.details == {"channel": "whatsapp", "contact_point_id": contacts[0].id}


def test_opting_out_twice_keeps_the_first_moment(
    session: Session, clock: Clock, account: Account
) -> None:
    opt_out(session, clock, "whatsapp", PHONE)
    opt_out(session, at("2026-11-30"), "whatsapp", PHONE)

    contact = session.scalars(select(ContactPoint)).one()
    assert contact.opted_out_at == clock.now_utc()


def test_opt_out_is_per_channel(session: Session, clock: Clock, account: Account) -> None:
    opt_out(session, clock, "sms", PHONE)

    whatsapp = session.scalars(select(ContactPoint).where(ContactPoint.channel == "whatsapp")).one()
    sms = session.scalars(select(ContactPoint).where(ContactPoint.channel == "sms")).one()
    assert whatsapp.opted_out_at is None
    assert sms.opted_out_at == clock.now_utc()


def test_an_unknown_number_can_opt_out_too(session: Session, clock: Clock) -> None:
    opt_out(session, clock, "whatsapp", UNKNOWN_PHONE)

    contact = session.scalars(select(ContactPoint)).one()
    assert (contact.address, contact.debtor_id) == (UNKNOWN_PHONE, None)
    assert contact.opted_out_at is not None


def test_a_wrong_number_is_flagged_never_to_be_contacted(
    session: Session, clock: Clock, account: Account, conversation: Conversation
) -> None:
    flag_wrong_number(session, clock, "whatsapp", PHONE, conversation_id=conversation.id)

    contact = session.scalars(select(ContactPoint)).one()
    assert contact.wrong_number_at == clock.now_utc()
    assert contact.do_not_contact_reason == "wrong_person"
    (entry,) = audit(session, "wrong_number")
    assert entry.conversation_id == conversation.id
    # Flagging discloses nothing: the entry names no account.
    assert entry.account_id is None


def test_a_dispute_stops_collection_and_is_audited(
    session: Session, clock: Clock, account: Account, conversation: Conversation
) -> None:
    open_dispute(
        session, clock, account, reason="No reconozco este cargo", conversation_id=conversation.id
    )

    assert account.dispute_open is True
    (entry,) = audit(session, "dispute_opened")
    assert entry.account_id == account.id
    assert entry.details == {"reason": "No reconozco este cargo"}


def test_a_long_dispute_reason_is_kept_to_500_characters(
    session: Session, clock: Clock, account: Account
) -> None:
    open_dispute(session, clock, account, reason="x" * 5000)

    (entry,) = audit(session, "dispute_opened")
    assert len(entry.details["reason"]) == 500


def test_a_handoff_queues_the_chat_with_its_reason_and_priority(
    session: Session, clock: Clock, account: Account, conversation: Conversation
) -> None:
    request_handoff(session, clock, conversation, reason="dispute", priority=2)

    assert conversation.state == ConversationState.QUEUED.value
    assert conversation.handoff_reason == "dispute"
    assert conversation.priority == 2
    assert conversation.updated_at == clock.now_utc()
    (entry,) = audit(session, "handoff_requested")
    assert entry.account_id == account.id
    assert entry.conversation_id == conversation.id
    assert entry.details == {"reason": "dispute", "priority": 2}


@pytest.mark.parametrize("state", [ConversationState.QUEUED, ConversationState.AGENT])
def test_a_chat_already_with_the_agents_is_not_queued_again(
    session: Session,
    clock: Clock,
    conversation: Conversation,
    state: ConversationState,
) -> None:
    request_handoff(session, clock, conversation, reason="request_agent", priority=1)
    conversation.state = state.value

    request_handoff(session, clock, conversation, reason="fallback", priority=0)

    assert conversation.state == state.value
    assert conversation.handoff_reason == "request_agent"
    assert len(audit(session, "handoff_requested")) == 1


def test_every_conversation_action_leaves_exactly_one_audit_entry(
    session: Session, clock: Clock, policy: Policy, account: Account, conversation: Conversation
) -> None:
    session.flush()
    before = session.scalar(select(func.count()).select_from(AuditEntry))

    check_identity(session, clock, policy, conversation, birth_date=BIRTH_DATE)
    opt_out(session, clock, "whatsapp", PHONE)
    flag_wrong_number(session, clock, "whatsapp", PHONE)
    open_dispute(session, clock, account, reason="no es mío")
    request_handoff(session, clock, conversation, reason="dispute")
    session.flush()

    after = session.scalar(select(func.count()).select_from(AuditEntry))
    # Five actions; the wrong-number flag also ends the verification just given (audited).
    assert after == (before or 0) + 6
    assert len(audit(session, "verification_ended")) == 1
