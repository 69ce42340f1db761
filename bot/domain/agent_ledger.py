"""What an agent may do to the ledger from a conversation they hold: check identity, issue a
payment code, approve a settlement beyond the bot's limit, record a promise.

Each function checks that the agent holds the conversation and that the sender proved who
they are (nothing about the account goes to an unverified sender, whoever types), and
audits under ``agent:<username>``. Composing the debtor's message is the caller's job
(:func:`bot.domain.handoff.send_as_agent`), in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import (
    Account,
    Agreement,
    AgreementStatus,
    ConsoleUser,
    Conversation,
    Offer,
    OfferKind,
    OfferStatus,
    PaymentCode,
    Promise,
)
from bot.domain.accounts import balance_breakdown
from bot.domain.audit import record_audit
from bot.domain.conversations import (
    VerificationEnd,
    VerificationOutcome,
    check_identity,
    end_verification,
    is_verified,
    opt_out,
)
from bot.domain.errors import OfferRejected
from bot.domain.handoff import HandoffError, actor_of, is_supervisor, require_act
from bot.domain.money import format_money
from bot.domain.negotiation import accept_offer, settlement_terms
from bot.domain.promises import record_promise
from bot.payments.provider import PaymentProvider
from bot.payments.reconcile import active_code_for
from bot.policy import Policy


class SettlementNeedsSupervisor(HandoffError):
    """A settlement below the policy floor, asked for by someone who is not a supervisor."""

    def __init__(self, amount_cents: int, floor_cents: int) -> None:
        super().__init__(
            "below_floor_needs_supervisor",
            f"{format_money(amount_cents)} is below the policy floor of "
            f"{format_money(floor_cents)}: offer at least the floor, or ask a supervisor "
            "to approve this settlement",
        )
        self.amount_cents = amount_cents
        self.floor_cents = floor_cents


@dataclass(frozen=True)
class ApprovedSettlement:
    agreement: Agreement
    code: PaymentCode
    below_floor: bool


def _account_of(
    session: Session, clock: Clock, policy: Policy, agent: ConsoleUser, conversation: Conversation
) -> Account:
    """The conversation's account, once the agent holds it and the sender's verification is
    live (it ends like the bot's: idle, hard limit, wrong person, an agent ended it)."""
    require_act(agent, conversation)
    account = session.get(Account, conversation.account_id) if conversation.account_id else None
    if account is None:
        raise HandoffError("no_account", "this number is not linked to any account")
    if not is_verified(conversation, clock, policy):
        raise HandoffError(
            "not_verified", "the sender has not proved who they are: verify their identity first"
        )
    return account


def end_verification_by_agent(
    session: Session, clock: Clock, conversation: Conversation, agent: ConsoleUser
) -> bool:
    """The agent doubts who is writing (a different voice, a name that does not match): the
    verification ends now, audited with the agent's name, and the person answers again."""
    require_act(agent, conversation)
    return end_verification(
        session, clock, conversation, VerificationEnd.AGENT, actor=actor_of(agent)
    )


def record_opt_out_by_agent(
    session: Session, clock: Clock, conversation: Conversation, agent: ConsoleUser
) -> bool:
    """The debtor asked the agent for no more messages (in words the gateway did not read as
    a stop word, or on the phone): recorded as the agent's (True if it is new)."""
    require_act(agent, conversation)
    return opt_out(
        session,
        clock,
        conversation.channel,
        conversation.address,
        conversation_id=conversation.id,
        actor=actor_of(agent),
    )


def check_identity_for_agent(
    session: Session,
    clock: Clock,
    policy: Policy,
    conversation: Conversation,
    agent: ConsoleUser,
    *,
    birth_date: date | None = None,
    last4: str | None = None,
) -> VerificationOutcome:
    """The agent types the debtor's answer; the same rule, counter and lockout as the bot's."""
    require_act(agent, conversation)
    if conversation.account_id is None:
        raise HandoffError("no_account", "this number is not linked to any account")
    if birth_date is None and not last4:
        raise HandoffError("no_answer", "give the birth date or the last 4 digits")
    if policy.identity.mode == "birth_date_then_last4" and (birth_date is None or not last4):
        raise HandoffError(
            "both_answers", "this policy asks for the birth date and the last 4 digits"
        )
    result = check_identity(
        session, clock, policy, conversation, birth_date=birth_date, last4=last4
    )
    record_audit(
        session,
        clock,
        actor=actor_of(agent),
        action="identity_checked_by_agent",
        account_id=conversation.account_id,
        conversation_id=conversation.id,
        outcome=result.outcome.value,
        method="birth_date" if birth_date is not None else "last4",
    )
    return result.outcome


def issue_code_for_agent(
    session: Session,
    clock: Clock,
    policy: Policy,
    provider: PaymentProvider,
    conversation: Conversation,
    agent: ConsoleUser,
    *,
    amount_cents: int,
    method: str,
    agreement: Agreement | None = None,
) -> PaymentCode:
    """Reuse an active code for the same amount and method, or issue a new one.

    Refusals are :class:`~bot.payments.provider.PaymentCodeError` (amount above the
    balance, OXXO limit, ...) or :class:`HandoffError`.
    """
    account = _account_of(session, clock, policy, agent, conversation)
    existing = active_code_for(
        session, clock, account, method, amount_cents, agreement=agreement, provider=provider.name
    )
    if existing is not None:
        return existing
    return provider.issue_code(
        session,
        clock,
        policy,
        account,
        amount_cents=amount_cents,
        method=method,
        agreement=agreement,
        actor=actor_of(agent),
    )


def approve_settlement(
    session: Session,
    clock: Clock,
    policy: Policy,
    provider: PaymentProvider,
    conversation: Conversation,
    agent: ConsoleUser,
    *,
    amount_cents: int,
    deadline: date,
) -> ApprovedSettlement:
    """A settlement the agent agreed with the debtor: an offer and its agreement approved by
    the agent, and a SPEI code for the amount.

    Below the policy floor only a supervisor may approve it (audited ``below_floor``); an
    agent is refused with :class:`SettlementNeedsSupervisor` before anything is recorded.
    """
    account = _account_of(session, clock, policy, agent, conversation)
    balance = balance_breakdown(session, account, clock).total_cents
    if not 0 < amount_cents <= balance:
        raise HandoffError(
            "amount_out_of_range", "the amount must be above 0 and at most the balance"
        )
    today = clock.today()
    horizon = today + timedelta(
        days=max(policy.settlement.offer_validity_days, policy.promises.horizon_days)
    )
    if not today <= deadline <= horizon:
        raise HandoffError(
            "deadline_out_of_range", f"the deadline must fall between {today} and {horizon}"
        )
    active = session.scalars(
        select(Agreement).where(
            Agreement.account_id == account.id,
            Agreement.status == AgreementStatus.ACTIVE.value,
        )
    ).first()
    if active is not None:
        raise HandoffError("agreement_active", f"the account already has agreement {active.id}")
    try:
        floor = settlement_terms(session, clock, policy, account).floor_cents
    except OfferRejected:
        floor = balance
    below_floor = amount_cents < floor
    if below_floor and not is_supervisor(agent):
        raise SettlementNeedsSupervisor(amount_cents, floor)
    previous_round = 0
    for open_offer in session.scalars(
        select(Offer).where(
            Offer.account_id == account.id, Offer.status == OfferStatus.OFFERED.value
        )
    ):
        open_offer.status = OfferStatus.COUNTERED.value
        previous_round = max(previous_round, open_offer.round)
    actor = actor_of(agent)
    offer = Offer(
        account_id=account.id,
        kind=OfferKind.SETTLEMENT.value,
        total_cents=amount_cents,
        floor_cents=floor,
        installments=1,
        installment_cents=amount_cents,
        valid_until=deadline,
        round=previous_round + 1,
        status=OfferStatus.OFFERED.value,
        made_by=actor,
        created_at=clock.now_utc(),
    )
    session.add(offer)
    session.flush()
    record_audit(
        session,
        clock,
        actor=actor,
        action="offer",
        account_id=account.id,
        conversation_id=conversation.id,
        offer_id=offer.id,
        kind=OfferKind.SETTLEMENT.value,
        total_cents=amount_cents,
        floor_cents=floor,
        below_floor=below_floor,
        installments=1,
        round=offer.round,
        valid_until=deadline.isoformat(),
    )
    agreement = accept_offer(
        session, clock, policy, offer, approved_by=actor, conversation_id=conversation.id
    )
    code = provider.issue_code(
        session,
        clock,
        policy,
        account,
        amount_cents=amount_cents,
        method="spei",
        agreement=agreement,
        actor=actor,
    )
    return ApprovedSettlement(agreement=agreement, code=code, below_floor=below_floor)


def record_promise_for_agent(
    session: Session,
    clock: Clock,
    policy: Policy,
    conversation: Conversation,
    agent: ConsoleUser,
    *,
    promised_date: date,
    amount_cents: int,
) -> Promise:
    """A promise the debtor made to the agent; the policy's horizon and minimum apply
    (:class:`~bot.domain.errors.PromiseRejected`)."""
    account = _account_of(session, clock, policy, agent, conversation)
    return record_promise(
        session,
        clock,
        policy,
        account,
        promised_date=promised_date,
        amount_cents=amount_cents,
        made_by=actor_of(agent),
        conversation_id=conversation.id,
    )
