"""A local stand-in for the part of Stripe's REST API (api.stripe.com) our adapter calls.

It speaks what the official SDK sends (form-encoded bodies with bracket nesting, a bearer API
key, ``Idempotency-Key``) and answers in Stripe's documented shapes:

- ``POST /v1/customers``;
- ``POST /v1/payment_intents`` confirmed at creation, for OXXO vouchers
  (https://docs.stripe.com/payments/oxxo/accept-a-payment) and SPEI bank transfers through
  the customer balance (https://docs.stripe.com/payments/bank-transfers): one CLABE with a
  valid 3-7-1 check digit per customer, as Stripe assigns one virtual account per customer;
- ``GET /v1/payment_intents/{id}``; errors in Stripe's envelope
  ``{"error": {"type", "message", "code"?, "param"?}}``;
- idempotent replays and conflicts (https://docs.stripe.com/api/idempotent_requests);
- ``GET /vouchers/{id}`` and ``GET /instructions/{id}``: the hosted pages, as tiny HTML.

Webhooks go the other way: :meth:`StripeStub.event` moves a PaymentIntent on (paid, expired,
canceled, partially funded) and returns the Event body; :func:`sign` makes the
``Stripe-Signature`` header (https://docs.stripe.com/webhooks#verify-manually) and
:meth:`StripeStub.deliver` posts both to a URL. It listens on 127.0.0.1 on a free port and
records every request, like ``tests/graph_stub.py``.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets as random_source
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import httpx

from tests.local_server import LocalServer

API_VERSION = "2026-10-28.endive"  # what stripe-python 16.1.0 pins (its Stripe-Version header)
MEXICO_CITY = ZoneInfo("America/Mexico_City")
OXXO_MIN, OXXO_MAX = 1000, 1000000  # centavos: MXN 10.00 to MXN 10,000.00
_INT_FIELDS = {"amount", "expires_after_days"}
_BOOL_FIELDS = {"confirm"}
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@dataclass
class StripeError(Exception):
    """An error answer in Stripe's envelope."""

    message: str
    param: str | None = None
    code: str | None = None
    status: int = 400
    kind: str = "invalid_request_error"  # the envelope's ``type``

    def body(self) -> bytes:
        extra = {k: v for k, v in (("code", self.code), ("param", self.param)) if v is not None}
        return json.dumps({"error": {"type": self.kind, "message": self.message, **extra}}).encode()


@dataclass
class StripeRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    params: dict[str, Any]  # the form (or query) parsed into nested dicts and lists
    at: float = field(default_factory=time.monotonic)
    raw: str = ""  # the form body as sent
    status: int = 0  # the status answered
    replayed: bool = False  # answered from the idempotency store


