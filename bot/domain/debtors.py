"""Creating and updating debtors, accounts and their contact points."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import Account, Channel, ContactPoint, Debtor
from bot.domain.phones import normalize_phone


@dataclass(frozen=True)
class AccountData:
    """One portfolio row, already validated (money in centavos, phone in E.164)."""

    external_id: str
    full_name: str
    phone: str
    birth_date: date
    creditor: str
    product: str
    principal_cents: int
    interest_cents: int
    fees_cents: int
    due_date: date
    minimum_payment_cents: int | None = None
    currency: str = "MXN"
    email: str | None = None
    timezone: str | None = None


def upsert_account(session: Session, clock: Clock, data: AccountData) -> tuple[Account, bool]:
    """Create or update an account by its external id; returns (account, created).

    The debtor is found by phone (one person may hold several accounts); the
    phone becomes a WhatsApp contact point of that debtor.
    """
    now = clock.now_utc()
    phone = normalize_phone(data.phone)
    account = session.scalars(
        select(Account).where(Account.external_id == data.external_id)
    ).first()
    contact = session.scalars(
        select(ContactPoint).where(
            ContactPoint.channel == Channel.WHATSAPP.value, ContactPoint.address == phone
        )
    ).first()
    debtor: Debtor | None = None
    if account is not None:
        debtor = account.debtor
    elif contact is not None and contact.debtor is not None:
        debtor = contact.debtor
    if debtor is None:
        debtor = Debtor(
            full_name=data.full_name, birth_date=data.birth_date, created_at=now, updated_at=now
        )
        session.add(debtor)
    debtor.full_name = data.full_name
    debtor.birth_date = data.birth_date
    debtor.email = data.email
    debtor.timezone = data.timezone
    debtor.updated_at = now
    session.flush()
    if contact is None:
        contact = ContactPoint(
            debtor_id=debtor.id,
            channel=Channel.WHATSAPP.value,
            address=phone,
            preferred=True,
            created_at=now,
        )
        session.add(contact)
    elif contact.debtor_id is None:
        contact.debtor_id = debtor.id
    created = account is None
    if account is None:
        account = Account(external_id=data.external_id, debtor_id=debtor.id, created_at=now)
        session.add(account)
    account.debtor_id = debtor.id
    account.creditor = data.creditor
    account.product = data.product
    account.principal_cents = data.principal_cents
    account.interest_cents = data.interest_cents
    account.fees_cents = data.fees_cents
    account.minimum_payment_cents = data.minimum_payment_cents
    account.currency = data.currency
    account.due_date = data.due_date
    account.amounts_as_of = clock.today()
    account.updated_at = now
    session.flush()
    return account, created
