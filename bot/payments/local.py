"""The built-in ``local`` payment provider: references computed here, no external account.

Reference layouts (``N`` = the PaymentCode id, zero-padded; ``A`` = the account id):

=========  =========================================  ======  ==========================
method     layout                                     digits  check
=========  =========================================  ======  ==========================
bank_ref   ``AAAAAAAA NNNNNNNN K``                    17      Luhn (BBVA "Algoritmo 00")
spei       CLABE ``BBB PPP NNNNNNNNNNN K``            18      3-7-1 (Banxico)
oxxo       ``93 NNNNNNNNNNN K``                       14      Luhn
card       same layout as bank_ref                    17      Luhn
=========  =========================================  ======  ==========================

``BBBPPP`` is ``policy.payment_codes.clabe_prefix`` (bank + plaza of the collection account);
``93`` marks the demo OXXO issuer. For SPEI the code's ``reference`` is its CLABE: a transfer
to that CLABE identifies the code by itself. Every code also gets a signed payment link
(:mod:`bot.payments.links`); for ``card`` the link is the way to pay.

Payment confirmations come to ``POST /webhooks/payments/local`` signed with
``PAYMENTS_WEBHOOK_SECRET``: header ``X-Acuerdo-Signature: sha256=<hex HMAC-SHA256 of the raw
body>``, body ``{"event_id", "reference", "amount", "currency", "paid_at"}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import Account, Agreement, PaymentCode
from bot.domain.money import cents_to_pesos, pesos_to_cents
from bot.payments.check_digits import clabe_check_digit, luhn_check_digit
from bot.payments.provider import (
    PaymentCodeError,
    PaymentEvent,
    WebhookRejected,
    begin_code,
    finish_code,
    header_value,
)
from bot.policy import Policy

PROVIDER_NAME = "local"
SIGNATURE_HEADER = "X-Acuerdo-Signature"
OXXO_ISSUER_PREFIX = "93"
MAX_WEBHOOK_BYTES = 64 * 1024

_WEBHOOK_FIELDS = ("event_id", "reference", "amount", "currency", "paid_at")
_AMOUNT_TEXT = re.compile(r"^\d{1,12}(\.\d{1,2})?$")


def bank_reference(account_id: int, code_id: int) -> str:
    """17 digits: account id (8) + code id (8) + Luhn check digit."""
    payload = _padded(account_id, 8, "account id") + _padded(code_id, 8, "payment code id")
    return payload + str(luhn_check_digit(payload))


def oxxo_reference(code_id: int) -> str:
    """14 digits: issuer prefix ``93`` + code id (11) + Luhn check digit."""
    payload = OXXO_ISSUER_PREFIX + _padded(code_id, 11, "payment code id")
    return payload + str(luhn_check_digit(payload))


def spei_clabe(clabe_prefix: str, code_id: int) -> str:
    """18 digits: bank + plaza (6, from the policy) + code id (11) + 3-7-1 control digit."""
    first17 = clabe_prefix + _padded(code_id, 11, "payment code id")
    return first17 + str(clabe_check_digit(first17))


def _padded(number: int, width: int, what: str) -> str:
    if number < 0 or number >= 10**width:
        raise PaymentCodeError(
            "reference_space_exhausted", f"{what} {number} does not fit in {width} digits"
        )
    return f"{number:0{width}d}"


def sign_local_webhook(secret: str, body: bytes) -> str:
    """The ``X-Acuerdo-Signature`` header value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def local_webhook_body(
    *, event_id: str, reference: str, amount_cents: int, paid_at: datetime, currency: str = "MXN"
) -> bytes:
    """A well-formed ``local`` webhook body (for the sandbox's "mark paid", tests and docs)."""
    return json.dumps(
        {
            "event_id": event_id,
            "reference": reference,
            "amount": str(cents_to_pesos(amount_cents)),
            "currency": currency,
            "paid_at": paid_at.isoformat(),
        }
    ).encode("utf-8")


