"""``PAYMENTS_PROVIDER=stripe``: OXXO vouchers and SPEI transfers issued by Stripe.

Each payment code is one PaymentIntent, made through Stripe's own SDK (``stripe``):

- **OXXO** (https://docs.stripe.com/payments/oxxo/accept-a-payment): ``payment_method_types
  ["oxxo"]``, confirmed at once; Stripe answers with the voucher (``next_action.
  oxxo_display_details``: its ``number``, ``expires_after`` and ``hosted_voucher_url``). Stripe
  requires the payer's name and e-mail; a debtor without one gets ``PAYMENTS_BILLING_EMAIL``.
  The voucher lasts the policy's ``validity_hours.oxxo`` in whole days (1-7).
- **SPEI** (https://docs.stripe.com/payments/bank-transfers): ``customer_balance`` with a
  ``mx_bank_transfer``, on the debtor's Stripe customer (made once and kept in
  ``processor_customers``): Stripe gives that customer a CLABE of its own
  (``next_action.display_bank_transfer_instructions``).

The code's ``reference`` is the PaymentIntent's id, which the webhooks name; the voucher
number is ``voucher_number``, the hosted page ``hosted_url``. Each create carries an
idempotency key derived from the code row (and the SDK retries a lost request with the same
key), so a retry never makes a second voucher.

Webhooks (``POST /webhooks/payments/stripe``) are verified with the ``Stripe-Signature``
scheme (https://docs.stripe.com/webhooks#verify-manually) against every secret in
``STRIPE_WEBHOOK_SECRET`` (a rotation has two), refusing a timestamp older than
``STRIPE_WEBHOOK_TOLERANCE_SECONDS``. ``payment_intent.succeeded`` is a payment,
``payment_intent.payment_failed`` of an OXXO voucher its expiry, ``payment_intent.canceled``
a cancellation; events of PaymentIntents this system did not make (no
``acuerdo_payment_code`` in their metadata) and every other event type are acknowledged and
ignored (refunds among them: not yet read from Stripe).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from stripe import (
    RequestsClient,
    SignatureVerificationError,
    StripeClient,
    StripeError,
    WebhookSignature,
)

from bot.clock import Clock
from bot.db.models import Account, Agreement, Debtor, PaymentCode, ProcessorCustomer
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

PROVIDER_NAME = "stripe"
SIGNATURE_HEADER = "Stripe-Signature"
METHODS = ("oxxo", "spei")
CODE_METADATA_KEY = "acuerdo_payment_code"  # marks the PaymentIntents this system made
REQUEST_TIMEOUT_SECONDS = 20.0  # an action waits for this at most (twice, with a retry)
_STATUSES: dict[str, EventStatus] = {
    "payment_intent.succeeded": "paid",
    "payment_intent.canceled": "canceled",
    "payment_intent.payment_failed": "expired",  # OXXO only: the voucher was not paid in time
}


class StripePaymentProvider:
    """Payment codes as Stripe PaymentIntents; webhooks signed with Stripe's scheme."""

    name = PROVIDER_NAME

    def __init__(
        self,
        *,
        api_key: str,
        webhook_secrets: tuple[str, ...],
        link_secret: str,
        api_base_url: str | None = None,
        billing_email: str | None = None,
        tolerance_seconds: int = 300,
    ) -> None:
        if not api_key or not webhook_secrets:
            raise ValueError("STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET must be set")
        self._client = StripeClient(
            api_key,
            base_addresses={"api": api_base_url} if api_base_url else None,
            max_network_retries=1,  # the same idempotency key: never a second voucher
            http_client=RequestsClient(timeout=REQUEST_TIMEOUT_SECONDS),
        )
        self._live = api_key.startswith(("sk_live_", "rk_live_"))
        self._webhook_secrets = webhook_secrets
        self._link_secret = link_secret
        self._billing_email = billing_email
        self._tolerance = tolerance_seconds

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
        """Create the PaymentIntent and store (flush) and audit its code, or refuse."""
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
            offered=METHODS,
        )
        try:
            if method == "oxxo":
                intent = self._oxxo_intent(code, account.debtor, policy)
            else:
                customer = self._customer_for(session, clock, account.debtor)
                intent = self._spei_intent(code, customer)
        except (StripeError, PaymentCodeError) as exc:
            session.delete(code)
            session.flush()
            if isinstance(exc, PaymentCodeError):
                raise
            raise PaymentCodeError(
                "processor_unavailable", f"Stripe did not issue the code: {_error_text(exc)}"
            ) from exc
        code.reference = str(intent["id"])
        action = intent.get("next_action") or {}
        if method == "oxxo":
            voucher = action.get("oxxo_display_details") or {}
            code.voucher_number = str(voucher.get("number") or "") or None
            code.hosted_url = voucher.get("hosted_voucher_url")
            if voucher.get("expires_after"):
                code.expires_at = datetime.fromtimestamp(
                    int(voucher["expires_after"]), timezone.utc
                )
        else:
            instructions = action.get("display_bank_transfer_instructions") or {}
            code.clabe = _spei_clabe(instructions)
            code.voucher_number = instructions.get("reference")
            code.hosted_url = instructions.get("hosted_instructions_url")
        return finish_code(session, clock, code, link_secret=self._link_secret, actor=actor)

    def _intent_params(self, code: PaymentCode) -> dict[str, Any]:
        return {
            "amount": code.amount_cents,  # centavos: Stripe's unit for MXN
            "currency": "mxn",
            "confirm": True,
            "description": code.concept,
            "metadata": {CODE_METADATA_KEY: str(code.id), "acuerdo_account": str(code.account_id)},
        }

    def _oxxo_intent(self, code: PaymentCode, debtor: Debtor, policy: Policy) -> dict[str, Any]:
        email = debtor.email or self._billing_email
        if not email:
            raise PaymentCodeError(
                "email_required",
                "Stripe needs an e-mail for an OXXO voucher: the debtor has none and "
                "PAYMENTS_BILLING_EMAIL is not set",
            )
        hours = policy.payment_codes.validity_hours.get("oxxo") or 72  # type: ignore[call-overload]
        days = min(7, max(1, -(-int(hours) // 24)))
        params = self._intent_params(code) | {
            "payment_method_types": ["oxxo"],
            "payment_method_data": {
                "type": "oxxo",
                "billing_details": {"name": debtor.full_name, "email": email},
            },
            "payment_method_options": {"oxxo": {"expires_after_days": days}},
        }
        return self._create_intent(code, params)

    def _spei_intent(self, code: PaymentCode, customer_id: str) -> dict[str, Any]:
        params = self._intent_params(code) | {
            "customer": customer_id,
            "payment_method_types": ["customer_balance"],
            "payment_method_data": {"type": "customer_balance"},
            "payment_method_options": {
                "customer_balance": {
                    "funding_type": "bank_transfer",
                    "bank_transfer": {"type": "mx_bank_transfer"},
                }
            },
        }
        return self._create_intent(code, params)

    def _create_intent(self, code: PaymentCode, params: dict[str, Any]) -> dict[str, Any]:
        # Derived from the row and what it asks: the same request again replays, never repeats.
        key = f"acuerdo-code-{code.id}-{code.account_id}-{code.method}-{code.amount_cents}"
        intent = self._client.v1.payment_intents.create(
            params=params,  # type: ignore[arg-type]  # the SDK's TypedDict, built as a dict
            options={"idempotency_key": key},
        )
        return intent.to_dict()

    def _customer_for(self, session: Session, clock: Clock, debtor: Debtor) -> str:
        known = session.scalar(
            select(ProcessorCustomer.customer_id).where(
                ProcessorCustomer.provider == self.name, ProcessorCustomer.debtor_id == debtor.id
            )
        )
        if known:
            return known
        params: dict[str, Any] = {
            "name": debtor.full_name,
            "metadata": {"acuerdo_debtor": str(debtor.id)},
        }
        if debtor.email:
            params["email"] = debtor.email
        customer = self._client.v1.customers.create(
            params=params,  # type: ignore[arg-type]
            options={"idempotency_key": f"acuerdo-debtor-{debtor.id}"},
        )
        session.add(
            ProcessorCustomer(
                provider=self.name,
                debtor_id=debtor.id,
                customer_id=str(customer["id"]),
                created_at=clock.now_utc(),
            )
        )
        session.flush()
        return str(customer["id"])

    # -- webhooks ---------------------------------------------------------------------------
    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """True when a ``v1`` signature matches one of the secrets, within the tolerance."""
        given = header_value(headers, SIGNATURE_HEADER)
        if not given:
            return False
        try:
            payload = raw_body.decode("utf-8")
        except UnicodeDecodeError:
            return False
        for secret in self._webhook_secrets:
            try:
                WebhookSignature.verify_header(payload, given, secret, tolerance=self._tolerance)
            except SignatureVerificationError:
                continue
            return True
        return False

    def parse_webhook(self, raw_body: bytes) -> list[PaymentEvent]:
        """The event as a :class:`PaymentEvent`, or nothing for an event we do not act on."""
        try:
            event: Any = json.loads(raw_body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise WebhookRejected("malformed_json", "body is not UTF-8 JSON") from exc
        if not isinstance(event, dict) or event.get("object") != "event":
            raise WebhookRejected("not_an_event", "body is not a Stripe event")
        if bool(event.get("livemode")) != self._live:
            raise WebhookRejected("livemode_mismatch", "a test event for a live key or back")
        status = _STATUSES.get(str(event.get("type")))
        thing = (event.get("data") or {}).get("object")
        if status is None or not isinstance(thing, dict):
            return []  # acknowledged, nothing to do
        if CODE_METADATA_KEY not in (thing.get("metadata") or {}):
            return []  # another integration's PaymentIntent on the same Stripe account
        if status == "expired" and thing.get("payment_method_types") != ["oxxo"]:
            return []  # a bank transfer that failed stays open to the next transfer
        return [_payment_event(event, thing, status)]


def _payment_event(
    event: dict[str, Any], thing: dict[str, Any], status: EventStatus
) -> PaymentEvent:
    reference = thing.get("id")
    amount = thing.get("amount_received") if status == "paid" else thing.get("amount")
    currency = str(thing.get("currency") or "").upper()
    if currency != "MXN":
        raise WebhookRejected("currency", "currency must be MXN")
    if not isinstance(reference, str) or not reference or not isinstance(event.get("id"), str):
        raise WebhookRejected("bad_reference", "the event names no PaymentIntent")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise WebhookRejected("bad_amount", "amount must be positive centavos")
    created = event.get("created")
    if isinstance(created, bool) or not isinstance(created, int):
        raise WebhookRejected("bad_created", "the event has no creation time")
    return PaymentEvent(
        provider=PROVIDER_NAME,
        event_id=event["id"],
        reference=reference,
        amount_cents=amount,
        currency="MXN",
        paid_at=datetime.fromtimestamp(created, timezone.utc),
        status=status,
        raw=event,
    )


def _spei_clabe(instructions: Mapping[str, Any]) -> str | None:
    for address in instructions.get("financial_addresses") or []:
        if address.get("type") == "spei":
            return (address.get("spei") or {}).get("clabe")
    return None


def _error_text(exc: StripeError) -> str:
    """Stripe's message without the key or request details (it is logged and audited)."""
    return (exc.user_message or type(exc).__name__)[:200]
