"""PAYMENTS_PROVIDER=conekta: orders made through Conekta's own SDK against a local stand-in
that speaks Conekta's REST API (tests/conekta_stub.py), and its RSA-signed webhooks at the
gateway, on a real SQLite ledger."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.config import Settings
from bot.db.engine import session_factory
from bot.db.models import Account, Payment, PaymentCode, ProcessorEvent
from bot.domain.payment_references import shown_reference
from bot.payments import get_provider
from bot.payments.check_digits import clabe_check_digit
from bot.payments.conekta_provider import ConektaPaymentProvider
from bot.payments.provider import PaymentCodeError
from bot.policy import Policy
from tests.conekta_stub import ConektaStub, sign

pytest_plugins = ["tests.conftest_gateway"]

API_KEY = "key_acuerdo_test"
WEBHOOK = "/webhooks/payments/conekta"


@pytest.fixture
def conekta_stub(clock: Clock) -> Iterator[ConektaStub]:
    stub = ConektaStub(API_KEY, clock=lambda: clock.now_utc().timestamp()).start()
    yield stub
    stub.stop()


@pytest.fixture
def key_file(conekta_stub: ConektaStub, tmp_path: Path) -> Path:
    path = tmp_path / "conekta-webhook.pem"
    path.write_text(conekta_stub.webhook_public_key_pem)
    return path


@pytest.fixture
def conekta_settings(
    gateway_settings: Settings, conekta_stub: ConektaStub, key_file: Path
) -> Settings:
    return gateway_settings.model_copy(
        update={
            "payments_provider": "conekta",
            "conekta_api_key": API_KEY,
            "conekta_webhook_public_key_file": str(key_file),
            "conekta_api_base_url": conekta_stub.url,
        }
    )


@pytest.fixture
def provider(conekta_settings: Settings) -> ConektaPaymentProvider:
    made = get_provider(conekta_settings)
    assert isinstance(made, ConektaPaymentProvider)
    return made


def _orders(stub: ConektaStub) -> list[dict[str, object]]:
    return [r.body for r in stub.requests if r.method == "POST" and r.path == "/orders"]


def test_an_oxxo_reference_is_a_conekta_order_with_one_cash_charge(
    provider: ConektaPaymentProvider,
    conekta_stub: ConektaStub,
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
) -> None:
    account = make_account(email="maria@example.mx", full_name="María López")

    code = provider.issue_code(session, clock, policy, account, amount_cents=125_050, method="oxxo")

    (sent,) = _orders(conekta_stub)
    assert sent["currency"] == "MXN" and sent["metadata"]["acuerdo_payment_code"] == str(code.id)  # type: ignore[index]
    assert sent["customer_info"] == {
        "name": "María López",
        "email": "maria@example.mx",
        "phone": account.debtor.contact_points[0].address,
    }
    assert sent["line_items"] == [{"name": code.concept, "unit_price": 125_050, "quantity": 1}]
    (charge,) = sent["charges"]  # type: ignore[misc]
    assert charge["payment_method"]["type"] == "cash"
    assert charge["payment_method"]["expires_at"] == int(code.expires_at.timestamp())
    order = conekta_stub.orders[code.reference]
    paying = order["charges"]["data"][0]["payment_method"]
    assert code.reference.startswith("ord_") and code.provider == "conekta"
    assert code.voucher_number == paying["reference"] and re.fullmatch(
        r"\d{14}", paying["reference"]
    )
    assert shown_reference(code) == paying["reference"]
    assert code.hosted_url == paying["barcode_url"]


def test_a_spei_charge_gets_a_clabe_of_its_own(
    provider: ConektaPaymentProvider,
    conekta_stub: ConektaStub,
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
) -> None:
    account = make_account(email="maria@example.mx")

    first = provider.issue_code(
        session, clock, policy, account, amount_cents=100_000, method="spei"
    )
    second = provider.issue_code(
        session, clock, policy, account, amount_cents=20_000, method="spei"
    )

    assert first.clabe and second.clabe and first.clabe != second.clabe
    assert re.fullmatch(r"\d{18}", first.clabe) and int(first.clabe[-1]) == clabe_check_digit(
        first.clabe[:17]
    )
    assert shown_reference(first) == first.clabe


def test_a_lost_answer_finds_the_order_it_made_instead_of_making_a_second(
    provider: ConektaPaymentProvider,
    conekta_stub: ConektaStub,
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
) -> None:
    account = make_account(email="maria@example.mx")
    other = make_account(email="otra@example.mx")
    provider.issue_code(session, clock, policy, other, amount_cents=30_000, method="oxxo")
    conekta_stub.drop_answers = 1  # Conekta makes the order; its answer never arrives

    code = provider.issue_code(session, clock, policy, account, amount_cents=50_000, method="oxxo")

    assert len(_orders(conekta_stub)) == 2 and conekta_stub.created == 2  # one each, no retry
    assert conekta_stub.orders[code.reference]["metadata"]["acuerdo_payment_code"] == str(code.id)
    assert code.voucher_number


def test_conekta_out_of_reach_or_refusing_leaves_no_code(
    provider: ConektaPaymentProvider,
    conekta_stub: ConektaStub,
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
    conekta_settings: Settings,
) -> None:
    account = make_account(email="maria@example.mx")
    wrong_key = get_provider(
        conekta_settings.model_copy(update={"conekta_api_key": "key_someone_else"})
    )
    with pytest.raises(PaymentCodeError) as refused:
        wrong_key.issue_code(session, clock, policy, account, amount_cents=50_000, method="oxxo")
    assert refused.value.reason == "processor_unavailable"
    assert "key_someone_else" not in str(refused.value)

    conekta_stub.stop()
    with pytest.raises(PaymentCodeError) as unreachable:
        provider.issue_code(session, clock, policy, account, amount_cents=50_000, method="oxxo")
    assert unreachable.value.reason == "processor_unavailable"
    session.commit()
    assert session.scalar(select(func.count()).select_from(PaymentCode)) == 0


# -- webhooks at the gateway ------------------------------------------------------------------
@pytest.fixture
def conekta_gateway(
    start_gateway: Callable[..., TestClient], conekta_settings: Settings
) -> TestClient:
    return start_gateway(conekta_settings)


@pytest.fixture
def reference(
    provider: ConektaPaymentProvider,
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
) -> PaymentCode:
    code = provider.issue_code(
        session,
        clock,
        policy,
        make_account(email="maria@example.mx"),
        amount_cents=125_000,
        method="oxxo",
    )
    session.commit()
    return code


def _post(gateway: TestClient, body: bytes, digest: str) -> int:
    headers = {"Content-Type": "application/json", "digest": digest}
    return gateway.post(WEBHOOK, content=body, headers=headers).status_code


def _state(db_url: str, code_id: int) -> tuple[str, list[int]]:
    with session_factory(db_url)() as session:
        code = session.get(PaymentCode, code_id)
        assert code is not None
        return code.status, [p.amount_cents for p in session.scalars(select(Payment))]


def test_a_signed_paid_order_is_applied_once(
    conekta_gateway: TestClient, conekta_stub: ConektaStub, reference: PaymentCode, db_url: str
) -> None:
    body = conekta_stub.event(reference.reference, "order.paid")

    assert _post(conekta_gateway, body, conekta_stub.digest(body)) == 200
    assert _post(conekta_gateway, body, conekta_stub.digest(body)) == 200  # redelivered

    assert _state(db_url, reference.id) == ("paid", [125_000])
    with session_factory(db_url)() as session:
        (payment,) = session.scalars(select(Payment))
        assert payment.provider_event_id == json.loads(body)["id"]


def test_a_forged_or_tampered_event_is_refused(
    conekta_gateway: TestClient, conekta_stub: ConektaStub, reference: PaymentCode, db_url: str
) -> None:
    body = conekta_stub.event(reference.reference, "order.paid")
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    assert _post(conekta_gateway, body, sign(body, stranger)) == 401
    assert _post(conekta_gateway, body + b" ", conekta_stub.digest(body)) == 401
    assert _post(conekta_gateway, body, "not base64!") == 401
    assert _state(db_url, reference.id) == ("active", [])


def test_an_expired_order_then_paid_and_a_refund_keep_the_money(
    conekta_gateway: TestClient, conekta_stub: ConektaStub, reference: PaymentCode, db_url: str
) -> None:
    expired = conekta_stub.event(reference.reference, "order.expired")
    assert _post(conekta_gateway, expired, conekta_stub.digest(expired)) == 200
    assert _state(db_url, reference.id) == ("expired", [])

    paid = conekta_stub.event(reference.reference, "order.paid")
    assert _post(conekta_gateway, paid, conekta_stub.digest(paid)) == 200
    refunded = conekta_stub.event(reference.reference, "charge.refunded")
    assert _post(conekta_gateway, refunded, conekta_stub.digest(refunded)) == 200
    assert _state(db_url, reference.id) == ("paid", [125_000])  # a refund is an agent's call
    with session_factory(db_url)() as session:  # the daily report's record of each
        outcomes = [(e.status, e.outcome) for e in session.scalars(select(ProcessorEvent))]
    assert outcomes == [("expired", "status"), ("paid", "applied"), ("refunded", "status")]


def test_another_integrations_order_is_acknowledged_and_ignored(
    conekta_gateway: TestClient, conekta_stub: ConektaStub, reference: PaymentCode, db_url: str
) -> None:
    event = json.loads(conekta_stub.event(reference.reference, "order.paid"))
    event["data"]["object"]["metadata"] = {"tienda": "pedido-7"}
    body = json.dumps(event).encode()

    assert _post(conekta_gateway, body, conekta_stub.digest(body)) == 200
    assert _state(db_url, reference.id) == ("active", [])


def test_the_public_key_is_what_the_stub_signs_with(
    conekta_stub: ConektaStub, key_file: Path
) -> None:
    key = serialization.load_pem_public_key(key_file.read_bytes())
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048
