"""The Conekta stand-in (tests/conekta_stub.py) driven by the real conekta-python 9 SDK.

These tests pin what the SDK puts on the wire (JSON body, headers) and that the stand-in's
answers parse through the SDK's own pydantic response models (OrderResponse and the oneOf
wrappers of a charge's payment method, CustomerResponse, Error, WebhookKeyCreateResponse,
EventResponse), so an adapter tested against the stand-in talks to api.conekta.io the same
way. They also pin how the SDK fails: ApiException subclasses for HTTP errors, bare urllib3
exceptions for a lost connection.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import conekta
import httpx
import pytest
import urllib3
from conekta.exceptions import (
    ConflictException,
    NotFoundException,
    UnauthorizedException,
    UnprocessableEntityException,
)
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from bot.payments.check_digits import clabe_check_digit, is_valid_clabe
from tests.conekta_stub import ConektaStub, clabe_with_check_digit, sign

API_KEY = "key_acuerdo_test"
DAY = 86400


@pytest.fixture
def stub() -> Iterator[ConektaStub]:
    with ConektaStub(api_key=API_KEY) as server:
        yield server


def client(stub: ConektaStub, key: str | None = API_KEY, **config: Any) -> conekta.ApiClient:
    return conekta.ApiClient(conekta.Configuration(host=stub.url, access_token=key, **config))


@pytest.fixture
def orders(stub: ConektaStub) -> conekta.OrdersApi:
    return conekta.OrdersApi(client(stub))


def order_request(
    kind: str = "cash",
    *,
    amount: int = 45000,
    expires_at: int | None = None,
    customer_id: str | None = None,
    currency: str = "MXN",
) -> conekta.OrderRequest:
    """What our adapter will send: one line item, one OXXO or SPEI charge, our metadata."""
    info = (
        conekta.CustomerInfoCustomerId(customer_id=customer_id)
        if customer_id
        else conekta.CustomerInfo(
            name="Deudor Prueba", email="deudor@example.mx", phone="5511111111"
        )
    )
    method = conekta.PaymentMethodGeneralRequest(
        type=kind, expires_at=int(time.time()) + 3 * DAY if expires_at is None else expires_at
    )
    return conekta.OrderRequest(
        currency=currency,
        customer_info=conekta.OrderRequestCustomerInfo(info),
        line_items=[conekta.Product(name="Pago ACC-0001", unit_price=amount, quantity=1)],
        charges=[conekta.ChargeRequest(payment_method=conekta.ChargeRequestPaymentMethod(method))],
        metadata={"account": "ACC-0001", "plan": "7"},
    )


def created_id(orders: conekta.OrdersApi, request: conekta.OrderRequest) -> str:
    order_id = orders.create_order(request).id
    assert order_id is not None
    return order_id


def payment_method(order: conekta.OrderResponse) -> Any:
    """The charge's payment method, unwrapped from the SDK's oneOf wrapper."""
    assert order.charges is not None and order.charges.data
    wrapper = order.charges.data[0].payment_method
    assert isinstance(wrapper, conekta.ChargeResponsePaymentMethod)
    return wrapper.actual_instance


@pytest.mark.parametrize("kind", ["cash", "oxxo_cash"])
def test_an_oxxo_order_parses_into_the_sdk_models(
    stub: ConektaStub, orders: conekta.OrdersApi, kind: str
) -> None:
    expires_at = int(time.time()) + 3 * DAY
    order = orders.create_order(order_request(kind, expires_at=expires_at), accept_language="es")

    assert isinstance(order, conekta.OrderResponse)
    assert order.id and order.id.startswith("ord_") and order.object == "order"
    assert (order.amount, order.currency, order.payment_status) == (45000, "MXN", "pending_payment")
    assert order.metadata == {"account": "ACC-0001", "plan": "7"} and order.livemode is False
    assert order.customer_info and order.customer_info.name == "Deudor Prueba"
    assert (
        order.line_items and order.line_items.data and order.line_items.data[0].unit_price == 45000
    )
    assert order.charges and order.charges.data
    charge = order.charges.data[0]
    assert isinstance(charge, conekta.ChargesDataResponse)
    assert (charge.status, charge.amount, charge.order_id) == ("pending_payment", 45000, order.id)
    cash = payment_method(order)
    assert isinstance(cash, conekta.PaymentMethodCash)
    assert (cash.type, cash.object, cash.service_name) == ("oxxo", "cash_payment", "OxxoPay")
    assert cash.reference and len(cash.reference) == 14 and cash.reference.isdigit()
    assert cash.barcode_url == f"{stub.url}/barcodes/{cash.reference}"
    assert cash.expires_at == expires_at

    barcode = httpx.get(cash.barcode_url)  # served without a key, like Conekta's barcode host
    assert barcode.status_code == 200 and barcode.content.startswith(b"\x89PNG")
    assert httpx.get(f"{stub.url}/barcodes/93000000000000").status_code == 404

    sent = stub.requests[0]
    assert (sent.method, sent.path, sent.status) == ("POST", "/orders", 200)
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["accept"] == "application/vnd.conekta-v2.3.0+json"  # not 2.2.0
    assert sent.headers["accept-language"] == "es"
    assert "idempotency-key" not in sent.headers  # the SDK never sends one by itself
    assert sent.body == {
        "currency": "MXN",
        "customer_info": {
            "name": "Deudor Prueba",
            "email": "deudor@example.mx",
            "phone": "5511111111",
        },
        "line_items": [{"name": "Pago ACC-0001", "unit_price": 45000, "quantity": 1}],
        "charges": [{"payment_method": {"type": kind, "expires_at": expires_at}}],
        "metadata": {"account": "ACC-0001", "plan": "7"},
    }

    again = orders.get_order_by_id(order.id, accept_language="es")
    assert again.id == order.id and payment_method(again).reference == cash.reference


def test_a_spei_order_for_a_customer_gets_a_clabe_of_its_own(
    stub: ConektaStub, orders: conekta.OrdersApi
) -> None:
    customers = conekta.CustomersApi(client(stub))
    person = conekta.Customer(
        name="Deudor Prueba", email="deudor@example.mx", phone="+525511111111", metadata={"a": "1"}
    )
    customer = customers.create_customer(person, accept_language="es")
    assert isinstance(customer, conekta.CustomerResponse)
    assert customer.id.startswith("cus_") and customer.object == "customer"
    assert (customer.name, customer.metadata, customer.livemode) == (
        "Deudor Prueba",
        {"a": "1"},
        False,
    )

    first = orders.create_order(order_request("spei", amount=250000, customer_id=customer.id))
    second = orders.create_order(order_request("spei", amount=250000, customer_id=customer.id))
    assert first.customer_info and first.customer_info.customer_id == customer.id
    assert first.customer_info.email == "deudor@example.mx"
    spei = payment_method(first)
    assert isinstance(spei, conekta.PaymentMethodBankTransfer)
    assert (spei.type, spei.object, spei.bank) == ("spei", "bank_transfer_payment", "STP")
    assert spei.clabe and spei.clabe.startswith("646") and is_valid_clabe(spei.clabe)
    assert spei.receiving_account_number == spei.clabe and spei.receiving_account_bank == "STP"
    assert spei.expires_at and spei.expires_at > time.time()
    assert payment_method(second).clabe != spei.clabe  # one CLABE per charge, not per customer
    assert stub.created == 3


def test_the_clabe_check_digit_agrees_with_the_repository_s() -> None:
    assert clabe_with_check_digit("03218000011835971") == "032180000118359719"
    for first17 in ("64618011180503423", "00000000000000000", "99999999999999999"):
        assert clabe_with_check_digit(first17)[-1] == str(clabe_check_digit(first17))


def test_a_wrong_or_missing_key_is_a_401(stub: ConektaStub) -> None:
    with pytest.raises(conekta.ApiException) as wrong:
        conekta.OrdersApi(client(stub, "key_wrong")).create_order(order_request())
    assert isinstance(wrong.value, UnauthorizedException) and wrong.value.status == 401
    error = wrong.value.data
    assert isinstance(error, conekta.Error)  # the envelope parsed by the SDK's Error model
    assert (error.object, error.type) == ("error", "authentication_error") and error.log_id
    assert (
        error.details and error.details[0].code == "conekta.errors.authentication.unrecognized_key"
    )

    with pytest.raises(UnauthorizedException) as missing:  # no access_token at all
        conekta.OrdersApi(client(stub, None)).get_order_by_id("ord_x")
    assert "authorization" not in stub.requests[-1].headers
    assert isinstance(missing.value.data, conekta.Error) and missing.value.data.details
    assert missing.value.data.details[0].code == "conekta.errors.authentication.missing_key"
    assert stub.created == 0


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (
            lambda: order_request(expires_at=int(time.time()) - 60),
            "charges.0.payment_method.expires_at",
        ),
        (lambda: order_request(amount=500), "amount"),
        (lambda: order_request(amount=1000001), "amount"),
        (lambda: order_request(currency="USD"), "currency"),
        (lambda: order_request("card"), "charges.0.payment_method.type"),
    ],
)
def test_validation_errors_are_422s_naming_the_param(
    stub: ConektaStub, orders: conekta.OrdersApi, request_: Any, param: str
) -> None:
    with pytest.raises(UnprocessableEntityException) as caught:
        orders.create_order(request_())
    assert caught.value.status == 422
    error = caught.value.data
    assert isinstance(error, conekta.Error) and error.type == "parameter_validation_error"
    assert error.details and error.details[0].param == param
    assert error.details[0].message == "Los datos enviados no son válidos."
    assert stub.created == 0 and not stub.orders


def test_an_unknown_order_or_customer_is_a_404(
    stub: ConektaStub, orders: conekta.OrdersApi
) -> None:
    with pytest.raises(NotFoundException) as caught:
        orders.get_order_by_id("ord_unknown")
    assert caught.value.status == 404 and isinstance(caught.value.data, conekta.Error)
    assert caught.value.data.type == "resource_not_found_error"
    with pytest.raises(NotFoundException):
        orders.create_order(order_request(customer_id="cus_unknown"))


def test_an_idempotency_key_replays_the_first_answer(
    stub: ConektaStub, orders: conekta.OrdersApi
) -> None:
    request = order_request()
    first = orders.create_order(request, _headers={"Idempotency-Key": "acuerdo-plan-7"})
    again = orders.create_order(request, _headers={"Idempotency-Key": "acuerdo-plan-7"})
    assert (
        again.id == first.id and payment_method(again).reference == payment_method(first).reference
    )
    assert stub.created == 1 and [r.replayed for r in stub.requests] == [False, True]
    assert stub.requests[1].headers["idempotency-key"] == "acuerdo-plan-7"

    with pytest.raises(ConflictException) as caught:  # same key, another body
        orders.create_order(
            order_request(amount=46000), _headers={"Idempotency-Key": "acuerdo-plan-7"}
        )
    assert caught.value.status == 409 and caught.value.data is None  # 409 is not in the map
    conflict = conekta.Error.from_json(caught.value.body or "")  # the adapter parses the body
    assert conflict and conflict.type == "processing_error" and conflict.details
    assert conflict.details[0].code == "conekta.errors.processing.idempotency_key_conflict"

    orders.create_order(request)  # without a key every call creates
    assert stub.created == 2


def test_a_lost_answer_surfaces_as_a_bare_urllib3_error(
    stub: ConektaStub, orders: conekta.OrdersApi
) -> None:
    request, key = order_request(), {"Idempotency-Key": "acuerdo-plan-8"}
    stub.drop_answers = 1
    with pytest.raises(urllib3.exceptions.ProtocolError):  # POST: not retried, not wrapped
        orders.create_order(request, _headers=key)
    assert stub.created == 1  # created at Conekta all the same
    replay = orders.create_order(request, _headers=key)  # the retry with the key is safe
    assert replay.id in stub.orders and stub.created == 1

    stub.drop_answers = 1  # GET: urllib3's default Retry(3) silently asks again
    assert orders.get_order_by_id(replay.id).id == replay.id
    assert [r.method for r in stub.requests[-2:]] == ["GET", "GET"]
    stub.drop_answers = 1
    with pytest.raises(urllib3.exceptions.ProtocolError):
        conekta.OrdersApi(client(stub, retries=False)).get_order_by_id(replay.id)
    stub.drop_answers = 4
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        orders.get_order_by_id(replay.id)
    assert stub.drop_answers == 0


def test_a_stopped_server_is_a_max_retry_error() -> None:
    server = ConektaStub(api_key=API_KEY).start()
    server.stop()
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        conekta.OrdersApi(client(server)).get_order_by_id("ord_x", _request_timeout=2.0)


def test_the_webhook_key_and_the_digest_verify(
    stub: ConektaStub, orders: conekta.OrdersApi
) -> None:
    key = conekta.WebhookKeysApi(client(stub)).create_webhook_key(
        webhook_key_request=conekta.WebhookKeyRequest(active=True)
    )
    assert isinstance(key, conekta.WebhookKeyCreateResponse)
    assert (key.object, key.active, key.livemode) == ("webhook_key", True, False)
    assert key.public_key == stub.webhook_public_key_pem
    public_key = load_pem_public_key(key.public_key.encode())
    assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == 2048

    order_id = created_id(orders, order_request())
    body = stub.event(order_id, "order.paid")
    signature = stub.digest(body)
    assert signature == sign(body, stub.webhook_private_key)  # PKCS#1 v1.5 is deterministic
    public_key.verify(base64.b64decode(signature), body, padding.PKCS1v15(), hashes.SHA256())
    tampered = body.replace(b'"paid"', b'"pending_payment"', 1)
    with pytest.raises(InvalidSignature):
        public_key.verify(
            base64.b64decode(signature), tampered, padding.PKCS1v15(), hashes.SHA256()
        )


def test_order_paid_moves_the_order_and_parses_through_the_sdk(
    stub: ConektaStub, orders: conekta.OrdersApi
) -> None:
    order_id = created_id(orders, order_request())
    body = stub.event(order_id, "order.paid", created_at=1_800_000_000, paid_amount=45000)
    event = conekta.EventResponse.from_json(body.decode())
    assert event is not None and (event.object, event.type) == ("event", "order.paid")
    assert event.created_at == 1_800_000_000 and event.livemode is False
    assert event.webhook_status == "pending" and event.id and len(event.id) == 24
    assert event.data and event.data["previous_attributes"]["payment_status"] == "pending_payment"
    paid = conekta.OrderResponse.from_dict(event.data["object"])
    assert paid is not None and paid.id == order_id and paid.payment_status == "paid"
    assert paid.charges and paid.charges.data and paid.charges.data[0].status == "paid"
    assert (
        paid.charges.data[0].paid_at and json.loads(body)["data"]["object"]["amount_paid"] == 45000
    )
    assert orders.get_order_by_id(order_id).payment_status == "paid"  # the API agrees

    refunded = json.loads(stub.event(order_id, "charge.refunded"))
    charge = conekta.ChargeResponse.from_dict(refunded["data"]["object"])
    assert charge is not None and charge.status == "refunded" and charge.order_id == order_id
    assert charge.refunds and charge.refunds.data and charge.refunds.data[0].amount == -45000
    assert refunded["data"]["previous_attributes"] == {"status": "paid"}
    assert orders.get_order_by_id(order_id).amount_refunded == 45000


@pytest.mark.parametrize("kind", ["expired", "canceled"])
def test_order_expired_and_canceled(
    stub: ConektaStub, orders: conekta.OrdersApi, kind: str
) -> None:
    order_id = created_id(orders, order_request("spei"))
    event = json.loads(stub.event(order_id, f"order.{kind}"))
    lapsed = conekta.OrderResponse.from_dict(event["data"]["object"])
    assert lapsed is not None and lapsed.payment_status == kind
    assert lapsed.charges and lapsed.charges.data and lapsed.charges.data[0].status == kind
    with pytest.raises(ValueError):  # nothing was paid, so nothing can be refunded
        stub.event(order_id, "charge.refunded")
    with pytest.raises(ValueError):
        stub.event(order_id, "charge.created")


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def test_deliver_posts_the_body_with_its_digest(
    stub: ConektaStub, orders: conekta.OrdersApi
) -> None:
    order_id = created_id(orders, order_request())
    body = stub.event(order_id, "order.expired")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/conekta"
        assert stub.deliver(url, body).status_code == 200
        assert stub.deliver(url, body, digest="Zm9yZ2Vk").status_code == 200
    finally:
        server.shutdown()
        server.server_close()
    (headers, received), (forged, _) = _Receiver.received[-2:]
    assert received == body and headers["content-type"] == "application/json"
    assert headers["digest"] == stub.digest(body) and forged["digest"] == "Zm9yZ2Vk"
