"""The carta finiquito (constancia de liquidación): issued once when an account is paid off.

:func:`issue_if_paid_off` is called by :func:`bot.domain.payments.apply_payment`, the one
place every payment goes through (provider webhooks, CSV imports, the demo), under the
account's row lock. A letter is issued only by the payment that closes the account (its
status goes from active to paid or settled), and ``settlement_letters.account_id`` is
unique: a second payment after payoff, or a redelivered webhook, never issues another.

What the letter says is frozen in ``details`` at issuance (names, the masked account, the
payments, the agreement), so the verification page and the document agree with each other
and with what was issued, whatever the ledger says later. Rendering the document is not
the domain's business (``bot/documents/``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import (
    Account,
    AccountStatus,
    Agreement,
    AgreementStatus,
    LetterKind,
    OfferKind,
    Payment,
    PaymentCode,
    SettlementLetter,
)
from bot.domain.audit import record_audit
from bot.domain.payment_references import shown_reference

# Crockford's base32: no I, L, O or U, so a code read aloud or retyped is not mistaken.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 16  # 80 random bits: not guessable, and short enough to type
GROUP = 4
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
# Looked up instead of a malformed code: never a stored code (not in the alphabet), and the
# same query, so a malformed code is answered like an unknown one, in about the same time.
_NO_CODE = "#" * CODE_LENGTH


@dataclass(frozen=True)
class LetterPayment:
    paid_on: date  # the debtor's local date
    amount_cents: int
    reference: str  # what the debtor paid with (a CLABE, a voucher number, a reference)


@dataclass(frozen=True)
class LetterFacts:
    """What a letter says, as plain values (for the page, the document and the console)."""

    code: str  # grouped for people: ``7K3D-9QXA-M2PB-4HTR``
    kind: str  # LetterKind
    creditor: str
    product: str
    debtor_name: str
    account_last4: str
    currency: str
    payments: tuple[LetterPayment, ...]
    total_paid_cents: int
    paid_off_on: date
    issued_on: date
    agreement_total_cents: int | None = None  # settlement: what the creditor accepted
    original_balance_cents: int | None = None  # settlement: what was owed


def new_verification_code() -> str:
    """16 random Crockford base32 characters (stored without separators)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def grouped_code(code: str) -> str:
    """``7K3D9QXAM2PB4HTR`` → ``7K3D-9QXA-M2PB-4HTR``."""
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def normalize_code(text: str) -> str | None:
    """A typed code as stored (case, dashes and spaces ignored; O read as 0, I and L as 1),
    or None when it cannot be one."""
    compact = "".join(text.split()).replace("-", "").upper().translate(_READ_AS)
    if len(compact) != CODE_LENGTH or any(ch not in ALPHABET for ch in compact):
        return None
    return compact


def account_last4(account: Account) -> str:
    """The last 4 digits of the account number: all a letter or a page ever shows of it."""
    digits = "".join(ch for ch in account.external_id if ch.isdigit())
    return digits[-4:] or account.external_id[-4:]


def find_letter_by_code(session: Session, text: str) -> SettlementLetter | None:
    """The letter a typed code names, or None (unknown and malformed codes alike)."""
    code = normalize_code(text[:64]) or _NO_CODE
    return session.scalars(
        select(SettlementLetter).where(SettlementLetter.verification_code == code)
    ).first()


def letter_of_account(session: Session, account_id: int) -> SettlementLetter | None:
    return session.scalars(
        select(SettlementLetter).where(SettlementLetter.account_id == account_id)
    ).first()


