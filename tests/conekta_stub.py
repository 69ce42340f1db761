"""A local stand-in for the part of Conekta's REST API (api.conekta.io) our adapter calls.

It follows https://developers.conekta.com/reference (API 2.2.0/2.3.0; conekta-python 9.0.0
sends ``Accept: application/vnd.conekta-v2.3.0+json``) and answers in the shapes that SDK's
pydantic response models parse:

- the private key as ``Authorization: Bearer <key>`` (the SDK's ``access_token``), else 401;
- ``POST /customers``; ``POST /orders`` with one OXXO (``cash``/``oxxo_cash``) or SPEI charge:
  a 14-digit OXXO reference and barcode, or a CLABE of its own (STP, 646) per SPEI charge;
- ``GET /orders/{id}``; ``POST /webhook_keys``; errors in Conekta's envelope
  ``{"object": "error", "type", "log_id", "details": [{"code", "param"?, "message",
  "debug_message"}]}`` (https://developers.conekta.com/reference/errores);
- an ``Idempotency-Key`` header, honoured Stripe-style (Conekta does not document one);
- ``GET /barcodes/{reference}``: the barcode image, a 1x1 PNG, without a key.

Webhooks go the other way: :meth:`ConektaStub.event` moves an order on and returns the event
body; Conekta signs it with an RSA key it keeps and sends the base64 RSA-SHA256 (PKCS#1 v1.5)
signature in a ``digest`` header (https://developers.conekta.com/docs/autenticación-webhooks);
:func:`sign` and :meth:`ConektaStub.digest` make it and :meth:`ConektaStub.deliver` posts
both. It listens on 127.0.0.1 on a free port and records every request, like
tests/stripe_stub.py.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets as random_source
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.local_server import LocalServer

OXXO_MIN, OXXO_MAX = 1000, 1000000  # centavos: MXN 10.00 to MXN 10,000.00
DEFAULT_EXPIRY = 30 * 86400  # seconds, when a charge names no expires_at
CASH_TYPES = ("cash", "oxxo_cash")
_DIGITS = "0123456789"
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" + _DIGITS
_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
_MESSAGES = {  # the user-facing ``message`` by error type (Accept-Language: es, else English)
    "authentication_error": ("Acceso no autorizado.", "Unauthorized access."),
    "parameter_validation_error": ("Los datos enviados no son válidos.", "Invalid parameters."),
    "resource_not_found_error": ("El recurso no existe.", "The resource was not found."),
    "processing_error": ("No se pudo procesar la solicitud.", "The request was not processed."),
    "malformed_request_error": ("La solicitud está mal formada.", "The request is malformed."),
}


@dataclass
class ConektaError(Exception):
    """An error answer in Conekta's envelope; ``code`` is the tail after ``conekta.errors.``."""

    status: int
    kind: str  # the envelope's ``type``
    code: str
    debug_message: str
    param: str | None = None

    def body(self, language: str = "es") -> bytes:
        es, en = _MESSAGES[self.kind]
        detail = {
            "code": f"conekta.errors.{self.code}",
            "message": es if language.lower().startswith("es") else en,
            "debug_message": self.debug_message,
            **({"param": self.param} if self.param is not None else {}),
        }
        envelope = {"object": "error", "type": self.kind, "log_id": _hex(24), "details": [detail]}
        return json.dumps(envelope).encode()


@dataclass
class ConektaRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # the JSON body parsed; None when there is none
    at: float = field(default_factory=time.monotonic)
    raw: bytes = b""
    status: int = 0  # the status answered
    replayed: bool = False  # answered from the idempotency store


def _rand(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(random_source.choice(alphabet) for _ in range(n))


def _hex(n: int) -> str:
    return _rand(n, _DIGITS + "abcdef")


def clabe_with_check_digit(first17: str) -> str:
    """Append the CLABE control digit: weights 3, 7, 1 repeating, each product mod 10."""
    total = sum(int(d) * (3, 7, 1)[i % 3] % 10 for i, d in enumerate(first17))
    return first17 + str((10 - total % 10) % 10)


def _invalid(param: str, message: str, code: str = "parameter_validation.invalid") -> ConektaError:
    return ConektaError(422, "parameter_validation_error", code, message, param)


def _not_found(message: str, param: str | None = None) -> ConektaError:
    return ConektaError(
        404, "resource_not_found_error", "resource_not_found.entity", message, param
    )


def _malformed(message: str) -> ConektaError:
    return ConektaError(400, "malformed_request_error", "malformed_request.json", message)


def _require(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], prefix: str) -> Any:
    value = obj.get(name)
    if value is None or value == "":
        code = "parameter_validation.missing"
        raise _invalid(prefix + name, f"The parameter {prefix + name} is required.", code)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _invalid(prefix + name, f"The parameter {prefix + name} has the wrong type.")
    return value


