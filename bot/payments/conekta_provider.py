"""``PAYMENTS_PROVIDER=conekta``: OXXO cash references and SPEI transfers issued by Conekta.

Each payment code is one Conekta order (https://developers.conekta.com/reference/orderscreate)
made through Conekta's own SDK (``conekta``), with one charge: ``cash`` (an OXXO reference,
with its barcode) or ``spei`` (a CLABE of its own for this charge), both with the policy's
expiry. The code's ``reference`` is the order id, which the webhooks name; the OXXO
reference is ``voucher_number``, its barcode image ``hosted_url``, the SPEI CLABE ``clabe``.

Conekta documents no idempotency key for orders, so a create is never retried blindly: the
SDK does not retry, and an answer lost on the way is asked for again by looking for the order
this code made (its ``acuerdo_payment_code`` metadata) before refusing the code.

Webhooks (``POST /webhooks/payments/conekta``) are verified as Conekta signs them
(https://developers.conekta.com/docs/autenticación-webhooks): the ``digest`` header is the
base64 RSA-SHA256 (PKCS#1 v1.5) signature of the raw body, made with the private half of the
webhook key; ``CONEKTA_WEBHOOK_PUBLIC_KEY_FILE`` holds the public half (PEM). There is no
timestamp in the scheme: a redelivered or replayed event is applied once by its event id.
``order.paid`` is a payment, ``order.expired`` an expiry, ``order.canceled`` a
cancellation, ``charge.refunded`` a refund (recorded for an agent); orders this system did
not make and other event types are acknowledged and ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import conekta
import urllib3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import Account, Agreement, PaymentCode
from bot.payments.provider import (
    EventStatus,
    PaymentCodeError,
    PaymentEvent,
    WebhookRejected,
    begin_code,
    finish_code,
    header_value,
)
from bot.policy import Policy

PROVIDER_NAME = "conekta"
SIGNATURE_HEADER = "digest"
METHODS = {"oxxo": "cash", "spei": "spei"}  # our method -> Conekta's payment method type
CODE_METADATA_KEY = "acuerdo_payment_code"
REQUEST_TIMEOUT_SECONDS = 20.0
_STATUSES: dict[str, EventStatus] = {
    "order.paid": "paid",
    "order.expired": "expired",
    "order.canceled": "canceled",
    "charge.refunded": "refunded",
}


class InvalidWebhookKey(ValueError):
    """``CONEKTA_WEBHOOK_PUBLIC_KEY_FILE`` is missing or not an RSA public key in PEM."""


def load_webhook_key(path: str | Path) -> rsa.RSAPublicKey:
    """The webhook key's public half, or :class:`InvalidWebhookKey` saying why not."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except OSError as exc:
        raise InvalidWebhookKey(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise InvalidWebhookKey(f"{path} is not a PEM public key") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidWebhookKey(f"{path} is not an RSA public key")
    return key


class ConektaPaymentProvider:
    """Payment codes as Conekta orders; webhooks signed with the company's webhook key."""

    name = PROVIDER_NAME

    def __init__(
        self,
        *,
        api_key: str,
        webhook_key: rsa.RSAPublicKey,
        link_secret: str,
        api_base_url: str | None = None,
        billing_email: str | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("CONEKTA_API_KEY must be set")
        configuration = conekta.Configuration(
            host=api_base_url or "https://api.conekta.io", access_token=api_key
        )
        configuration.retries = 0  # no idempotency key: never a blind second create
        self._orders = conekta.OrdersApi(conekta.ApiClient(configuration))
        self._webhook_key = webhook_key
        self._link_secret = link_secret
        self._billing_email = billing_email

    # -- issuing ----------------------------------------------------------------------------
    def issue_code(
        self,
        session: Session,
        clock: Clock,
        policy: Policy,
        account: Account,
        *,
        amount_cents: int,
        method: str,
        agreement: Agreement | None = None,
        concept: str | None = None,
        actor: str = "bot",
    ) -> PaymentCode:
        """Create the order and store (flush) and audit its code, or refuse."""
        code = begin_code(
            session,
            clock,
            policy,
            account,
            provider=self.name,
            method=method,
            amount_cents=amount_cents,
            agreement=agreement,
            concept=concept,
            offered=tuple(METHODS),
        )
        try:
            order = self._create_order(code, account)
        except PaymentCodeError:
            session.delete(code)
            session.flush()
            raise
        code.reference = str(order["id"])
        charge = ((order.get("charges") or {}).get("data") or [{}])[0]
        paying = charge.get("payment_method") or {}
        if method == "oxxo":
            code.voucher_number = paying.get("reference")
            code.hosted_url = paying.get("barcode_url")
        else:
            code.clabe = paying.get("clabe")
        if paying.get("expires_at"):
            code.expires_at = datetime.fromtimestamp(int(paying["expires_at"]), timezone.utc)
        return finish_code(session, clock, code, link_secret=self._link_secret, actor=actor)

    def _order_request(self, code: PaymentCode, account: Account) -> conekta.OrderRequest:
        debtor = account.debtor
        email = debtor.email or self._billing_email
        if not email:
            raise PaymentCodeError(
                "email_required",
                "Conekta needs an e-mail for the order: the debtor has none and "
                "PAYMENTS_BILLING_EMAIL is not set",
            )
        phone = next((c.address for c in debtor.contact_points if c.address), "")
        return conekta.OrderRequest(
            currency="MXN",
            customer_info=conekta.OrderRequestCustomerInfo(
                conekta.CustomerInfo(name=debtor.full_name, email=email, phone=phone)
            ),
            line_items=[
                conekta.Product(name=code.concept, unit_price=code.amount_cents, quantity=1)
            ],
            charges=[
                conekta.ChargeRequest(
                    amount=code.amount_cents,
                    payment_method=conekta.ChargeRequestPaymentMethod(
                        conekta.PaymentMethodGeneralRequest(
                            type=METHODS[code.method], expires_at=int(code.expires_at.timestamp())
                        )
                    ),
                )
            ],
            metadata={CODE_METADATA_KEY: str(code.id), "acuerdo_account": str(code.account_id)},
        )

    def _create_order(self, code: PaymentCode, account: Account) -> dict[str, Any]:
        request = self._order_request(code, account)
        try:
            order = self._orders.create_order(
                request, accept_language="es", _request_timeout=REQUEST_TIMEOUT_SECONDS
            )
        except conekta.ApiException as exc:
            raise PaymentCodeError(
                "processor_unavailable", f"Conekta did not issue the code: HTTP {exc.status}"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # no answer: was it made?
            found = self._find_order_of(code)
            if found is None:
                raise PaymentCodeError(
                    "processor_unavailable", f"Conekta did not answer: {type(exc).__name__}"
                ) from exc
            return found
        return order.to_dict()

    def _find_order_of(self, code: PaymentCode) -> dict[str, Any] | None:
        """The order this code made, if an answer was lost on the way: among the orders made
        since a little before the code, the one whose metadata names it."""
        try:
            found = self._orders.get_orders(
                accept_language="es",
                created_at_gte=int(code.created_at.timestamp()) - 300,
                limit=250,
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except (conekta.ApiException, urllib3.exceptions.HTTPError, OSError):
            return None
        for order in found.to_dict().get("data") or []:
            if str((order.get("metadata") or {}).get(CODE_METADATA_KEY)) == str(code.id):
                return dict(order)
        return None

    # -- webhooks ---------------------------------------------------------------------------
    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """True when ``digest`` is the webhook key's signature over the exact raw body."""
        given = header_value(headers, SIGNATURE_HEADER)
        if not given:
            return False
        try:
            signature = base64.b64decode(given.strip(), validate=True)
            self._webhook_key.verify(signature, raw_body, padding.PKCS1v15(), hashes.SHA256())
        except (binascii.Error, ValueError, InvalidSignature):
            return False
        return True

    def parse_webhook(self, raw_body: bytes) -> list[PaymentEvent]:
        """The event as a :class:`PaymentEvent`, or nothing for an event we do not act on."""
        try:
            event: Any = json.loads(raw_body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise WebhookRejected("malformed_json", "body is not UTF-8 JSON") from exc
        if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
            raise WebhookRejected("not_an_event", "body is not a Conekta event")
        status = _STATUSES.get(str(event.get("type")))
        thing = event["data"].get("object")
        if status is None or not isinstance(thing, dict):
            return []  # webhook_ping, order.created, charge.created ...: acknowledged
        if status != "refunded" and CODE_METADATA_KEY not in (thing.get("metadata") or {}):
            return []  # another integration's order on the same Conekta account
        return [_payment_event(event, thing, status)]


def _payment_event(
    event: dict[str, Any], thing: dict[str, Any], status: EventStatus
) -> PaymentEvent:
    charge = (
        thing if status == "refunded" else (((thing.get("charges") or {}).get("data")) or [{}])[0]
    )
    reference = thing.get("order_id") if status == "refunded" else thing.get("id")
    if status == "refunded":  # Conekta lists a charge's refunds with negative amounts
        refunds = (thing.get("refunds") or {}).get("data") or []
        amount = abs(sum(int(r.get("amount") or 0) for r in refunds)) or thing.get("amount")
    elif status == "paid":
        amount = charge.get("amount") or thing.get("amount")
    else:
        amount = thing.get("amount")
    if str(thing.get("currency") or "").upper() != "MXN":
        raise WebhookRejected("currency", "currency must be MXN")
    if not isinstance(reference, str) or not reference or not isinstance(event.get("id"), str):
        raise WebhookRejected("bad_reference", "the event names no order")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise WebhookRejected("bad_amount", "amount must be positive centavos")
    when = charge.get("paid_at") if status == "paid" else None
    when = when or event.get("created_at")
    if isinstance(when, bool) or not isinstance(when, int):
        raise WebhookRejected("bad_created", "the event has no time")
    return PaymentEvent(
        provider=PROVIDER_NAME,
        event_id=event["id"],
        reference=reference,
        amount_cents=amount,
        currency="MXN",
        paid_at=datetime.fromtimestamp(when, timezone.utc),
        status=status,
        raw=event,
    )
