"""Stripe's webhooks at ``POST /webhooks/payments/stripe``: signed as Stripe signs them,
applied once, in any order, and a forged, replayed or foreign event changes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.config import Settings
from bot.db.engine import session_factory
from bot.db.models import Account, Conversation, Payment, PaymentCode
from bot.domain.accounts import balance_breakdown
from bot.payments import get_provider
from bot.policy import Policy
from tests.conftest_gateway import envelope, signed_post, text, wait_outbound_settled
from tests.graph_stub import GraphStub, describe
from tests.stripe_stub import StripeStub, sign

pytest_plugins = ["tests.conftest_gateway"]

API_KEY = "sk_test_acuerdo"
NEW_SECRET, OLD_SECRET = "whsec_new_endpoint_secret", "whsec_old_endpoint_secret"
WEBHOOK = "/webhooks/payments/stripe"


@pytest.fixture
def stripe_stub(clock: Clock) -> Iterator[StripeStub]:
    stub = StripeStub(API_KEY, clock=lambda: clock.now_utc().timestamp()).start()
    yield stub
    stub.stop()


@pytest.fixture
def stripe_settings(gateway_settings: Settings, stripe_stub: StripeStub) -> Settings:
    return gateway_settings.model_copy(
        update={
            "payments_provider": "stripe",
            "stripe_api_key": API_KEY,
            "stripe_webhook_secret": f"{NEW_SECRET},{OLD_SECRET}",  # a rotation under way
            "stripe_api_base_url": stripe_stub.url,
        }
    )


@pytest.fixture
def stripe_gateway(
    start_gateway: Callable[..., TestClient], stripe_settings: Settings
) -> TestClient:
    return start_gateway(stripe_settings)


@pytest.fixture
def voucher(
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
    stripe_settings: Settings,
) -> PaymentCode:
    account = make_account(email="maria@example.mx")
    code = get_provider(stripe_settings).issue_code(
        session, clock, policy, account, amount_cents=125_000, method="oxxo"
    )
    session.commit()
    return code


def _post(gateway: TestClient, body: bytes, signature: str) -> int:
    headers = {"Content-Type": "application/json", "Stripe-Signature": signature}
    return gateway.post(WEBHOOK, content=body, headers=headers).status_code


def _payments(db_url: str) -> list[Payment]:
    with session_factory(db_url)() as session:
        return list(session.scalars(select(Payment)))


def _code(db_url: str, code_id: int) -> PaymentCode:
    with session_factory(db_url)() as session:
        code = session.get(PaymentCode, code_id)
        assert code is not None
        return code


def test_a_paid_voucher_is_applied_once_and_the_debtor_thanked_with_its_number(
    stripe_gateway: TestClient,
    stripe_stub: StripeStub,
    voucher: PaymentCode,
    graph_server: GraphStub,
    db_url: str,
    clock: Clock,
) -> None:
    account_phone = "+5255123400001"
    signed_post(stripe_gateway, envelope([text("hola")], wa_id=account_phone.lstrip("+")))
    graph_server.wait_for_sends(1)
    with session_factory(db_url)() as session:
        session.execute(update(Conversation).values(verified_at=datetime.now(timezone.utc)))
        session.commit()
    body = stripe_stub.event(voucher.reference, "payment_intent.succeeded")

    assert _post(stripe_gateway, body, sign(body, NEW_SECRET)) == 200
    assert _post(stripe_gateway, body, sign(body, NEW_SECRET)) == 200  # Stripe redelivers

    (payment,) = _payments(db_url)
    assert payment.amount_cents == 125_000
    assert payment.provider_event_id == json.loads(body)["id"]
    assert _code(db_url, voucher.id).status == "paid"
    with session_factory(db_url)() as session:
        account = session.get(Account, voucher.account_id)
        assert account is not None
        assert balance_breakdown(session, account, clock).total_cents == 1_200_000 - 125_000
    graph_server.wait_for_sends(2)
    wait_outbound_settled(db_url)
    thanks = describe(graph_server.sends[1].body)
    assert "$1,250.00" in thanks and str(voucher.voucher_number) in thanks
    assert voucher.reference not in thanks  # Stripe's own id means nothing to the debtor
    assert len(graph_server.sends) == 2


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(lambda body: sign(body, "whsec_someone_else"), id="forged"),
        pytest.param(lambda body: sign(body, NEW_SECRET, int(time.time()) - 301), id="replayed"),
        pytest.param(lambda body: sign(body + b" ", NEW_SECRET), id="another-body"),
        pytest.param(lambda body: "t=1,v0=abc", id="malformed"),
    ],
)
def test_a_forged_replayed_or_tampered_event_is_refused_and_changes_nothing(
    stripe_gateway: TestClient,
    stripe_stub: StripeStub,
    voucher: PaymentCode,
    db_url: str,
    signature: Callable[[bytes], str],
) -> None:
    body = stripe_stub.event(voucher.reference, "payment_intent.succeeded")

    assert _post(stripe_gateway, body, signature(body)) == 401

    assert _payments(db_url) == [] and _code(db_url, voucher.id).status == "active"


def test_during_a_rotation_either_secret_and_both_signatures_are_accepted(
    stripe_gateway: TestClient, stripe_stub: StripeStub, voucher: PaymentCode, db_url: str
) -> None:
    body = stripe_stub.event(voucher.reference, "payment_intent.succeeded")
    assert _post(stripe_gateway, body, sign(body, [OLD_SECRET, NEW_SECRET])) == 200
    assert _post(stripe_gateway, body, sign(body, OLD_SECRET)) == 200
    assert len(_payments(db_url)) == 1


def test_events_out_of_order_leave_a_paid_voucher_paid(
    stripe_gateway: TestClient, stripe_stub: StripeStub, voucher: PaymentCode, db_url: str
) -> None:
    paid = stripe_stub.event(voucher.reference, "payment_intent.succeeded")
    expired = stripe_stub.event(voucher.reference, "payment_intent.payment_failed")
    canceled = stripe_stub.event(voucher.reference, "payment_intent.canceled")

    for body in (paid, canceled, expired):
        assert _post(stripe_gateway, body, sign(body, NEW_SECRET)) == 200

    assert _code(db_url, voucher.id).status == "paid" and len(_payments(db_url)) == 1


def test_an_expired_voucher_then_paid_late_is_applied(
    stripe_gateway: TestClient, stripe_stub: StripeStub, voucher: PaymentCode, db_url: str
) -> None:
    expired = stripe_stub.event(voucher.reference, "payment_intent.payment_failed")
    assert _post(stripe_gateway, expired, sign(expired, NEW_SECRET)) == 200
    assert _code(db_url, voucher.id).status == "expired" and _payments(db_url) == []

    paid = stripe_stub.event(voucher.reference, "payment_intent.succeeded")
    assert _post(stripe_gateway, paid, sign(paid, NEW_SECRET)) == 200
    assert _code(db_url, voucher.id).status == "paid" and len(_payments(db_url)) == 1


def test_another_integrations_payment_intent_is_acknowledged_and_ignored(
    stripe_gateway: TestClient, stripe_stub: StripeStub, voucher: PaymentCode, db_url: str
) -> None:
    event = json.loads(stripe_stub.event(voucher.reference, "payment_intent.succeeded"))
    event["data"]["object"]["metadata"] = {"order": "tienda-123"}
    body = json.dumps(event).encode()

    assert _post(stripe_gateway, body, sign(body, NEW_SECRET)) == 200
    assert _payments(db_url) == []


def test_a_test_mode_event_is_refused_by_a_live_key_and_a_dollar_amount_always(
    stripe_gateway: TestClient,
    stripe_stub: StripeStub,
    voucher: PaymentCode,
    db_url: str,
    start_gateway: Callable[..., TestClient],
    stripe_settings: Settings,
) -> None:
    event = json.loads(stripe_stub.event(voucher.reference, "payment_intent.succeeded"))
    event["data"]["object"]["currency"] = "usd"
    dollars = json.dumps(event).encode()
    assert _post(stripe_gateway, dollars, sign(dollars, NEW_SECRET)) == 400

    live = start_gateway(stripe_settings.model_copy(update={"stripe_api_key": "sk_live_acuerdo"}))
    body = stripe_stub.event(voucher.reference, "payment_intent.succeeded")
    assert _post(live, body, sign(body, NEW_SECRET)) == 400
    assert _payments(db_url) == []
