"""From provider events to the ledger: match the code, apply the money once, keep codes current.

Rules:

- An event is applied at most once, keyed on its ``event_id`` (``Payment.provider_event_id``
  is unique, so even two racing deliveries cannot both land: the loser gets an
  ``IntegrityError`` and the caller rolls back and answers as for a duplicate).
- Money received is never dropped: a second, different event for a code that is already
  paid is recorded as another payment (the code stays paid, and the anomaly is audited);
  a payment to an expired or cancelled code is applied too, the code becomes paid, and the
  late payment is audited.
- An event naming no known code raises :class:`UnknownPaymentReference`; nothing is stored,
  so the caller can log it and an agent can match the money by hand.

Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import Account, Agreement, Payment, PaymentCode, PaymentCodeStatus
from bot.domain.audit import record_audit
from bot.domain.errors import DomainError
from bot.domain.payments import AppliedPayment, apply_payment
from bot.payments.provider import PaymentEvent, WebhookRejected
from bot.policy import Policy

_SEPARATORS = re.compile(r"[\s\-]")


class UnknownPaymentReference(DomainError):
    """No payment code of this provider has the event's reference (or CLABE)."""

    def __init__(self, provider: str, reference: str) -> None:
        super().__init__(f"no {provider} payment code has reference {reference!r}")
        self.provider = provider
        self.reference = reference


def find_code_for_event(session: Session, event: PaymentEvent) -> PaymentCode:
    """The code an event pays: by (provider, reference), else by CLABE for SPEI transfers."""
    candidates = [event.reference]
    compact = _SEPARATORS.sub("", event.reference)
    if compact != event.reference:
        candidates.append(compact)  # banks print references in groups: "0121 8000 ..."
    for reference in candidates:
        code = session.scalars(
            select(PaymentCode).where(
                PaymentCode.provider == event.provider, PaymentCode.reference == reference
            )
        ).first()
        if code is None and len(reference) == 18 and reference.isdigit():
            code = session.scalars(
                select(PaymentCode).where(
                    PaymentCode.provider == event.provider, PaymentCode.clabe == reference
                )
            ).first()
        if code is not None:
            return code
    raise UnknownPaymentReference(event.provider, event.reference)


def apply_payment_event(
    session: Session, clock: Clock, policy: Policy, event: PaymentEvent
) -> AppliedPayment | None:
    """Apply a ``paid`` event to its code's account exactly once.

    Returns the applied payment (``created=False`` for a redelivered event), or ``None``
    for non-payment events (``expired``/``canceled`` update the code, ``refunded`` is only
    audited: reversing money is an agent's decision).
    """
    code = find_code_for_event(session, event)
    if event.status != "paid":
        _record_status_event(session, clock, code, event)
        return None
    if event.currency != code.currency:
        raise WebhookRejected(
            "currency_mismatch", f"event in {event.currency}, code {code.id} in {code.currency}"
        )
    account = session.get(Account, code.account_id)
    if account is None:  # foreign keys make this unreachable; keep mypy and readers honest
        raise UnknownPaymentReference(event.provider, event.reference)

    status_before = code.status
    late = status_before in (
        PaymentCodeStatus.EXPIRED.value,
        PaymentCodeStatus.CANCELLED.value,
    ) or (status_before == PaymentCodeStatus.ACTIVE.value and event.paid_at > code.expires_at)
    applied = apply_payment(
        session,
        clock,
        policy,
        account,
        amount_cents=event.amount_cents,
        paid_at=event.paid_at,
        reference=_payment_reference(session, code, event),
        source=f"provider:{event.provider}",
        provider_event_id=event.event_id,
        payment_code=code,
    )
    if not applied.created:
        return applied

    details: dict[str, Any] = {
        "payment_code_id": code.id,
        "payment_id": applied.payment.id,
        "event_id": event.event_id,
        "provider": event.provider,
    }
    actor = f"provider:{event.provider}"
    if status_before == PaymentCodeStatus.PAID.value:
        record_audit(
            session,
            clock,
            actor=actor,
            action="payment_code_paid_again",
            account_id=account.id,
            amount_cents=event.amount_cents,
            **details,
        )
    elif status_before != PaymentCodeStatus.ACTIVE.value:
        code.status = PaymentCodeStatus.PAID.value  # the money came in: the code is paid
        code.paid_at = event.paid_at
    if late:
        record_audit(
            session,
            clock,
            actor=actor,
            action="payment_code_paid_late",
            account_id=account.id,
            status_before=status_before,
            expires_at=code.expires_at.isoformat(),
            paid_at=event.paid_at.isoformat(),
            **details,
        )
    if event.amount_cents != code.amount_cents:
        record_audit(
            session,
            clock,
            actor=actor,
            action="payment_code_amount_differs",
            account_id=account.id,
            expected_cents=code.amount_cents,
            amount_cents=event.amount_cents,
            **details,
        )
    return applied


