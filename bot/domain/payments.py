"""Applying payments: once each, then settling the promises and agreements they satisfy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import (
    Account,
    AccountStatus,
    Agreement,
    AgreementStatus,
    Installment,
    OfferKind,
    Payment,
    PaymentCode,
    PaymentCodeStatus,
    SettlementLetter,
)
from bot.domain.accounts import balance_breakdown
from bot.domain.audit import record_audit
from bot.domain.errors import DomainError
from bot.domain.promises import mark_kept_promises
from bot.domain.settlement_letters import issue_if_paid_off
from bot.policy import Policy


@dataclass(frozen=True)
class AppliedPayment:
    payment: Payment
    created: bool  # False when this payment had already been applied
    letter: SettlementLetter | None = None  # the carta finiquito this payment's payoff issued


def apply_payment(
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    *,
    amount_cents: int,
    paid_at: datetime,
    reference: str,
    source: str,
    provider_event_id: str | None = None,
    payment_code: PaymentCode | None = None,
) -> AppliedPayment:
    """Apply a payment exactly once (by provider event id, else by account + reference).

    Everything below reads current values (what is already applied, what each installment
    still owes, whether the account is now paid) and writes from them, so concurrent
    payments to one account (a webhook and a CSV import, two gateways) are serialized: the
    account row is locked first (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has one
    writer at a time) and what this session had loaded is re-read under the lock.

    The payment that closes the account (paid in full, or a settlement completed) issues
    its carta finiquito (:mod:`bot.domain.settlement_letters`), once per account.
    """
    if amount_cents <= 0:
        raise DomainError("a payment must be a positive amount")
    _lock_account(session, account)
    status_before = account.status
    if provider_event_id is not None:
        existing = session.scalars(
            select(Payment).where(Payment.provider_event_id == provider_event_id)
        ).first()
        if existing is not None:
            return AppliedPayment(existing, created=False)
    existing = session.scalars(
        select(Payment).where(Payment.account_id == account.id, Payment.reference == reference)
    ).first()
    if existing is not None:
        return AppliedPayment(existing, created=False)

    payment = Payment(
        account_id=account.id,
        amount_cents=amount_cents,
        paid_at=paid_at,
        reference=reference,
        source=source,
        provider_event_id=provider_event_id,
        payment_code_id=payment_code.id if payment_code else None,
        created_at=clock.now_utc(),
    )
    session.add(payment)
    session.flush()
    if payment_code is not None and payment_code.status == PaymentCodeStatus.ACTIVE.value:
        payment_code.status = PaymentCodeStatus.PAID.value
        payment_code.paid_at = paid_at
    record_audit(
        session,
        clock,
        actor=source,
        action="payment_applied",
        account_id=account.id,
        payment_id=payment.id,
        amount_cents=amount_cents,
        reference=reference,
    )
    mark_kept_promises(session, clock, policy, account.id)
    _advance_agreements(session, clock, account, amount_cents)
    if account.status == AccountStatus.ACTIVE.value and (
        balance_breakdown(session, account, clock).total_cents == 0
    ):
        account.status = AccountStatus.PAID.value
        record_audit(session, clock, actor="system", action="account_paid", account_id=account.id)
    letter = issue_if_paid_off(session, clock, account, status_before=status_before)
    return AppliedPayment(payment, created=True, letter=letter)


def _lock_account(session: Session, account: Account) -> None:
    """Lock the account's row until the transaction ends and refresh ``account`` from it.

    Pending changes are flushed first (autoflush), so nothing the caller set is lost;
    ``populate_existing`` replaces what this session read before another transaction
    committed its payment.
    """
    session.scalars(
        select(Account)
        .where(Account.id == account.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _advance_agreements(
    session: Session, clock: Clock, account: Account, amount_cents: int
) -> None:
    """Allocate a payment to the open agreement's installments, oldest first.

    The allocation is computed from what each installment has been paid, so the agreements
    and installments are read fresh and locked (the account lock already serializes
    payments; these locks also hold off any other writer of the plan).
    """
    agreements = session.scalars(
        select(Agreement)
        .where(Agreement.account_id == account.id, Agreement.status == AgreementStatus.ACTIVE.value)
        .order_by(Agreement.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    if agreements:
        session.scalars(
            select(Installment)
            .where(Installment.agreement_id.in_([a.id for a in agreements]))
            .order_by(Installment.agreement_id, Installment.number)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).all()
    remaining = amount_cents
    for agreement in agreements:
        for installment in agreement.installments:
            if remaining <= 0:
                break
            due = installment.amount_cents - installment.paid_cents
            applied = min(due, remaining)
            installment.paid_cents += applied
            remaining -= applied
        if all(i.paid_cents >= i.amount_cents for i in agreement.installments):
            agreement.status = AgreementStatus.COMPLETED.value
            agreement.completed_at = clock.now_utc()
            record_audit(
                session,
                clock,
                actor="system",
                action="agreement_completed",
                account_id=account.id,
                agreement_id=agreement.id,
            )
            if agreement.kind == OfferKind.SETTLEMENT.value:
                account.status = AccountStatus.SETTLED.value
        if remaining <= 0:
            break


def find_payment_near(
    session: Session,
    account_id: int,
    amount_cents: int,
    on: date,
    clock: Clock,
    *,
    days: int = 3,
    tolerance_cents: int = 100,
) -> Payment | None:
    """A payment of about ``amount_cents`` within ``days`` of ``on`` (what a debtor reports)."""
    start = datetime.combine(on - timedelta(days=days), time(0), tzinfo=clock.tz)
    end = datetime.combine(on + timedelta(days=days + 1), time(0), tzinfo=clock.tz)
    candidates = session.scalars(
        select(Payment).where(
            Payment.account_id == account_id, Payment.paid_at >= start, Payment.paid_at < end
        )
    ).all()
    for payment in candidates:
        if abs(payment.amount_cents - amount_cents) <= tolerance_cents:
            return payment
    return None