def issue_if_paid_off(
    session: Session, clock: Clock, account: Account, *, status_before: str
) -> SettlementLetter | None:
    """Issue the account's letter if this payment closed it; None when it did not, or when
    the account already has one. The caller holds the account's row lock."""
    closed = (AccountStatus.PAID.value, AccountStatus.SETTLED.value)
    if status_before != AccountStatus.ACTIVE.value or account.status not in closed:
        return None
    if letter_of_account(session, account.id) is not None:
        return None
    payments = list(
        session.scalars(
            select(Payment)
            .where(Payment.account_id == account.id)
            .order_by(Payment.paid_at, Payment.id)
        )
    )
    if not payments:  # closed without money (an import of a zero balance): nothing to state
        return None
    kind = (
        LetterKind.SETTLEMENT.value
        if account.status == AccountStatus.SETTLED.value
        else LetterKind.PAID_IN_FULL.value
    )
    paid_off_at = max(payment.paid_at for payment in payments)
    details = _details(session, clock, account, payments, kind)
    letter = SettlementLetter(
        account_id=account.id,
        kind=kind,
        verification_code=_unused_code(session),
        total_paid_cents=sum(payment.amount_cents for payment in payments),
        paid_off_at=paid_off_at,
        issued_at=clock.now_utc(),
        details=details,
    )
    session.add(letter)
    session.flush()
    record_audit(
        session,
        clock,
        actor="system",
        action="settlement_letter_issued",
        account_id=account.id,
        letter_id=letter.id,
        kind=kind,
        total_paid_cents=letter.total_paid_cents,
    )
    return letter


def letter_facts(letter: SettlementLetter) -> LetterFacts:
    """The frozen details of ``letter`` as plain values."""
    details: dict[str, Any] = letter.details
    agreement = details.get("agreement") or {}
    return LetterFacts(
        code=grouped_code(letter.verification_code),
        kind=letter.kind,
        creditor=str(details["creditor"]),
        product=str(details["product"]),
        debtor_name=str(details["debtor_name"]),
        account_last4=str(details["account_last4"]),
        currency=str(details.get("currency") or "MXN"),
        payments=tuple(
            LetterPayment(
                date.fromisoformat(item["paid_on"]), int(item["amount_cents"]), item["reference"]
            )
            for item in details.get("payments", [])
        ),
        total_paid_cents=letter.total_paid_cents,
        paid_off_on=date.fromisoformat(details["paid_off_on"]),
        issued_on=date.fromisoformat(details["issued_on"]),
        agreement_total_cents=agreement.get("total_cents"),
        original_balance_cents=agreement.get("original_balance_cents"),
    )


def _details(
    session: Session, clock: Clock, account: Account, payments: list[Payment], kind: str
) -> dict[str, Any]:
    def local_day(moment: datetime) -> str:
        return moment.astimezone(clock.tz).date().isoformat()

    codes = {
        code.id: code
        for code in session.scalars(
            select(PaymentCode).where(
                PaymentCode.id.in_({p.payment_code_id for p in payments if p.payment_code_id})
            )
        )
    }
    details: dict[str, Any] = {
        "creditor": account.creditor,
        "product": account.product,
        "debtor_name": account.debtor.full_name,
        "account_last4": account_last4(account),
        "currency": account.currency,
        "payments": [
            {
                "paid_on": local_day(payment.paid_at),
                "amount_cents": payment.amount_cents,
                "reference": _shown_reference(payment, codes.get(payment.payment_code_id or 0)),
            }
            for payment in payments
        ],
        "paid_off_on": local_day(max(payment.paid_at for payment in payments)),
        "issued_on": clock.today().isoformat(),
    }
    if kind == LetterKind.SETTLEMENT.value:
        agreement = session.scalars(
            select(Agreement)
            .where(
                Agreement.account_id == account.id,
                Agreement.kind == OfferKind.SETTLEMENT.value,
                Agreement.status == AgreementStatus.COMPLETED.value,
            )
            .order_by(Agreement.id.desc())
            .limit(1)
        ).first()
        if agreement is not None:
            details["agreement"] = {
                "id": agreement.id,
                "total_cents": agreement.total_cents,
                "original_balance_cents": (
                    account.principal_cents + account.interest_cents + account.fees_cents
                ),
            }
    return details


def _shown_reference(payment: Payment, code: PaymentCode | None) -> str:
    """What the debtor paid with: the code's reference for people, else the payment's."""
    return shown_reference(code) if code is not None else payment.reference


def _unused_code(session: Session) -> str:
    while True:  # a collision in 80 random bits is not expected; the unique key is the guard
        code = new_verification_code()
        taken = session.scalar(
            select(SettlementLetter.id).where(SettlementLetter.verification_code == code)
        )
        if taken is None:
            return code
