"""Accounts and balances: what a debtor owes and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import Account, AccountStatus, ContactPoint, Debtor, Payment
from bot.domain.phones import normalize_phone


@dataclass(frozen=True)
class BalanceBreakdown:
    """The outstanding balance split as the creditor reports it, after payments.

    Payments are applied to fees first, then interest, then principal.
    """

    principal_cents: int
    interest_cents: int
    fees_cents: int
    paid_cents: int
    calculated_on: date
    due_date: date
    days_past_due: int
    currency: str

    @property
    def total_cents(self) -> int:
        return self.principal_cents + self.interest_cents + self.fees_cents


def days_past_due(due_date: date, today: date) -> int:
    """Days since the due date; 0 while it has not passed."""
    return max(0, (today - due_date).days)


def total_paid_cents(session: Session, account_id: int) -> int:
    paid = session.scalar(
        select(func.coalesce(func.sum(Payment.amount_cents), 0)).where(
            Payment.account_id == account_id
        )
    )
    return int(paid or 0)


def balance_breakdown(session: Session, account: Account, clock: Clock) -> BalanceBreakdown:
    """What the account owes today, by component."""
    paid = total_paid_cents(session, account.id)
    remaining = paid
    parts = []
    for owed in (account.fees_cents, account.interest_cents, account.principal_cents):
        applied = min(owed, remaining)
        remaining -= applied
        parts.append(owed - applied)
    fees, interest, principal = parts
    closed = account.status != AccountStatus.ACTIVE.value
    today = clock.today()
    return BalanceBreakdown(
        principal_cents=0 if closed else principal,
        interest_cents=0 if closed else interest,
        fees_cents=0 if closed else fees,
        paid_cents=paid,
        calculated_on=max(account.amounts_as_of, today) if not closed else today,
        due_date=account.due_date,
        days_past_due=0 if closed else days_past_due(account.due_date, today),
        currency=account.currency,
    )


def find_debtor_by_phone(session: Session, phone: str) -> Debtor | None:
    """The debtor reachable at ``phone`` (any channel); ``+52 1`` and ``+52`` are the same line."""
    e164 = normalize_phone(phone)
    return session.scalars(
        select(Debtor)
        .join(ContactPoint, ContactPoint.debtor_id == Debtor.id)
        .where(ContactPoint.address == e164)
        .limit(1)
    ).first()


def find_accounts_by_phone(session: Session, phone: str) -> list[Account]:
    """Accounts of the debtor reachable at ``phone``, open ones first, largest debt first.

    "Debt" is what is still owed after payments, not what the creditor first reported.
    """
    debtor = find_debtor_by_phone(session, phone)
    if debtor is None:
        return []
    accounts = session.scalars(select(Account).where(Account.debtor_id == debtor.id)).all()
    owed = {
        a.id: a.principal_cents + a.interest_cents + a.fees_cents - total_paid_cents(session, a.id)
        for a in accounts
    }
    return sorted(
        accounts,
        key=lambda a: (a.status != AccountStatus.ACTIVE.value, -owed[a.id]),
    )


_PAID = (
    select(func.coalesce(func.sum(Payment.amount_cents), 0))
    .where(Payment.account_id == Account.id)
    .correlate(Account)
    .scalar_subquery()
)
_OWED = Account.principal_cents + Account.interest_cents + Account.fees_cents - _PAID


# Built once: building it cost more than running it (docs/performance.md, part 6).
_OPEN_ACCOUNT_OF_ADDRESS = (
    select(Account)
    .where(
        Account.debtor_id
        == (
            select(ContactPoint.debtor_id)
            .where(
                ContactPoint.address == bindparam("address"), ContactPoint.debtor_id.is_not(None)
            )
            .limit(1)
            .scalar_subquery()
        )
    )
    .order_by(Account.status != AccountStatus.ACTIVE.value, _OWED.desc(), Account.id)
    .limit(1)
)


def find_account_by_phone(session: Session, phone: str) -> Account | None:
    """The account a chat from ``phone`` is about (the open one with most debt).

    :func:`find_accounts_by_phone`'s first, in one statement: a first contact looks it up
    inside the webhook's store, and that took a query per account (docs/performance.md,
    part 5).
    """
    return session.scalars(_OPEN_ACCOUNT_OF_ADDRESS, {"address": normalize_phone(phone)}).first()


def get_account(session: Session, external_id: str) -> Account | None:
    return session.scalars(select(Account).where(Account.external_id == external_id)).first()