def _rand(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(random_source.choice(alphabet) for _ in range(n))


def clabe_with_check_digit(first17: str) -> str:
    """Append the CLABE control digit: weights 3, 7, 1 repeating, each product mod 10."""
    total = sum(int(d) * (3, 7, 1)[i % 3] % 10 for i, d in enumerate(first17))
    return first17 + str((10 - total % 10) % 10)


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``a[b][0]=x`` into ``{"a": {"b": ["x"]}}``: all-numeric keys make a list, in order."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        parts = [head, *re.findall(r"\[([^\]]*)\]", key[len(head) :])]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise StripeError(f"Invalid hash: {key}", key)
            node = child
        node[parts[-1]] = value

    def lists(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        if value and all(k.isdigit() for k in value):
            return [lists(value[k]) for k in sorted(value, key=int)]
        return {k: lists(v) for k, v in value.items()}

    return lists(root)  # type: ignore[no-any-return]


def _typed(value: Any, path: str = "") -> Any:
    """Turn the strings of the known integer and boolean fields into ``int`` and ``bool``."""
    if isinstance(value, dict):  # metadata values stay strings, whatever they look like
        return {
            k: v if k == "metadata" else _typed(v, f"{path}[{k}]" if path else k)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_typed(v, f"{path}[{i}]") for i, v in enumerate(value)]
    name = re.split(r"[\[\]]+", path.rstrip("]"))[-1]
    if name in _INT_FIELDS:
        if not re.fullmatch(r"-?\d+", value):
            raise StripeError(f"Invalid integer: {value}", path, "parameter_invalid_integer")
        return int(value)
    if name in _BOOL_FIELDS:
        if value not in ("true", "false"):
            raise StripeError(f"Invalid boolean: {value}", path)
        return value == "true"
    return value


def _missing(param: str) -> StripeError:
    return StripeError(f"Missing required param: {param}.", param, "parameter_missing")


def sign(body: bytes, secrets: list[str] | str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` value: ``t=…,v1=…`` with one ``v1`` per (rotating) secret."""
    t = int(time.time()) if timestamp is None else timestamp
    signed = f"{t}.".encode() + body
    keys = [secrets] if isinstance(secrets, str) else secrets
    v1 = [hmac.new(k.encode(), signed, hashlib.sha256).hexdigest() for k in keys]
    return ",".join([f"t={t}", *(f"v1={s}" for s in v1)])


class StripeStub(LocalServer):
    """The recording server; use as a context manager or ``StripeStub(...).start()``."""

    def __init__(
        self, api_key: str = "sk_test_acuerdo", *, clock: Callable[[], float] = time.time
    ) -> None:
        self.api_key = api_key
        self.clock = clock  # unix seconds, for ``created`` and the voucher expiry
        self.requests: list[StripeRequest] = []
        self.created = 0  # objects really created (replays excluded)
        self.customers: dict[str, dict[str, Any]] = {}
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.drop_answers = 0  # the next N requests are handled, their answers never sent
        self._clabes: dict[str, str] = {}  # customer id -> its virtual account
        self._idempotent: dict[str, tuple[str, bytes]] = {}  # key -> (request, response)
        self._lock = threading.RLock()
        super().__init__(self._handler_class())

    # -- the API ---------------------------------------------------------------------------

    def _create_customer(self, p: dict[str, Any]) -> dict[str, Any]:
        customer = {
            "id": f"cus_{_rand(14)}", "object": "customer", "name": p.get("name"),
            "email": p.get("email"), "phone": p.get("phone"), "metadata": p.get("metadata", {}),
            "created": int(self.clock()), "livemode": False,
        }  # fmt: skip
        self.customers[customer["id"]] = customer
        return customer

    def _create_payment_intent(self, p: dict[str, Any]) -> dict[str, Any]:
        for name in ("amount", "currency"):
            if name not in p:
                raise _missing(name)
        amount, currency, confirm = p["amount"], p["currency"].lower(), p.get("confirm", False)
        types = p.get("payment_method_types") or ["card"]
        kind = types[0] if isinstance(types, list) else types
        customer = p.get("customer")
        if customer is not None and customer not in self.customers:
            raise StripeError(f"No such customer: '{customer}'", "customer", "resource_missing")
        if kind not in ("oxxo", "customer_balance"):
            raise StripeError(
                f"The payment method type provided: {kind} is invalid. This stand-in speaks "
                "oxxo and customer_balance.",
                "payment_method_types",
            )
        if currency != "mxn":
            raise StripeError(f"The currency {currency} is not supported by {kind}.", "currency")
        data = p.get("payment_method_data") or {}
        options = (p.get("payment_method_options") or {}).get(kind) or {}
        if confirm and data.get("type") != kind:
            raise _missing("payment_method_data[type]")
        pi_id, created = f"pi_{_rand(24)}", int(self.clock())
        if kind == "oxxo":
            billing = data.get("billing_details") or {}
            for name in ("name", "email"):  # Stripe needs both for an OXXO voucher
                if not billing.get(name):
                    raise _missing(f"payment_method_data[billing_details][{name}]")
            if not OXXO_MIN <= amount <= OXXO_MAX:
                small = amount < OXXO_MIN
                limit = "at least MX$10.00" if small else "no more than MX$10,000.00"
                code = "amount_too_small" if small else "amount_too_large"
                raise StripeError(f"Amount must be {limit} mxn", "amount", code)
            days = options.get("expires_after_days", 3)
            if not 1 <= days <= 7:
                param = "payment_method_options[oxxo][expires_after_days]"
                message = f"Invalid integer: {days}; it must be between 1 and 7."
                raise StripeError(message, param, "parameter_invalid_integer")
            # The voucher lapses at the end of its last day, Mexico City time.
            last_day = dt.datetime.fromtimestamp(created, MEXICO_CITY).date() + dt.timedelta(days)
            end = dt.datetime.combine(last_day, dt.time(23, 59, 59), MEXICO_CITY)
            next_action: dict[str, Any] = {
                "type": "oxxo_display_details",
                "oxxo_display_details": {
                    "expires_after": int(end.timestamp()),
                    "hosted_voucher_url": f"{self.url}/vouchers/{pi_id}",
                    "number": _rand(18, "0123456789"),
                },
            }
        else:
            if customer is None:
                raise _missing("customer")
            if options.get("funding_type") != "bank_transfer":
                raise _missing("payment_method_options[customer_balance][funding_type]")
            if (options.get("bank_transfer") or {}).get("type") != "mx_bank_transfer":
                raise _missing("payment_method_options[customer_balance][bank_transfer][type]")
            new = clabe_with_check_digit("012180" + _rand(11, "0123456789"))  # BBVA, CDMX
            clabe = self._clabes.setdefault(customer, new)
            spei = {"bank_code": "012", "bank_name": "BBVA MEXICO", "clabe": clabe}
            address = {"type": "spei", "supported_networks": ["spei"], "spei": spei}
            instructions = {
                "amount_remaining": amount, "currency": "mxn", "type": "mx_bank_transfer",
                "reference": _rand(7, "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"),
                "hosted_instructions_url": f"{self.url}/instructions/{pi_id}",
                "financial_addresses": [address],
            }  # fmt: skip
            next_action = {
                "type": "display_bank_transfer_instructions",
                "display_bank_transfer_instructions": instructions,
            }
        pi = {
            "id": pi_id, "object": "payment_intent", "amount": amount, "amount_received": 0,
            "currency": currency, "payment_method_types": [kind],
            "status": "requires_action" if confirm else "requires_confirmation",
            "payment_method": f"pm_{_rand(24)}", "customer": customer,
            "description": p.get("description"), "metadata": p.get("metadata", {}),
            "created": created, "livemode": False, "client_secret": f"{pi_id}_secret_{_rand(25)}",
            "latest_charge": None, "last_payment_error": None, "canceled_at": None,
            "cancellation_reason": None, "next_action": next_action if confirm else None,
        }  # fmt: skip
        self.payment_intents[pi_id] = pi
        return pi

    def _post(self, path: str, params: dict[str, Any], key: str | None) -> tuple[bytes, bool]:
        """The response body, and whether it was replayed for an idempotency key."""
        routes = {
            "/v1/customers": self._create_customer,
            "/v1/payment_intents": self._create_payment_intent,
        }
        if path not in routes:
            raise StripeError(f"Unrecognized request URL (POST: {path}).", status=404)
        fingerprint = json.dumps([path, params], sort_keys=True)
        with self._lock:  # one creation at a time: a concurrent retry then replays
            if key is not None and key in self._idempotent:
                first, body = self._idempotent[key]
                if first != fingerprint:
                    raise StripeError(
                        "Keys for idempotent requests can only be used with the same parameters "
                        f"they were first used with. Try using a key other than '{key}' if you "
                        "meant to execute a different request.",
                        kind="idempotency_error",
                    )
                return body, True
            body = json.dumps(routes[path](params)).encode()
            self.created += 1
            if key is not None:  # only requests that ran are stored (not failed validations)
                self._idempotent[key] = (fingerprint, body)
            return body, False

    def _get(self, path: str) -> bytes:
        pi_id = path.removeprefix("/v1/payment_intents/")
        if pi_id == path or not pi_id or "/" in pi_id:
            raise StripeError(f"Unrecognized request URL (GET: {path}).", status=404)
        with self._lock:
            if pi_id not in self.payment_intents:
                message = f"No such payment_intent: '{pi_id}'"
                raise StripeError(message, "intent", "resource_missing", status=404)
            return json.dumps(self.payment_intents[pi_id]).encode()

    # -- webhooks back ---------------------------------------------------------------------

    def event(
        self,
        pi_id: str,
        type: str,
        *,
        created: int | None = None,
        amount_received: int | None = None,
        funded: int = 0,
    ) -> bytes:
        """Move the PaymentIntent on as ``type`` says and return the Stripe Event's body.

        ``payment_intent.partially_funded`` lowers ``amount_remaining`` by ``funded``.
        """
        with self._lock:
            pi = self.payment_intents[pi_id]
            if type == "payment_intent.succeeded":
                pi.update(status="succeeded", next_action=None, latest_charge=f"ch_{_rand(24)}")
                pi["amount_received"] = pi["amount"] if amount_received is None else amount_received
            elif type == "payment_intent.payment_failed":
                pi.update(status="requires_payment_method", next_action=None, payment_method=None)
                pi["last_payment_error"] = {
                    "code": "payment_intent_payment_attempt_expired",
                    "type": "invalid_request_error",
                    "message": "The payment attempt expired (the OXXO voucher was not paid in "
                    "time).",
                }
            elif type == "payment_intent.canceled":
                pi.update(status="canceled", next_action=None, cancellation_reason="abandoned")
                pi["canceled_at"] = int(self.clock())
            elif type == "payment_intent.partially_funded":
                instructions = pi["next_action"]["display_bank_transfer_instructions"]
                instructions["amount_remaining"] -= funded
            elif type not in ("payment_intent.requires_action", "payment_intent.processing"):
                raise ValueError(f"the stand-in does not emit {type}")
            event = {
                "id": f"evt_{_rand(24)}", "object": "event", "api_version": API_VERSION,
                "created": int(self.clock()) if created is None else created, "type": type,
                "livemode": False, "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "data": {"object": copy.deepcopy(pi)},
            }  # fmt: skip
            self.events.append(event)
        return json.dumps(event).encode()

    def deliver(
        self, url: str, body: bytes, secrets: list[str] | str, timestamp: int | None = None
    ) -> httpx.Response:
        """POST a signed event body to ``url``, as Stripe delivers to a webhook endpoint."""
        signature = sign(body, secrets, timestamp)
        headers = {"Content-Type": "application/json", "Stripe-Signature": signature}
        return httpx.post(url, content=body, headers=headers, timeout=10.0)

    # -- HTTP ------------------------------------------------------------------------------

    def _answer(self, method: str, record: StripeRequest, query: str) -> tuple[int, bytes, bool]:
        auth = record.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            given = auth.removeprefix("Bearer ")
            if not given:
                raise StripeError("You did not provide an API key.", status=401)
            message = f"Invalid API Key provided: {given[:8]}{'*' * 8}{given[-4:]}"
            raise StripeError(message, code="api_key_invalid", status=401)
        pairs = parse_qsl(query, keep_blank_values=True)
        record.params = _typed(parse_form(pairs + parse_qsl(record.raw, keep_blank_values=True)))
        if method == "GET":
            return 200, self._get(record.path), False
        key = record.headers.get("idempotency-key")
        return (200, *self._post(record.path, record.params, key))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # a connection per request, as in tests/graph_stub.py

            def log_message(self, *_args: Any) -> None:
                pass

            def _send(self, status: int, raw: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(raw)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self, method: str) -> None:
                split = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                record = StripeRequest(method, split.path, headers, {}, raw=raw)
                with stub._lock:
                    stub.requests.append(record)
                page, _, pi_id = split.path.lstrip("/").partition("/")
                if method == "GET" and page in ("vouchers", "instructions"):  # hosted, no key
                    found = pi_id in stub.payment_intents  # only our own ids are echoed
                    record.status = 200 if found else 404
                    html = f"<!doctype html><title>{page}</title><h1>{pi_id if found else ''}</h1>"
                    self._send(record.status, html.encode(), {"Content-Type": "text/html"})
                    return
                out = {
                    "Content-Type": "application/json",
                    "Request-Id": f"req_{_rand(14)}",
                    "Stripe-Version": headers.get("stripe-version", API_VERSION),
                }
                try:
                    status, body, record.replayed = stub._answer(method, record, split.query)
                except StripeError as error:
                    status, body = error.status, error.body()
                if method == "POST" and "idempotency-key" in headers:
                    out["Idempotency-Key"] = headers["idempotency-key"]
                if record.replayed:
                    out["Idempotent-Replayed"] = "true"
                record.status = status
                with stub._lock:
                    lost, stub.drop_answers = stub.drop_answers > 0, max(0, stub.drop_answers - 1)
                if lost:  # done at Stripe, the answer lost on the way: close without one
                    self.close_connection = True
                    return
                self._send(status, body, out)

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                self._handle("POST")

        return Handler
