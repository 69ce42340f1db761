"""Payment webhooks of the ``local`` provider: signatures, strict bodies, applying money once."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import (
    Account,
    AccountStatus,
    AgreementStatus,
    AuditEntry,
    Payment,
    PaymentCode,
    PaymentCodeStatus,
)
from bot.domain.accounts import balance_breakdown
from bot.domain.negotiation import accept_offer, offer_settlement
from bot.payments.local import LocalPaymentProvider, local_webhook_body, sign_local_webhook
from bot.payments.provider import PaymentEvent, WebhookRejected
from bot.payments.reconcile import UnknownPaymentReference, apply_payment_event, expire_codes
from bot.policy import Policy

WEBHOOK_SECRET = "test-webhook-secret"


@pytest.fixture
def provider() -> LocalPaymentProvider:
    return LocalPaymentProvider(webhook_secret=WEBHOOK_SECRET, link_secret="test-link-secret")


@pytest.fixture
def account(make_account: Callable[..., Account]) -> Account:
    return make_account()  # owes $12,000.00, 30 days past due


@pytest.fixture
def issue(
    provider: LocalPaymentProvider, session: Session, clock: Clock, policy: Policy
) -> Callable[..., PaymentCode]:
    def _issue(
        account: Account, method: str = "spei", amount_cents: int = 250_000, **kw: Any
    ) -> PaymentCode:
        code = provider.issue_code(
            session, clock, policy, account, amount_cents=amount_cents, method=method, **kw
        )
        session.commit()
        return code

    return _issue


def _delivery(
    provider: LocalPaymentProvider, body: bytes, secret: str = WEBHOOK_SECRET
) -> list[PaymentEvent]:
    """What the webhook route does: verify the signature over the raw body, then parse."""
    headers = {"X-Acuerdo-Signature": sign_local_webhook(secret, body)}
    if not provider.verify_webhook(headers, body):
        raise WebhookRejected("bad_signature")
    return provider.parse_webhook(body)


def _body(code: PaymentCode, clock: Clock, event_id: str = "evt-1", **over: Any) -> bytes:
    """A ``local`` webhook body paying ``code`` in full now, with ``over`` replacing fields."""
    fields: dict[str, Any] = {
        "event_id": event_id,
        "reference": code.reference,
        "amount_cents": code.amount_cents,
        "paid_at": clock.now_utc(),
    }
    fields.update(over)
    return local_webhook_body(**fields)


def test_a_signed_payment_applies_once_and_reduces_the_balance(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    issue: Callable[..., PaymentCode],
) -> None:
    code = issue(account, "spei", 250_000)
    (event,) = _delivery(provider, _body(code, clock))

    applied = apply_payment_event(session, clock, policy, event)
    session.commit()

    assert applied is not None and applied.created
    assert applied.payment.amount_cents == 250_000
    assert applied.payment.source == "provider:local"
    assert applied.payment.provider_event_id == "evt-1"
    assert applied.payment.payment_code_id == code.id
    assert code.status == PaymentCodeStatus.PAID.value
    assert code.paid_at == clock.now_utc()
    assert balance_breakdown(session, account, clock).total_cents == 1_200_000 - 250_000


def test_the_same_event_delivered_twice_is_applied_once(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    issue: Callable[..., PaymentCode],
) -> None:
    code = issue(account, "oxxo", 250_000)
    body = _body(code, clock, event_id="evt-dup")

    first = apply_payment_event(session, clock, policy, _delivery(provider, body)[0])
    session.commit()
    second = apply_payment_event(session, clock, policy, _delivery(provider, body)[0])
    session.commit()

    assert first is not None and first.created
    assert second is not None and not second.created
    assert second.payment.id == first.payment.id
    assert len(session.scalars(select(Payment)).all()) == 1
    assert balance_breakdown(session, account, clock).total_cents == 1_200_000 - 250_000


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Acuerdo-Signature": ""},
        {"X-Acuerdo-Signature": "sha256=" + "0" * 64},
        {"X-Acuerdo-Signature": sign_local_webhook("another-secret", b"{}")},
        {"X-Acuerdo-Signature": sign_local_webhook(WEBHOOK_SECRET, b"{}").replace("sha256", "md5")},
        {"X-Acuerdo-Signature": "sha256=ñ"},
    ],
)
def test_a_bad_signature_is_refused(
    provider: LocalPaymentProvider, headers: dict[str, str]
) -> None:
    assert not provider.verify_webhook(headers, b"{}")


def test_a_signature_over_another_body_is_refused(provider: LocalPaymentProvider) -> None:
    signature = sign_local_webhook(WEBHOOK_SECRET, b'{"amount": "1.00"}')
    assert not provider.verify_webhook({"X-Acuerdo-Signature": signature}, b'{"amount": "9.00"}')
    with pytest.raises(WebhookRejected):
        _delivery(provider, b'{"amount": "9.00"}', secret="another-secret")


def test_signature_header_name_and_hex_case_do_not_matter(provider: LocalPaymentProvider) -> None:
    body = b'{"a": 1}'
    signature = sign_local_webhook(WEBHOOK_SECRET, body)
    assert provider.verify_webhook({"x-acuerdo-signature": signature}, body)
    upper_hex = "sha256=" + signature.removeprefix("sha256=").upper()
    assert provider.verify_webhook({"X-ACUERDO-SIGNATURE": upper_hex}, body)


def test_an_unknown_reference_is_refused_and_nothing_is_stored(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    issue: Callable[..., PaymentCode],
) -> None:
    code = issue(account, "bank_ref")
    (event,) = _delivery(provider, _body(code, clock, reference="99999999999999999"))

    with pytest.raises(UnknownPaymentReference) as refused:
        apply_payment_event(session, clock, policy, event)
    assert refused.value.reference == "99999999999999999"
    assert session.scalars(select(Payment)).first() is None
    assert code.status == PaymentCodeStatus.ACTIVE.value


def test_a_spei_transfer_is_matched_by_its_clabe_even_when_grouped(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    issue: Callable[..., PaymentCode],
) -> None:
    code = issue(account, "spei")
    assert code.clabe is not None
    grouped = " ".join(code.clabe[i : i + 4] for i in range(0, 18, 4))
    (event,) = _delivery(provider, _body(code, clock, reference=grouped))

    applied = apply_payment_event(session, clock, policy, event)

    assert applied is not None and applied.payment.payment_code_id == code.id


def test_a_second_payment_to_a_paid_code_is_still_recorded(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    issue: Callable[..., PaymentCode],
) -> None:
    code = issue(account, "bank_ref", 100_000)
    later = Clock(clock.tz, pinned=clock.now() + timedelta(hours=1))
    apply_payment_event(session, clock, policy, _delivery(provider, _body(code, clock))[0])
    body = _body(code, later, event_id="evt-2")
    again = apply_payment_event(session, later, policy, _delivery(provider, body)[0])
    session.commit()

    assert again is not None and again.created
    assert again.payment.reference == f"{code.reference}-2"
    assert code.status == PaymentCodeStatus.PAID.value
    assert code.paid_at == clock.now_utc()  # the first payment paid it
    assert balance_breakdown(session, account, clock).total_cents == 1_200_000 - 200_000
    assert session.scalars(
        select(AuditEntry).where(AuditEntry.action == "payment_code_paid_again")
    ).one()


def test_a_payment_to_an_expired_code_is_applied_and_audited(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    issue: Callable[..., PaymentCode],
) -> None:
    code = issue(account, "oxxo", 80_000)
    days_later = Clock(clock.tz, pinned=clock.now() + timedelta(days=5))
    assert expire_codes(session, days_later) == 1
    session.commit()

    body = _body(code, days_later, event_id="evt-late")
    applied = apply_payment_event(session, days_later, policy, _delivery(provider, body)[0])
    session.commit()

    assert applied is not None and applied.created
    assert code.status == PaymentCodeStatus.PAID.value
    assert balance_breakdown(session, account, days_later).paid_cents == 80_000
    late = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "payment_code_paid_late")
    ).one()
    assert late.details["status_before"] == "expired"


def test_a_different_amount_is_applied_as_received_and_audited(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    issue: Callable[..., PaymentCode],
) -> None:
    code = issue(account, "spei", 250_000)
    body = _body(code, clock, amount_cents=100_050)

    applied = apply_payment_event(session, clock, policy, _delivery(provider, body)[0])

    assert applied is not None and applied.payment.amount_cents == 100_050
    differs = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "payment_code_amount_differs")
    ).one()
    assert differs.details["expected_cents"] == 250_000


def test_paying_the_settlement_code_completes_the_agreement_and_settles_the_account(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    issue: Callable[..., PaymentCode],
) -> None:
    offer = offer_settlement(session, clock, policy, account)
    agreement = accept_offer(session, clock, policy, offer)
    session.commit()
    assert agreement.total_cents < 1_200_000  # a discount (quita)
    code = issue(account, "spei", agreement.total_cents, agreement=agreement)
    assert code.agreement_id == agreement.id

    body = _body(code, clock, event_id="evt-settle")
    apply_payment_event(session, clock, policy, _delivery(provider, body)[0])
    session.commit()

    assert agreement.status == AgreementStatus.COMPLETED.value
    assert account.status == AccountStatus.SETTLED.value
    assert code.status == PaymentCodeStatus.PAID.value
    assert balance_breakdown(session, account, clock).total_cents == 0


def test_an_expiry_notice_expires_the_code_without_money(
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    issue: Callable[..., PaymentCode],
) -> None:
    code = issue(account, "oxxo")
    event = PaymentEvent(
        provider="local",
        event_id="evt-exp",
        reference=code.reference,
        amount_cents=0,
        currency="MXN",
        paid_at=clock.now_utc(),
        status="expired",
    )

    assert apply_payment_event(session, clock, policy, event) is None
    assert code.status == PaymentCodeStatus.EXPIRED.value
    assert session.scalars(select(Payment)).first() is None


def test_a_currency_other_than_the_codes_is_refused(
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    issue: Callable[..., PaymentCode],
) -> None:
    code = issue(account, "card")
    event = PaymentEvent("local", "evt-usd", code.reference, 100, "USD", clock.now_utc())
    with pytest.raises(WebhookRejected) as refused:
        apply_payment_event(session, clock, policy, event)
    assert refused.value.reason == "currency_mismatch"


GOOD = {
    "event_id": "evt-9",
    "reference": "93000000000017",
    "amount": "1250.50",
    "currency": "MXN",
    "paid_at": "2026-11-23T12:30:00-06:00",
}


def test_a_well_formed_body_is_read_into_an_event(provider: LocalPaymentProvider) -> None:
    (event,) = provider.parse_webhook(json.dumps(GOOD).encode())
    assert event.provider == "local"
    assert event.event_id == "evt-9"
    assert event.reference == "93000000000017"
    assert event.amount_cents == 125_050
    assert event.currency == "MXN" and event.status == "paid"
    assert event.paid_at.isoformat() == "2026-11-23T12:30:00-06:00"


@pytest.mark.parametrize(
    ("amount", "cents"), [(1250.5, 125_050), (1250, 125_000), ("0.01", 1), (1e3, 100_000)]
)
def test_amount_may_be_a_json_number_or_a_decimal_string(
    provider: LocalPaymentProvider, amount: object, cents: int
) -> None:
    body = json.dumps({**GOOD, "amount": amount}).encode()
    assert provider.parse_webhook(body)[0].amount_cents == cents


def test_paid_at_may_be_in_utc_with_z(provider: LocalPaymentProvider) -> None:
    body = json.dumps({**GOOD, "paid_at": "2026-11-23T18:30:00Z"}).encode()
    assert provider.parse_webhook(body)[0].paid_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "amount"}), "missing_field"),
        (json.dumps({**GOOD, "amount_cents": 100}), "unknown_field"),
        (json.dumps({**GOOD, "event_id": 7}), "bad_event_id"),
        (json.dumps({**GOOD, "event_id": "  "}), "bad_event_id"),
        (json.dumps({**GOOD, "reference": None}), "bad_reference"),
        (json.dumps({**GOOD, "amount": "-5.00"}), "bad_amount"),
        (json.dumps({**GOOD, "amount": 0}), "bad_amount"),
        (json.dumps({**GOOD, "amount": "12.345"}), "bad_amount"),
        (json.dumps({**GOOD, "amount": "$1,250.00"}), "bad_amount"),
        (json.dumps({**GOOD, "amount": True}), "bad_amount"),
        (
            b'{"event_id": "e", "reference": "r", "amount": NaN, "currency": "MXN",'
            b' "paid_at": "2026-11-23T12:00:00Z"}',
            "malformed_json",
        ),
        (json.dumps({**GOOD, "currency": "USD"}), "currency"),
        (json.dumps({**GOOD, "paid_at": "2026-11-23"}), "bad_paid_at"),
        (json.dumps({**GOOD, "paid_at": "2026-11-23T12:30:00"}), "bad_paid_at"),
        (json.dumps({**GOOD, "paid_at": "ayer"}), "bad_paid_at"),
        (json.dumps({**GOOD, "paid_at": 1764000000}), "bad_paid_at"),
        (b" " * (64 * 1024 + 1), "too_large"),
    ],
)
def test_a_malformed_body_is_refused_with_a_reason(
    provider: LocalPaymentProvider, body: str | bytes, reason: str
) -> None:
    raw = body.encode() if isinstance(body, str) else body
    with pytest.raises(WebhookRejected) as refused:
        provider.parse_webhook(raw)
    assert refused.value.reason == reason
