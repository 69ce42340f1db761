"""The Stripe stand-in (tests/stripe_stub.py) driven by the real stripe-python SDK.

These tests pin what the SDK puts on the wire (form keys, headers) and that the stand-in
answers in shapes the SDK parses into its own objects and errors, so an adapter tested
against the stand-in talks to api.stripe.com the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import httpx
import pytest
import stripe

from bot.payments.check_digits import is_valid_clabe
from tests.stripe_stub import API_VERSION, StripeStub, clabe_with_check_digit, parse_form, sign

API_KEY = "sk_test_acuerdo"
SECRET = "whsec_acuerdo_current"
# Monday 2026-11-23, noon in Mexico City (the suite's pinned "now").
NOON = dt.datetime(2026, 11, 23, 12, 0, tzinfo=ZoneInfo("America/Mexico_City")).timestamp()


@pytest.fixture
def stub() -> Iterator[StripeStub]:
    with StripeStub(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def client(stub: StripeStub) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": stub.url}, max_network_retries=0)


def oxxo_params(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "amount": 45000,
        "currency": "mxn",
        "payment_method_types": ["oxxo"],
        "confirm": True,
        "description": "Pago de la cuenta ACC-0001",
        "metadata": {"account": "ACC-0001", "plan": "7"},
        "payment_method_data": {
            "type": "oxxo",
            "billing_details": {"name": "Deudor Prueba", "email": "deudor@example.mx"},
        },
        "payment_method_options": {"oxxo": {"expires_after_days": 3}},
    }
    params.update(overrides)
    return params


def spei_params(customer: str, **overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "amount": 250000,
        "currency": "mxn",
        "customer": customer,
        "payment_method_types": ["customer_balance"],
        "confirm": True,
        "payment_method_data": {"type": "customer_balance"},
        "payment_method_options": {
            "customer_balance": {
                "funding_type": "bank_transfer",
                "bank_transfer": {"type": "mx_bank_transfer"},
            }
        },
    }
    params.update(overrides)
    return params


def test_oxxo_payment_intent_as_the_sdk_sends_it(stub: StripeStub, client: Any) -> None:
    pi = client.v1.payment_intents.create(
        params=oxxo_params(), options={"idempotency_key": "plan-7-installment-1"}
    )

    request = stub.requests[-1]
    assert (request.method, request.path) == ("POST", "/v1/payment_intents")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["idempotency-key"] == "plan-7-installment-1"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["stripe-version"] == API_VERSION == stripe.api_version
    assert [key for key, _ in parse_qsl(request.raw)] == [
        "amount",
        "currency",
        "payment_method_types[0]",
        "confirm",
        "description",
        "metadata[account]",
        "metadata[plan]",
        "payment_method_data[type]",
        "payment_method_data[billing_details][name]",
        "payment_method_data[billing_details][email]",
        "payment_method_options[oxxo][expires_after_days]",
    ]
    assert "confirm=true" in request.raw.split("&")
    assert request.params["amount"] == 45000 and request.params["confirm"] is True
    assert request.params["payment_method_types"] == ["oxxo"]
    assert request.params["metadata"] == {"account": "ACC-0001", "plan": "7"}  # stays text
    assert request.params["payment_method_options"] == {"oxxo": {"expires_after_days": 3}}

    assert isinstance(client.v1.payment_intents.retrieve(pi.id), stripe.PaymentIntent)
    assert pi.id.startswith("pi_") and pi.client_secret.startswith(f"{pi.id}_secret_")
    assert (pi.status, pi.amount, pi.amount_received, pi.currency) == (
        "requires_action",
        45000,
        0,
        "mxn",
    )
    assert pi.payment_method_types == ["oxxo"] and pi.payment_method.startswith("pm_")
    assert pi.customer is None and pi.latest_charge is None and pi.livemode is False
    assert pi.metadata["account"] == "ACC-0001"
    details = pi.next_action.oxxo_display_details
    assert pi.next_action.type == "oxxo_display_details"
    assert len(details.number) == 18 and details.number.isdigit()
    assert details.hosted_voucher_url == f"{stub.url}/vouchers/{pi.id}"
    assert 2 * 86400 < details.expires_after - pi.created <= 4 * 86400
    assert httpx.get(details.hosted_voucher_url).status_code == 200
    assert stub.created == 1


def test_voucher_expires_at_the_end_of_its_last_day_in_mexico_city() -> None:
    with StripeStub(api_key=API_KEY, clock=lambda: NOON) as stub:
        client: Any = stripe.StripeClient(
            API_KEY, base_addresses={"api": stub.url}, max_network_retries=0
        )
        pi = client.v1.payment_intents.create(params=oxxo_params())
        assert pi.created == int(NOON)
        expires = dt.datetime(2026, 11, 26, 23, 59, 59, tzinfo=ZoneInfo("America/Mexico_City"))
        assert pi.next_action.oxxo_display_details.expires_after == int(expires.timestamp())
        assert stub.requests[-1].headers["idempotency-key"]  # the SDK always sends one on POST


def test_idempotent_replay_and_conflict(stub: StripeStub, client: Any) -> None:
    options = {"idempotency_key": "plan-7-installment-2"}
    first = client.v1.payment_intents.create(params=oxxo_params(), options=options)
    again = client.v1.payment_intents.create(params=oxxo_params(), options=options)

    assert again.id == first.id
    assert again.next_action.oxxo_display_details.number == (
        first.next_action.oxxo_display_details.number
    )
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert stub.created == 1 and [r.replayed for r in stub.requests] == [False, True]

    with pytest.raises(stripe.IdempotencyError) as conflict:
        client.v1.payment_intents.create(params=oxxo_params(amount=46000), options=options)
    assert conflict.value.http_status == 400
    assert "same parameters" in conflict.value.user_message
    assert stub.created == 1 and len(stub.payment_intents) == 1

    # A request refused by validation stores nothing: the key can be used again.
    options = {"idempotency_key": "plan-7-installment-3"}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create(params=oxxo_params(amount=500), options=options)
    client.v1.payment_intents.create(params=oxxo_params(), options=options)
    assert stub.created == 2


@pytest.mark.parametrize(
    ("overrides", "param", "code"),
    [
        (
            {"payment_method_data": {"type": "oxxo", "billing_details": {"name": "Deudor"}}},
            "payment_method_data[billing_details][email]",
            "parameter_missing",
        ),
        (
            {"payment_method_data": {"type": "oxxo", "billing_details": {"email": "a@b.mx"}}},
            "payment_method_data[billing_details][name]",
            "parameter_missing",
        ),
        ({"amount": 999}, "amount", "amount_too_small"),
        ({"amount": 1000001}, "amount", "amount_too_large"),
        (
            {"payment_method_options": {"oxxo": {"expires_after_days": 8}}},
            "payment_method_options[oxxo][expires_after_days]",
            "parameter_invalid_integer",
        ),
        (
            {"payment_method_options": {"oxxo": {"expires_after_days": 0}}},
            "payment_method_options[oxxo][expires_after_days]",
            "parameter_invalid_integer",
        ),
        ({"customer": "cus_nobody"}, "customer", "resource_missing"),
    ],
)
def test_oxxo_refusals(
    stub: StripeStub, client: Any, overrides: dict[str, Any], param: str, code: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.create(params=oxxo_params(**overrides))
    assert refused.value.http_status == 400
    assert (refused.value.param, refused.value.code) == (param, code)
    assert refused.value.error is not None and refused.value.error.type == "invalid_request_error"
    assert stub.created == 0 and stub.requests[-1].status == 400


def test_the_edges_of_the_oxxo_range_are_accepted(client: Any) -> None:
    for amount in (1000, 1000000):
        pi = client.v1.payment_intents.create(params=oxxo_params(amount=amount))
        assert pi.amount == amount
    for days in (1, 7):
        options = {"oxxo": {"expires_after_days": days}}
        client.v1.payment_intents.create(params=oxxo_params(payment_method_options=options))


def test_unknown_payment_method_type_is_refused(client: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.create(params=oxxo_params(payment_method_types=["pix"]))
    assert refused.value.http_status == 400 and "pix" in refused.value.user_message


def test_spei_bank_transfer_gets_one_valid_clabe_per_customer(
    stub: StripeStub, client: Any
) -> None:
    customer = client.v1.customers.create(
        params={
            "name": "Deudor Prueba",
            "email": "deudor@example.mx",
            "phone": "+525512340001",
            "metadata": {"account": "ACC-0001"},
        }
    )
    assert isinstance(customer, stripe.Customer)
    assert customer.id.startswith("cus_") and customer.object == "customer"
    assert (customer.name, customer.phone) == ("Deudor Prueba", "+525512340001")
    assert customer.metadata is not None and customer.metadata.to_dict() == {"account": "ACC-0001"}
    assert stub.requests[-1].params["metadata"] == {"account": "ACC-0001"}

    pi = client.v1.payment_intents.create(params=spei_params(customer.id))
    raw_keys = [key for key, _ in parse_qsl(stub.requests[-1].raw)]
    assert "payment_method_options[customer_balance][bank_transfer][type]" in raw_keys
    assert pi.status == "requires_action" and pi.customer == customer.id
    instructions = pi.next_action.display_bank_transfer_instructions
    assert pi.next_action.type == "display_bank_transfer_instructions"
    assert (instructions.amount_remaining, instructions.currency, instructions.type) == (
        250000,
        "mxn",
        "mx_bank_transfer",
    )
    assert len(instructions.reference) == 7
    assert instructions.hosted_instructions_url == f"{stub.url}/instructions/{pi.id}"
    assert httpx.get(instructions.hosted_instructions_url).status_code == 200
    (address,) = instructions.financial_addresses
    assert address.type == "spei" and address.supported_networks == ["spei"]
    assert (address.spei.bank_code, address.spei.bank_name) == ("012", "BBVA MEXICO")
    clabe = address.spei.clabe
    assert len(clabe) == 18 and clabe.startswith("012") and is_valid_clabe(clabe)

    second = client.v1.payment_intents.create(params=spei_params(customer.id, amount=100000))
    spei = second.next_action.display_bank_transfer_instructions.financial_addresses[0].spei
    assert spei.clabe == clabe and second.id != pi.id

    other = client.v1.customers.create(params={"name": "Otra Persona"})
    third = client.v1.payment_intents.create(params=spei_params(other.id))
    other_clabe = third.next_action.display_bank_transfer_instructions.financial_addresses[0]
    assert other_clabe.spei.clabe != clabe and is_valid_clabe(other_clabe.spei.clabe)
    assert stub.created == 5


def test_spei_without_a_customer_is_refused(client: Any) -> None:
    params = spei_params("cus_x")
    del params["customer"]
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.create(params=params)
    assert (refused.value.param, refused.value.code) == ("customer", "parameter_missing")


def test_clabe_check_digit_matches_banxico() -> None:
    assert clabe_with_check_digit("03218000011835971") == "032180000118359719"
    assert is_valid_clabe(clabe_with_check_digit("01218000123456789"))


def test_retrieve_and_resource_missing(stub: StripeStub, client: Any) -> None:
    pi = client.v1.payment_intents.create(params=oxxo_params())
    fetched = client.v1.payment_intents.retrieve(pi.id)
    assert fetched.id == pi.id and fetched.status == "requires_action"
    assert (
        stub.requests[-1].method == "GET"
        and stub.requests[-1].path == f"/v1/payment_intents/{pi.id}"
    )

    stub.event(pi.id, "payment_intent.succeeded")
    paid = client.v1.payment_intents.retrieve(pi.id)
    assert (paid.status, paid.amount_received, paid.next_action) == ("succeeded", 45000, None)
    assert paid.latest_charge.startswith("ch_")

    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payment_intents.retrieve("pi_doesnotexist")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    assert httpx.get(f"{stub.url}/vouchers/pi_doesnotexist").status_code == 404


def test_a_wrong_api_key_is_refused(stub: StripeStub) -> None:
    wrong = stripe.StripeClient(
        "sk_test_someoneelse", base_addresses={"api": stub.url}, max_network_retries=0
    )
    with pytest.raises(stripe.AuthenticationError) as refused:
        wrong.v1.customers.create(params={"name": "X"})
    assert refused.value.http_status == 401
    assert refused.value.error is not None and refused.value.error.code == "api_key_invalid"
    assert "Invalid API Key provided" in refused.value.user_message
    assert "someoneelse" not in refused.value.user_message  # masked, as Stripe does
    assert stub.created == 0
    response = httpx.post(f"{stub.url}/v1/customers", data={"name": "X"})
    assert response.status_code == 401 and response.json()["error"]["type"] == (
        "invalid_request_error"
    )


def test_events_move_the_payment_intent_on(stub: StripeStub, client: Any) -> None:
    pi = client.v1.payment_intents.create(params=oxxo_params())
    body = stub.event(pi.id, "payment_intent.payment_failed", created=1_800_000_000)
    event = json.loads(body)
    assert {k: event[k] for k in ("object", "type", "created", "livemode", "api_version")} == {
        "object": "event",
        "type": "payment_intent.payment_failed",
        "created": 1_800_000_000,
        "livemode": False,
        "api_version": API_VERSION,
    }
    assert event["id"].startswith("evt_") and event["pending_webhooks"] == 1
    assert event["request"] == {"id": None, "idempotency_key": None}
    failed = event["data"]["object"]
    assert failed["id"] == pi.id and failed["status"] == "requires_payment_method"
    assert failed["last_payment_error"]["code"] == "payment_intent_payment_attempt_expired"
    assert failed["next_action"] is None
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"

    other = client.v1.payment_intents.create(params=oxxo_params())
    canceled = json.loads(stub.event(other.id, "payment_intent.canceled"))["data"]["object"]
    assert (canceled["status"], canceled["cancellation_reason"]) == ("canceled", "abandoned")
    assert (
        abs(json.loads(stub.event(other.id, "payment_intent.canceled"))["created"] - time.time())
        < 5
    )

    customer = client.v1.customers.create(params={"name": "Deudor"})
    transfer = client.v1.payment_intents.create(params=spei_params(customer.id))
    partial = json.loads(stub.event(transfer.id, "payment_intent.partially_funded", funded=50000))
    funded = partial["data"]["object"]
    remaining = funded["next_action"]["display_bank_transfer_instructions"]["amount_remaining"]
    assert (funded["status"], funded["amount_received"], remaining) == (
        "requires_action",
        0,
        200000,
    )
    short = json.loads(stub.event(transfer.id, "payment_intent.succeeded", amount_received=240000))
    assert short["data"]["object"]["amount_received"] == 240000

    # The event parses as an Event through the SDK, with a valid signature.
    parsed = stripe.Webhook.construct_event(body, sign(body, SECRET), SECRET)
    assert isinstance(parsed, stripe.Event) and parsed.data.object.id == pi.id


def test_signatures_verify_with_the_sdk_and_tampering_does_not() -> None:
    body = json.dumps({"id": "evt_1", "object": "event"}).encode()
    header = sign(body, SECRET)
    assert header.startswith("t=") and header.count("v1=") == 1
    assert stripe.WebhookSignature.verify_header(body, header, SECRET, tolerance=300)

    tampered = body.replace(b"evt_1", b"evt_2")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(tampered, header, SECRET, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body, header, "whsec_other", tolerance=300)
    stale = sign(body, SECRET, timestamp=int(time.time()) - 301)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.WebhookSignature.verify_header(body, stale, SECRET, tolerance=300)

    # During a rotation Stripe signs with every active secret: either verifies.
    rotating = sign(body, ["whsec_old", SECRET], timestamp=1_800_000_000)
    assert rotating.startswith("t=1800000000,v1=") and rotating.count("v1=") == 2
    for secret in ("whsec_old", SECRET):
        assert stripe.WebhookSignature.verify_header(body, rotating, secret)


class _Receiver:
    """A webhook endpoint verifying like our gateway would, to see what ``deliver`` sends."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers.items()), body))
                try:
                    stripe.Webhook.construct_event(body, self.headers["Stripe-Signature"], SECRET)
                    status = 200
                except stripe.SignatureVerificationError:
                    status = 400
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"