class LocalPaymentProvider:
    """Payment codes with self-computed references; webhooks signed with a shared secret."""

    name = PROVIDER_NAME

    def __init__(self, *, webhook_secret: str, link_secret: str) -> None:
        if not webhook_secret:
            raise ValueError("PAYMENTS_WEBHOOK_SECRET must not be empty")
        self._webhook_secret = webhook_secret
        self._link_secret = link_secret

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
        """Store (flush, not commit) and audit a new code; :class:`PaymentCodeError` if refused."""
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
        )
        if method == "spei":
            code.clabe = spei_clabe(policy.payment_codes.clabe_prefix, code.id)
            code.reference = code.clabe
        elif method == "oxxo":
            code.reference = oxxo_reference(code.id)
        else:  # bank_ref, card
            code.reference = bank_reference(account.id, code.id)
        return finish_code(session, clock, code, link_secret=self._link_secret, actor=actor)

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """True when ``X-Acuerdo-Signature`` is ``sha256=`` + the HMAC of the raw body."""
        given = header_value(headers, SIGNATURE_HEADER)
        if not given:
            return False
        scheme, _, digest = given.strip().partition("=")
        if scheme.lower() != "sha256" or not digest:
            return False
        expected = sign_local_webhook(self._webhook_secret, raw_body).partition("=")[2]
        return hmac.compare_digest(
            expected.encode("ascii"), digest.strip().lower().encode("utf-8", "replace")
        )

    def parse_webhook(self, raw_body: bytes) -> list[PaymentEvent]:
        """The one event of a ``local`` webhook body, validated strictly."""
        return [parse_local_event(raw_body)]


def parse_local_event(raw_body: bytes) -> PaymentEvent:
    """Read ``{"event_id", "reference", "amount", "currency", "paid_at"}`` or refuse it.

    ``amount`` is in pesos, a JSON number or a decimal string (``1250.50``); ``paid_at`` an
    ISO 8601 date-time with offset (``Z`` allowed). Unknown fields are refused so a typo
    such as ``amount_cents`` cannot slip through.
    """
    if len(raw_body) > MAX_WEBHOOK_BYTES:
        raise WebhookRejected("too_large", f"body over {MAX_WEBHOOK_BYTES} bytes")
    try:
        data: Any = json.loads(
            raw_body.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # Recursion: "[[[[…"
        raise WebhookRejected("malformed_json", "body is not UTF-8 JSON") from exc
    if not isinstance(data, dict):
        raise WebhookRejected("not_an_object", "body must be a JSON object")
    missing = [name for name in _WEBHOOK_FIELDS if name not in data]
    if missing:
        raise WebhookRejected("missing_field", f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(data) - set(_WEBHOOK_FIELDS))
    if unknown:
        raise WebhookRejected("unknown_field", f"unknown field(s): {', '.join(unknown)}")

    event_id = _text_field(data, "event_id", max_length=200)
    reference = _text_field(data, "reference", max_length=64)
    if data["currency"] != "MXN":
        raise WebhookRejected("currency", "currency must be MXN")
    return PaymentEvent(
        provider=PROVIDER_NAME,
        event_id=event_id,
        reference=reference,
        amount_cents=_amount_cents(data["amount"]),
        currency="MXN",
        paid_at=_paid_at(data["paid_at"]),
        status="paid",
        raw=data,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _text_field(data: dict[str, Any], name: str, *, max_length: int) -> str:
    value = data[name]
    if not isinstance(value, str) or not value.strip():
        raise WebhookRejected(f"bad_{name}", f"{name} must be a non-empty string")
    if not value.isascii() and not _is_unicode_text(value):
        raise WebhookRejected(f"bad_{name}", f"{name} is not Unicode text")
    value = value.strip()
    if len(value) > max_length:
        raise WebhookRejected(f"bad_{name}", f"{name} is longer than {max_length} characters")
    return value


def _is_unicode_text(value: str) -> bool:
    """False for a lone surrogate (``"\\ud800"`` in the JSON): nothing can store it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _amount_cents(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise WebhookRejected("bad_amount", "amount must be a number or a decimal string in pesos")
    text = format(value, "f") if isinstance(value, Decimal) else str(value).strip()
    if not _AMOUNT_TEXT.match(text):
        raise WebhookRejected(
            "bad_amount", "amount must be positive pesos with at most two decimals (1250.50)"
        )
    cents = pesos_to_cents(text)
    if cents <= 0:
        raise WebhookRejected("bad_amount", "amount must be positive")
    return cents


def _paid_at(value: Any) -> datetime:
    if not isinstance(value, str) or "T" not in value.upper():
        raise WebhookRejected("bad_paid_at", "paid_at must be an ISO 8601 date-time string")
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise WebhookRejected("bad_paid_at", "paid_at must be an ISO 8601 date-time") from exc
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise WebhookRejected("bad_paid_at", "paid_at needs a UTC offset (…Z or …-06:00)")
    return moment
