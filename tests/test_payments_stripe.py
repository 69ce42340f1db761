"""PAYMENTS_PROVIDER=stripe: codes issued through Stripe's own SDK against a local stand-in
that speaks Stripe's REST API (tests/stripe_stub.py), on a real SQLite ledger."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import Account, AuditEntry, PaymentCode, ProcessorCustomer
from bot.domain.payment_references import shown_reference
from bot.payments.check_digits import clabe_check_digit
from bot.payments.provider import PaymentCodeError
from bot.payments.stripe_provider import StripePaymentProvider
from bot.policy import Policy
from tests.stripe_stub import StripeStub

API_KEY = "sk_test_acuerdo"
SECRET = "whsec_acuerdo_test"


@pytest.fixture
def stripe_stub(clock: Clock) -> Iterator[StripeStub]:
    stub = StripeStub(API_KEY, clock=lambda: clock.now_utc().timestamp()).start()
    yield stub
    stub.stop()


@pytest.fixture
def make_provider(stripe_stub: StripeStub) -> Callable[..., StripePaymentProvider]:
    def _make(**overrides: object) -> StripePaymentProvider:
        values: dict[str, object] = {
            "api_key": API_KEY,
            "webhook_secrets": (SECRET,),
            "link_secret": "test-link-secret",
            "api_base_url": stripe_stub.url,
            "billing_email": None,
            **overrides,
        }
        return StripePaymentProvider(**values)  # type: ignore[arg-type]

    return _make


def _creates(stub: StripeStub, path: str) -> list[dict[str, object]]:
    return [r.params for r in stub.requests if r.method == "POST" and r.path == path]


def test_an_oxxo_voucher_is_a_confirmed_payment_intent_in_centavos(
    make_provider: Callable[..., StripePaymentProvider],
    stripe_stub: StripeStub,
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
) -> None:
    account = make_account(email="maria@example.mx", full_name="María López")

    code = make_provider().issue_code(
        session, clock, policy, account, amount_cents=125_050, method="oxxo"
    )

    (sent,) = _creates(stripe_stub, "/v1/payment_intents")
    assert sent["amount"] == 125_050 and sent["currency"] == "mxn" and sent["confirm"] is True
    assert sent["payment_method_types"] == ["oxxo"]
    assert sent["payment_method_data"] == {
        "type": "oxxo",
        "billing_details": {"name": "María López", "email": "maria@example.mx"},
    }
    assert sent["payment_method_options"] == {"oxxo": {"expires_after_days": 3}}  # 72 hours
    assert "ACC-" not in str(sent["description"])  # no account number leaves for Stripe
    intent = stripe_stub.payment_intents[code.reference]
    voucher = intent["next_action"]["oxxo_display_details"]
    assert code.reference.startswith("pi_") and code.provider == "stripe"
    assert code.voucher_number == voucher["number"] and re.fullmatch(r"\d{18}", voucher["number"])
    assert shown_reference(code) == voucher["number"]
    assert code.hosted_url == voucher["hosted_voucher_url"]
    assert int(code.expires_at.timestamp()) == voucher["expires_after"]
    audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "payment_code")).one()
    assert audit.details["reference"] == code.reference


def test_each_create_carries_a_key_from_the_code_so_a_lost_answer_makes_no_second_voucher(
    make_provider: Callable[..., StripePaymentProvider],
    stripe_stub: StripeStub,
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
) -> None:
    account = make_account(email="maria@example.mx")
    stripe_stub.drop_answers = 1  # Stripe makes the voucher; its answer never arrives

    code = make_provider().issue_code(
        session, clock, policy, account, amount_cents=50_000, method="oxxo"
    )

    attempts = [r for r in stripe_stub.requests if r.path == "/v1/payment_intents"]
    assert len(attempts) == 2  # the SDK tried again ...
    keys = {r.headers["idempotency-key"] for r in attempts}
    assert keys == {f"acuerdo-code-{code.id}-{account.id}-oxxo-50000"}  # ... with the same key
    assert stripe_stub.created == 1 and list(stripe_stub.payment_intents) == [code.reference]


def test_spei_makes_the_debtors_customer_once_and_shows_its_clabe(
    make_provider: Callable[..., StripePaymentProvider],
    stripe_stub: StripeStub,
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
) -> None:
    account = make_account()
    provider = make_provider()

    first = provider.issue_code(
        session, clock, policy, account, amount_cents=100_000, method="spei"
    )
    second = provider.issue_code(
        session, clock, policy, account, amount_cents=20_000, method="spei"
    )

    assert len(_creates(stripe_stub, "/v1/customers")) == 1
    customer = session.scalars(select(ProcessorCustomer)).one()
    assert customer.debtor_id == account.debtor_id and customer.provider == "stripe"
    sent = _creates(stripe_stub, "/v1/payment_intents")
    assert [s["customer"] for s in sent] == [customer.customer_id] * 2
    assert sent[0]["payment_method_options"] == {
        "customer_balance": {
            "funding_type": "bank_transfer",
            "bank_transfer": {"type": "mx_bank_transfer"},
        }
    }
    assert first.clabe is not None and first.clabe == second.clabe  # one CLABE per customer
    assert re.fullmatch(r"\d{18}", first.clabe)
    assert int(first.clabe[-1]) == clabe_check_digit(first.clabe[:17])
    assert shown_reference(first) == first.clabe
    instructions = stripe_stub.payment_intents[first.reference]["next_action"][
        "display_bank_transfer_instructions"
    ]
    assert first.voucher_number == instructions["reference"]
    assert first.hosted_url == instructions["hosted_instructions_url"]


def test_an_oxxo_voucher_needs_an_email_and_takes_the_creditors_when_the_debtor_has_none(
    make_provider: Callable[..., StripePaymentProvider],
    stripe_stub: StripeStub,
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
) -> None:
    account = make_account()  # no e-mail
    with pytest.raises(PaymentCodeError) as refused:
        make_provider().issue_code(
            session, clock, policy, account, amount_cents=50_000, method="oxxo"
        )
    assert refused.value.reason == "email_required"
    assert session.scalar(select(func.count()).select_from(PaymentCode)) == 0
    assert stripe_stub.requests == []

    make_provider(billing_email="pagos@acreedor.mx").issue_code(
        session, clock, policy, account, amount_cents=50_000, method="oxxo"
    )
    (sent,) = _creates(stripe_stub, "/v1/payment_intents")
    assert sent["payment_method_data"]["billing_details"]["email"] == "pagos@acreedor.mx"  # type: ignore[index]


def test_stripe_out_of_reach_refuses_the_code_and_leaves_no_row(
    make_provider: Callable[..., StripePaymentProvider],
    stripe_stub: StripeStub,
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
) -> None:
    account = make_account(email="maria@example.mx")
    provider = make_provider()
    stripe_stub.stop()

    with pytest.raises(PaymentCodeError) as refused:
        provider.issue_code(session, clock, policy, account, amount_cents=50_000, method="oxxo")

    assert refused.value.reason == "processor_unavailable"
    session.commit()
    assert session.scalar(select(func.count()).select_from(PaymentCode)) == 0


def test_a_wrong_key_is_refused_as_the_processor_being_unavailable(
    make_provider: Callable[..., StripePaymentProvider],
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
) -> None:
    account = make_account(email="maria@example.mx")
    with pytest.raises(PaymentCodeError) as refused:
        make_provider(api_key="sk_test_someone_else").issue_code(
            session, clock, policy, account, amount_cents=50_000, method="oxxo"
        )
    assert refused.value.reason == "processor_unavailable"
    assert "sk_test_someone_else" not in str(refused.value)


def test_a_method_stripe_does_not_issue_here_is_refused(
    make_provider: Callable[..., StripePaymentProvider],
    stripe_stub: StripeStub,
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
) -> None:
    account = make_account(email="maria@example.mx")
    for method in ("card", "bank_ref"):
        with pytest.raises(PaymentCodeError) as refused:
            make_provider().issue_code(
                session, clock, policy, account, amount_cents=50_000, method=method
            )
        assert refused.value.reason == "method_not_offered"
    assert stripe_stub.requests == []
