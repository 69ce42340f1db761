"""A debtor asks for an OXXO voucher and a SPEI transfer with PAYMENTS_PROVIDER=stripe, and
for a SPEI CLABE with PAYMENTS_PROVIDER=conekta: the real Rasa model and action server, the
processor's SDK against its local stand-in, then the paid event through the provider's
webhook path (signature, parsing, reconciliation) and the next balance answer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.clock import Clock
from bot.db.engine import session_scope
from bot.db.models import PaymentCode
from bot.payments.conekta_provider import ConektaPaymentProvider, load_webhook_key
from bot.payments.provider import PaymentProvider
from bot.payments.reconcile import apply_payment_event
from bot.payments.stripe_provider import StripePaymentProvider
from bot.policy import load_policy
from tests.conekta_stub import ConektaStub
from tests.conftest import REPO_ROOT
from tests.rasa_stack import STACK_NOW, RasaStack, start_stack
from tests.stripe_stub import StripeStub, sign
from tests.test_conversations import phone, text_of, verify

pytestmark = pytest.mark.rasa

API_KEY, SECRET = "sk_test_acuerdo", "whsec_acuerdo_conversations"
CLOCK = Clock.from_setting(STACK_NOW, "America/Mexico_City")


@pytest.fixture(scope="module")
def stripe_stub() -> Iterator[StripeStub]:
    stub = StripeStub(API_KEY, clock=lambda: CLOCK.now_utc().timestamp()).start()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def stripe_stack(
    tmp_path_factory: pytest.TempPathFactory, stripe_stub: StripeStub
) -> Iterator[RasaStack]:
    with start_stack(
        tmp_path_factory.mktemp("stripe-stack"),
        PAYMENTS_PROVIDER="stripe",
        STRIPE_API_KEY=API_KEY,
        STRIPE_WEBHOOK_SECRET=SECRET,
        STRIPE_API_BASE_URL=stripe_stub.url,
        PAYMENTS_BILLING_EMAIL="pagos@acreedor.example.mx",
    ) as stack:
        yield stack


def _pay(stack: RasaStack, stub: StripeStub, code: PaymentCode) -> None:
    """Stripe's paid event, through the webhook's verification, parsing and reconciliation."""
    provider = StripePaymentProvider(
        api_key=API_KEY, webhook_secrets=(SECRET,), link_secret="x", api_base_url=stub.url
    )
    body = stub.event(code.reference, "payment_intent.succeeded")
    _apply(stack, provider, {"Stripe-Signature": sign(body, SECRET)}, body)


def _apply(
    stack: RasaStack, provider: PaymentProvider, headers: dict[str, str], body: bytes
) -> None:
    assert provider.verify_webhook(headers, body)
    with session_scope(stack.db_url) as session:
        for event in provider.parse_webhook(body):
            apply_payment_event(session, CLOCK, load_policy(REPO_ROOT / "policy.yml"), event)


def _latest_code(stack: RasaStack) -> PaymentCode:
    with session_scope(stack.db_url) as session:
        code = session.scalars(select(PaymentCode).order_by(PaymentCode.id.desc())).first()
        assert code is not None
        session.expunge(code)
        return code


def test_an_oxxo_voucher_from_stripe_in_the_chat_then_paid_lowers_the_balance(
    stripe_stack: RasaStack, stripe_stub: StripeStub
) -> None:
    sender = phone(31)
    verify(stripe_stack, sender)
    stripe_stack.say(sender, "quiero pagar en el oxxo, me das la referencia?")
    replies = stripe_stack.say(sender, "500")

    body = text_of(replies)
    code = _latest_code(stripe_stack)
    voucher = stripe_stub.payment_intents[code.reference]["next_action"]["oxxo_display_details"]
    assert f"Referencia OXXO: {voucher['number']}" in body
    assert "$500.00" in body and voucher["hosted_voucher_url"] in body
    # Stripe's PaymentIntent id is not for the debtor (the stand-in's voucher URL holds it)
    assert code.reference not in body.replace(voucher["hosted_voucher_url"], "")
    payload = next(r["custom"] for r in replies if r.get("custom"))
    assert payload["reference"] == voucher["number"]
    assert payload["hosted_url"] == voucher["hosted_voucher_url"]

    _pay(stripe_stack, stripe_stub, code)

    balance = text_of(stripe_stack.say(sender, "cuanto debo?"))
    assert "$11,500.00" in balance


def test_a_spei_transfer_from_stripe_shows_the_customers_clabe(
    stripe_stack: RasaStack, stripe_stub: StripeStub
) -> None:
    sender = phone(32)
    verify(stripe_stack, sender)
    stripe_stack.say(sender, "quiero pagar por transferencia")
    body = text_of(stripe_stack.say(sender, "2000"))

    clabe = re.search(r"CLABE: (\d{18})", body)
    assert clabe and "$2,000.00" in body
    assert _latest_code(stripe_stack).clabe == clabe.group(1)
    assert "BBVA México (demo)" not in body  # Stripe's CLABE is not the creditor's account


def test_stripe_out_of_reach_gets_an_apology_and_an_agent_offer(
    stripe_stack: RasaStack, stripe_stub: StripeStub, tmp_path: Path
) -> None:
    sender = phone(33)
    verify(stripe_stack, sender)
    stripe_stack.say(sender, "quiero pagar en el oxxo")
    stripe_stub.drop_answers = 10  # every try is lost on the way
    try:
        replies = stripe_stack.say(sender, "700")
    finally:
        stripe_stub.drop_answers = 0
    body = text_of(replies)
    assert "no pude generar tu referencia" in body
    assert any(b["payload"] == "/request_agent" for r in replies for b in r.get("buttons", []))
    assert "Referencia OXXO" not in body


# -- Conekta ----------------------------------------------------------------------------------
CONEKTA_KEY = "key_acuerdo_test"


@pytest.fixture(scope="module")
def conekta_stub() -> Iterator[ConektaStub]:
    stub = ConektaStub(CONEKTA_KEY, clock=lambda: CLOCK.now_utc().timestamp()).start()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def conekta_stack(
    tmp_path_factory: pytest.TempPathFactory, conekta_stub: ConektaStub
) -> Iterator[RasaStack]:
    workdir = tmp_path_factory.mktemp("conekta-stack")
    key_file = workdir / "conekta-webhook.pem"
    key_file.write_text(conekta_stub.webhook_public_key_pem)
    with start_stack(
        workdir,
        PAYMENTS_PROVIDER="conekta",
        CONEKTA_API_KEY=CONEKTA_KEY,
        CONEKTA_WEBHOOK_PUBLIC_KEY_FILE=str(key_file),
        CONEKTA_API_BASE_URL=conekta_stub.url,
        PAYMENTS_BILLING_EMAIL="pagos@acreedor.example.mx",
    ) as stack:
        yield stack


def test_a_spei_clabe_from_conekta_in_the_chat_then_paid_lowers_the_balance(
    conekta_stack: RasaStack, conekta_stub: ConektaStub
) -> None:
    sender = phone(34)
    verify(conekta_stack, sender)
    conekta_stack.say(sender, "quiero pagar por transferencia")
    body = text_of(conekta_stack.say(sender, "2000"))

    code = _latest_code(conekta_stack)
    order = conekta_stub.orders[code.reference]
    clabe = order["charges"]["data"][0]["payment_method"]["clabe"]
    assert f"CLABE: {clabe}" in body and "$2,000.00" in body
    assert code.reference not in body  # Conekta's order id is not for the debtor

    provider = ConektaPaymentProvider(
        api_key=CONEKTA_KEY,
        webhook_key=load_webhook_key(conekta_stack.env["CONEKTA_WEBHOOK_PUBLIC_KEY_FILE"]),
        link_secret="x",
        api_base_url=conekta_stub.url,
    )
    paid = conekta_stub.event(code.reference, "order.paid")
    _apply(conekta_stack, provider, {"digest": conekta_stub.digest(paid)}, paid)

    assert "$10,000.00" in text_of(conekta_stack.say(sender, "cuanto debo?"))
