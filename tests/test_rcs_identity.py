"""One debtor, two channels: a lockout follows the debtor, a verification stays on its channel."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import Account
from bot.domain.conversations import (
    VerificationOutcome,
    check_identity,
    get_or_create_conversation,
    is_locked,
    is_verified,
)
from bot.policy import Policy

PHONE = "+525512340001"


def test_a_debtor_verified_on_whatsapp_answers_again_on_rcs(
    session: Session, clock: Clock, policy: Policy, make_account: Callable[..., Account]
) -> None:
    account = make_account()
    whatsapp = get_or_create_conversation(session, clock, "whatsapp", PHONE)
    rcs = get_or_create_conversation(session, clock, "rcs", PHONE)
    assert rcs.id != whatsapp.id and rcs.debtor_id == whatsapp.debtor_id == account.debtor_id
    assert not is_verified(rcs, clock, policy)
    result = check_identity(session, clock, policy, whatsapp, birth_date=date(1985, 3, 15))
    assert result.outcome is VerificationOutcome.VERIFIED
    session.commit()
    # Whoever holds the phone's RCS session is not proven to be who answered on WhatsApp.
    assert is_verified(whatsapp, clock, policy) and not is_verified(rcs, clock, policy)
    check_identity(session, clock, policy, rcs, birth_date=date(1985, 3, 15))
    assert is_verified(rcs, clock, policy)


def test_another_debtors_verification_does_not_count(
    session: Session, clock: Clock, policy: Policy, make_account: Callable[..., Account]
) -> None:
    make_account()
    make_account()  # +525512340002, another person
    mine = get_or_create_conversation(session, clock, "whatsapp", PHONE)
    theirs = get_or_create_conversation(session, clock, "rcs", "+525512340002")
    check_identity(session, clock, policy, mine, birth_date=date(1985, 3, 15))
    assert not is_verified(theirs, clock, policy)


def test_an_unknown_number_is_only_its_own_conversation(
    session: Session, clock: Clock, policy: Policy
) -> None:
    stranger = get_or_create_conversation(session, clock, "rcs", "+525599990000")
    assert stranger.debtor_id is None and not is_verified(stranger, clock, policy)


def test_a_lockout_on_one_channel_locks_the_other(
    session: Session, clock: Clock, policy: Policy, make_account: Callable[..., Account]
) -> None:
    make_account()
    whatsapp = get_or_create_conversation(session, clock, "whatsapp", PHONE)
    rcs = get_or_create_conversation(session, clock, "rcs", PHONE)
    for _ in range(policy.identity.max_failures):
        check_identity(session, clock, policy, whatsapp, birth_date=date(1990, 1, 1))
    assert is_locked(whatsapp, clock) and is_locked(rcs, clock)
    again = check_identity(session, clock, policy, rcs, birth_date=date(1985, 3, 15))
    assert again.outcome is VerificationOutcome.LOCKED and not is_verified(rcs, clock, policy)