def _payment_reference(session: Session, code: PaymentCode, event: PaymentEvent) -> str:
    """The ledger reference of this payment: the code's, suffixed for a second payment to it.

    ``Payment`` is unique on (account, reference), and ``apply_payment`` treats a known
    reference as the same money; a different event for a code already paid is new money.
    """
    prior = session.scalars(
        select(Payment).where(
            Payment.account_id == code.account_id, Payment.reference == code.reference
        )
    ).first()
    if (
        prior is None
        or prior.payment_code_id != code.id
        or prior.provider_event_id in (None, event.event_id)
    ):
        # Free; or an imported line of this very deposit (apply_payment keeps one); or a
        # redelivery (apply_payment finds the event id).
        return code.reference
    count = session.scalar(
        select(func.count()).select_from(Payment).where(Payment.payment_code_id == code.id)
    )
    number = int(count or 0) + 1
    while True:
        candidate = f"{code.reference}-{number}"
        taken = session.scalar(
            select(Payment.id).where(
                Payment.account_id == code.account_id, Payment.reference == candidate
            )
        )
        if taken is None:
            return candidate
        number += 1


def _record_status_event(
    session: Session, clock: Clock, code: PaymentCode, event: PaymentEvent
) -> None:
    if code.status == PaymentCodeStatus.ACTIVE.value and event.status in ("expired", "canceled"):
        code.status = (
            PaymentCodeStatus.EXPIRED.value
            if event.status == "expired"
            else PaymentCodeStatus.CANCELLED.value
        )
    record_audit(
        session,
        clock,
        actor=f"provider:{event.provider}",
        action=f"payment_code_{event.status}",
        account_id=code.account_id,
        payment_code_id=code.id,
        event_id=event.event_id,
        code_status=code.status,
    )


def expire_codes(session: Session, clock: Clock) -> int:
    """Mark active codes past their ``expires_at`` as expired; return how many."""
    now = clock.now_utc()
    codes = session.scalars(
        select(PaymentCode).where(
            PaymentCode.status == PaymentCodeStatus.ACTIVE.value, PaymentCode.expires_at <= now
        )
    ).all()
    for code in codes:
        code.status = PaymentCodeStatus.EXPIRED.value
        record_audit(
            session,
            clock,
            actor="system",
            action="payment_code_expired",
            account_id=code.account_id,
            payment_code_id=code.id,
            method=code.method,
            reference=code.reference,
        )
    return len(codes)


def active_code_for(
    session: Session,
    clock: Clock,
    account: Account,
    method: str,
    amount_cents: int,
    *,
    agreement: Agreement | None = None,
    provider: str | None = None,
) -> PaymentCode | None:
    """An unexpired active code for the same account, method, amount and agreement, to reuse
    instead of issuing a duplicate (the newest, if several)."""
    query = select(PaymentCode).where(
        PaymentCode.account_id == account.id,
        PaymentCode.method == method,
        PaymentCode.amount_cents == amount_cents,
        PaymentCode.status == PaymentCodeStatus.ACTIVE.value,
        PaymentCode.expires_at > clock.now_utc(),
        PaymentCode.agreement_id.is_(None)
        if agreement is None
        else PaymentCode.agreement_id == agreement.id,
    )
    if provider is not None:
        query = query.where(PaymentCode.provider == provider)
    return session.scalars(query.order_by(PaymentCode.id.desc()).limit(1)).first()