def test_deliver_posts_a_signed_event(stub: StripeStub, client: Any) -> None:
    receiver = _Receiver()
    try:
        pi = client.v1.payment_intents.create(params=oxxo_params())
        body = stub.event(pi.id, "payment_intent.succeeded")
        assert stub.deliver(receiver.url, body, [SECRET]).status_code == 200
        assert stub.deliver(receiver.url, body, "whsec_wrong").status_code == 400
        assert stub.deliver(receiver.url, body, SECRET, timestamp=1_000).status_code == 400
        headers, received = receiver.received[0]
        assert received == body and headers["Content-Type"] == "application/json"
        assert headers["Stripe-Signature"].startswith("t=")
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def test_form_parsing() -> None:
    pairs = [
        ("payment_method_types[0]", "oxxo"),
        ("payment_method_types[1]", "card"),
        ("a[b][c]", "1"),
        ("items[1][x]", "second"),
        ("items[0][x]", "first"),
    ]
    assert parse_form(pairs) == {
        "payment_method_types": ["oxxo", "card"],
        "a": {"b": {"c": "1"}},
        "items": [{"x": "first"}, {"x": "second"}],
    }


def test_concurrent_retries_with_one_key_create_once(stub: StripeStub, client: Any) -> None:
    ids: list[str] = []

    def create() -> None:
        pi = client.v1.payment_intents.create(
            params=oxxo_params(), options={"idempotency_key": "same-everywhere"}
        )
        ids.append(pi.id)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 8 and len(set(ids)) == 1 and stub.created == 1