def sign(body: bytes, private_key: rsa.RSAPrivateKey) -> str:
    """The ``digest`` header value: base64 of the RSA-SHA256 (PKCS#1 v1.5) signature of body."""
    return base64.b64encode(private_key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


class ConektaStub(LocalServer):
    """The recording server; use as a context manager or ``ConektaStub(...).start()``."""

    def __init__(
        self, api_key: str = "key_acuerdo_test", *, clock: Callable[[], float] = time.time
    ) -> None:
        self.api_key = api_key
        self.clock = clock  # unix seconds: created_at, expiry defaults and checks
        self.requests: list[ConektaRequest] = []
        self.created = 0  # objects really created (replays and failures excluded)
        self.customers: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.drop_answers = 0  # the next N requests are handled, their answers never sent
        self.webhook_private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = self.webhook_private_key.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
        self.webhook_public_key_pem: str = pem.decode()  # what POST /webhook_keys answers
        self._references: dict[str, str] = {}  # OXXO reference or CLABE -> "oxxo" | "spei"
        self._idempotent: dict[str, tuple[str, bytes]] = {}  # key -> (request, answer)
        self._lock = threading.RLock()
        super().__init__(self._handler_class())

    # -- the API ---------------------------------------------------------------------------

    def _unique(self, kind: str, make: Callable[[], str]) -> str:
        while (value := make()) in self._references:
            pass
        self._references[value] = kind
        return value

    def _create_customer(self, p: dict[str, Any]) -> dict[str, Any]:
        for name in ("name", "email", "phone"):
            _require(p, name, str, "")
        customer = {
            "id": f"cus_{_rand(17)}", "object": "customer", "livemode": False,
            "created_at": int(self.clock()), "name": p["name"], "email": p["email"],
            "phone": p["phone"], "corporate": bool(p.get("corporate", False)),
            "metadata": p.get("metadata") or {},
        }  # fmt: skip
        self.customers[customer["id"]] = customer
        return customer

    def _customer_info(self, info: Any) -> dict[str, Any]:
        if not isinstance(info, dict):
            message = "The parameter customer_info is required."
            raise _invalid("customer_info", message, "parameter_validation.missing")
        if "customer_id" in info:
            customer = self.customers.get(info["customer_id"])
            if customer is None:
                raise _not_found(f"The customer {info['customer_id']!r} does not exist.")
            fields = {k: customer[k] for k in ("name", "email", "phone")}
            return {"object": "customer_info", **fields, "customer_id": customer["id"]}
        fields = {k: _require(info, k, str, "customer_info.") for k in ("name", "email", "phone")}
        return {"object": "customer_info", **fields, "corporate": bool(info.get("corporate"))}

    def _create_order(self, p: dict[str, Any]) -> dict[str, Any]:
        currency = _require(p, "currency", str, "")
        if currency.upper() != "MXN":
            raise _invalid("currency", f"The currency {currency} is not supported; use MXN.")
        info = self._customer_info(p.get("customer_info"))
        items = _require(p, "line_items", list, "")
        if not items:
            raise _invalid("line_items", "The order needs at least one line item.")
        order_id, now = f"ord_{_rand(17)}", int(self.clock())
        lines = []
        for i, item in enumerate(items):
            prefix = f"line_items.{i}."
            if not isinstance(item, dict):
                raise _invalid(f"line_items.{i}", "A line item must be an object.")
            name = _require(item, "name", str, prefix)
            price, quantity = (_require(item, k, int, prefix) for k in ("unit_price", "quantity"))
            if price < 0 or quantity < 1:
                raise _invalid(prefix + "quantity", "unit_price >= 0 and quantity >= 1, please.")
            lines.append({
                "id": f"line_item_{_rand(17)}", "object": "line_item", "name": name,
                "unit_price": price, "quantity": quantity, "parent_id": order_id,
                "metadata": item.get("metadata") or {}, "antifraud_info": {},
            })  # fmt: skip
        amount = sum(line["unit_price"] * line["quantity"] for line in lines)
        charges = _require(p, "charges", list, "")
        if len(charges) != 1 or not isinstance(charges[0], dict):
            raise _invalid("charges", "This stand-in takes exactly one charge per order.")
        charge_p = charges[0]
        if charge_p.get("amount") not in (None, amount):
            raise _invalid("charges.0.amount", "The charge amount must equal the order amount.")
        method = _require(charge_p, "payment_method", dict, "charges.0.")
        kind = _require(method, "type", str, "charges.0.payment_method.")
        expires_at = method.get("expires_at", now + DEFAULT_EXPIRY)
        param = "charges.0.payment_method.expires_at"
        if not isinstance(expires_at, int) or isinstance(expires_at, bool):
            raise _invalid(param, "expires_at must be a unix timestamp (an integer).")
        if expires_at <= now:
            code = "parameter_validation.expires_at.past"
            raise _invalid(param, "expires_at must be in the future.", code)
        if kind in CASH_TYPES:
            if not OXXO_MIN <= amount <= OXXO_MAX:
                message = f"OXXO takes from {OXXO_MIN} to {OXXO_MAX} centavos, not {amount}."
                raise _invalid("amount", message, "parameter_validation.oxxo.amount")
            reference = self._unique("oxxo", lambda: "93" + _rand(12, _DIGITS))
            payment_method: dict[str, Any] = {
                "type": "oxxo", "object": "cash_payment", "reference": reference,
                "barcode_url": f"{self.url}/barcodes/{reference}", "expires_at": expires_at,
                "service_name": "OxxoPay", "store_name": "OXXO", "product_type": "cash_in",
            }  # fmt: skip
        elif kind == "spei":
            clabe = self._unique(
                "spei", lambda: clabe_with_check_digit("646180" + _rand(11, _DIGITS))
            )
            payment_method = {
                "type": "spei", "object": "bank_transfer_payment", "clabe": clabe, "bank": "STP",
                "receiving_account_number": clabe, "receiving_account_bank": "STP",
                "expires_at": expires_at, "payment_attempts": [],
            }  # fmt: skip
        else:
            message = f"The payment method {kind!r} is not spoken here: cash, oxxo_cash or spei."
            raise _invalid("charges.0.payment_method.type", message)
        charge = {
            "id": _hex(24), "object": "charge", "livemode": False, "created_at": now,
            "amount": amount, "currency": "MXN", "status": "pending_payment",
            "order_id": order_id, "description": "Payment from order", "paid_at": None,
            "payment_method": payment_method,
            **({"reference_id": charge_p["reference_id"]} if "reference_id" in charge_p else {}),
            **({"customer_id": info["customer_id"]} if "customer_id" in info else {}),
        }  # fmt: skip
        order = {
            "id": order_id, "object": "order", "livemode": False, "created_at": now,
            "updated_at": now, "amount": amount, "amount_refunded": 0, "currency": "MXN",
            "payment_status": "pending_payment", "is_refundable": False,
            "processing_mode": "ecommerce", "metadata": p.get("metadata") or {},
            "customer_info": info,
            "line_items": {"object": "list", "has_more": False, "total": len(lines), "data": lines},
            "charges": {"object": "list", "has_more": False, "total": 1, "data": [charge]},
        }  # fmt: skip
        self.orders[order_id] = order
        return order

    def _create_webhook_key(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": _hex(24), "object": "webhook_key", "active": bool(p.get("active", True)),
            "livemode": False, "created_at": int(self.clock()),
            "public_key": self.webhook_public_key_pem,
        }  # fmt: skip

    def _post(self, path: str, body: Any, key: str | None) -> tuple[bytes, bool]:
        """The answer's body, and whether it was replayed for an idempotency key."""
        routes = {"/customers": self._create_customer, "/orders": self._create_order,
                  "/webhook_keys": self._create_webhook_key}  # fmt: skip
        if path not in routes:
            raise _not_found(f"There is no POST {path}.")
        if not isinstance(body, dict):
            raise _malformed("The body must be a JSON object.")
        fingerprint = json.dumps([path, body], sort_keys=True)
        with self._lock:  # one creation at a time: a concurrent retry then replays
            if key is not None and key in self._idempotent:
                first, answer = self._idempotent[key]
                if first != fingerprint:
                    message = f"The Idempotency-Key {key!r} was used with another request."
                    code = "processing.idempotency_key_conflict"
                    raise ConektaError(409, "processing_error", code, message)
                return answer, True
            answer = json.dumps(routes[path](body)).encode()
            self.created += 1
            if key is not None:  # only requests that ran are stored (not failed validations)
                self._idempotent[key] = (fingerprint, answer)
            return answer, False

    def _get(self, path: str, query: str = "") -> bytes:
        if path == "/orders":  # the list, filtered by creation time as the API documents
            since = int(dict(parse_qsl(query)).get("created_at_gte") or 0)
            with self._lock:
                found = [o for o in self.orders.values() if o["created_at"] >= since]
            return json.dumps({"object": "list", "has_more": False, "data": found}).encode()
        order_id = path.removeprefix("/orders/")
        with self._lock:
            if order_id == path or order_id not in self.orders:
                raise _not_found(f"The resource {path} was not found.", "id")
            return json.dumps(self.orders[order_id]).encode()

    # -- webhooks back ---------------------------------------------------------------------

    def event(
        self,
        order_id: str,
        type: str,
        *,
        created_at: int | None = None,
        paid_amount: int | None = None,
    ) -> bytes:
        """Move the order (and its charge) on as ``type`` says; return the event's JSON body.

        ``order.paid`` with ``paid_amount`` records ``amount_paid`` on the order (a field the
        SDK's OrderResponse does not have). ``charge.refunded`` refunds a paid charge in full;
        its ``data.object`` is the charge, as Conekta sends charge events.
        """
        with self._lock:
            order = self.orders[order_id]
            charge = order["charges"]["data"][0]
            now = int(self.clock())
            previous: dict[str, Any] = {
                "payment_status": order["payment_status"], "updated_at": order["updated_at"],
            }  # fmt: skip
            subject = order
            if type == "order.paid":
                order["payment_status"] = charge["status"] = "paid"
                charge["paid_at"] = now
                order["amount_paid"] = order["amount"] if paid_amount is None else paid_amount
                order["is_refundable"] = True
            elif type in ("order.expired", "order.canceled"):
                order["payment_status"] = charge["status"] = type.removeprefix("order.")
            elif type == "charge.refunded":
                if charge["status"] != "paid":
                    raise ValueError(f"charge {charge['id']} is {charge['status']}, not paid")
                previous = {"status": charge["status"]}
                refund = {
                    "id": _hex(24), "object": "refund", "amount": -charge["amount"],
                    "created_at": now, "status": "pending",
                }  # fmt: skip
                charge["status"] = order["payment_status"] = "refunded"
                charge["refunds"] = {"object": "list", "has_more": False, "data": [refund]}
                order["amount_refunded"], order["is_refundable"] = charge["amount"], False
                subject = charge
            else:
                raise ValueError(f"the stand-in does not emit {type}")
            order["updated_at"] = now
            event = {
                "id": _hex(24), "object": "event", "type": type, "livemode": False,
                "created_at": now if created_at is None else created_at,
                "webhook_status": "pending", "webhook_logs": [],
                "data": {"object": copy.deepcopy(subject), "previous_attributes": previous},
            }  # fmt: skip
            self.events.append(event)
        return json.dumps(event).encode()

    def digest(self, body: bytes) -> str:
        """The ``digest`` header Conekta would send with ``body``."""
        return sign(body, self.webhook_private_key)

    def deliver(self, url: str, body: bytes, digest: str | None = None) -> httpx.Response:
        """POST an event body to ``url`` as Conekta delivers to a webhook (``digest`` signed)."""
        signature = self.digest(body) if digest is None else digest
        headers = {"Content-Type": "application/json", "digest": signature}
        return httpx.post(url, content=body, headers=headers, timeout=10.0)

    # -- HTTP ------------------------------------------------------------------------------

    def _authorized(self, header: str) -> None:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer":  # the SDK's ``access_token``
            credential = ""
        if credential != self.api_key:  # Conekta's codes for an unknown and a missing key
            code, message = (
                ("authentication.unrecognized_key", "Unrecognized access key.")
                if credential
                else ("authentication.missing_key", "Please include your access key.")
            )
            raise ConektaError(401, "authentication_error", code, message)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # a connection per request, as in tests/stripe_stub.py

            def log_message(self, *_args: Any) -> None:
                pass

            def _send(self, status: int, raw: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self, method: str) -> None:
                path, query = urlsplit(self.path).path, urlsplit(self.path).query
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw  # kept as bytes: answered 400 below
                record = ConektaRequest(method, path, headers, body, raw=raw)
                with stub._lock:
                    stub.requests.append(record)
                reference = path.removeprefix("/barcodes/")
                if method == "GET" and reference != path:  # the barcode image, no key
                    found = stub._references.get(reference) == "oxxo"
                    record.status = 200 if found else 404
                    self._send(record.status, _PNG if found else b"", "image/png")
                    return
                try:
                    stub._authorized(headers.get("authorization", ""))
                    if isinstance(body, bytes):
                        raise _malformed("The body is not JSON.")
                    if method == "GET":
                        status, answer = 200, stub._get(path, query)
                    else:
                        key = headers.get("idempotency-key")
                        status, (answer, record.replayed) = 200, stub._post(path, body, key)
                except ConektaError as error:
                    status, answer = error.status, error.body(headers.get("accept-language", "es"))
                record.status = status
                with stub._lock:
                    lost, stub.drop_answers = stub.drop_answers > 0, max(0, stub.drop_answers - 1)
                if lost:  # done at Conekta, the answer lost on the way: close without one
                    self.close_connection = True
                    return
                self._send(status, answer, "application/json; charset=utf-8")

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                self._handle("POST")

        return Handler
