"""The payment-provider interface: issue payment codes, verify and read payment webhooks.

One provider is active at a time (``PAYMENTS_PROVIDER``); :func:`get_provider` builds it
from the settings. The built-in ``local`` provider (:mod:`bot.payments.local`) needs no
external account: it computes the references itself and trusts webhooks signed with
``PAYMENTS_WEBHOOK_SECRET``.

Adding a real provider (Conekta, Stripe, Mercado Pago…) means one module
``bot/payments/<name>.py`` with a class satisfying :class:`PaymentProvider`:

- ``name``: the value of ``PAYMENTS_PROVIDER`` and of ``PaymentCode.provider``, and the
  ``{provider}`` of ``POST /webhooks/payments/{provider}``.
- ``issue_code``: call :func:`check_code_request` first (same refusals for every
  provider), then create the charge at the provider (Conekta ``POST /orders`` with an
  ``oxxo_cash``/``spei`` charge, Stripe a PaymentIntent with ``oxxo``, Mercado Pago
  ``POST /v1/payments``) using an idempotency key derived from the code row, and store a
  :class:`~bot.db.models.PaymentCode` whose ``reference`` is what the provider's webhook will
  name (Conekta ``reference_id``, Stripe the PaymentIntent id, Mercado Pago the payment id)
  and whose ``clabe`` is the CLABE the provider assigned for SPEI. Every code also gets the
  signed link token of :mod:`bot.payments.links`, and a ``payment_code`` audit entry.
- ``verify_webhook``: the provider's own signature scheme over the raw body (Conekta's
  ``Digest`` header, Stripe's ``Stripe-Signature`` with timestamp tolerance, Mercado Pago's
  ``x-signature``), compared with :func:`hmac.compare_digest`.
- ``parse_webhook``: map the provider's events to :class:`PaymentEvent` — Conekta
  ``order.paid``/``charge.paid``, Stripe ``payment_intent.succeeded``, Mercado Pago topic
  ``payment`` with status ``approved`` → ``status="paid"``; expiries and cancellations →
  ``"expired"``/``"canceled"``; anything else → an empty list (acknowledged, ignored).
  ``event_id`` must be the provider's unique event id: it is the idempotency key.

Then register the class in :data:`_FACTORIES` and add the name to the settings validator.
Reconciliation (:mod:`bot.payments.reconcile`) is provider-independent.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import (
    Account,
    AccountStatus,
    Agreement,
    AgreementStatus,
    Installment,
    PaymentCode,
    PaymentCodeStatus,
)
from bot.domain.accounts import balance_breakdown
from bot.domain.audit import record_audit
from bot.domain.errors import DomainError
from bot.domain.money import format_money, pesos_to_cents
from bot.payments.links import payment_link_token
from bot.policy import Policy

if TYPE_CHECKING:
    from bot.config import Settings

PaymentMethod = Literal["bank_ref", "spei", "oxxo", "card"]
PAYMENT_METHODS: tuple[str, ...] = get_args(PaymentMethod)
EventStatus = Literal["paid", "expired", "canceled", "refunded"]


class PaymentCodeError(DomainError):
    """A payment code cannot be issued as asked; ``reason`` is a stable machine-readable key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class WebhookRejected(DomainError):
    """A payment webhook is refused (bad signature or payload); ``reason`` is short and safe
    to return to the caller in a 4xx body."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason


class UnknownPaymentProvider(DomainError):
    """``PAYMENTS_PROVIDER`` names a provider that has no adapter."""


@dataclass(frozen=True)
class PaymentEvent:
    """One normalized notification from a provider."""

    provider: str
    event_id: str  # the provider's unique event id: the idempotency key
    reference: str  # the PaymentCode.reference (or, for SPEI, its CLABE)
    amount_cents: int
    currency: str
    paid_at: datetime  # aware
    status: EventStatus = "paid"
    raw: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)


class PaymentProvider(Protocol):
    """What every payment provider adapter offers (see the module docstring)."""

    name: str

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
        """Create, store (flush, not commit) and audit a payment code for ``account``."""
        ...

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """True when the webhook's signature over the exact raw body is valid."""
        ...

    def parse_webhook(self, raw_body: bytes) -> list[PaymentEvent]:
        """The normalized events of a verified webhook, or :class:`WebhookRejected`."""
        ...


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name (plain dicts are case-sensitive, HTTP is not)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def default_concept(account: Account) -> str:
    """The payment concept shown on the page and the voucher, e.g.
    ``Pago Tarjeta de crédito Banco Ejemplo``.

    No account number: the link and the page reach whoever holds the phone or a forwarded
    reminder, and the account's last 4 digits answer the identity question. The code's own
    reference tells the creditor which account was paid.
    """
    return f"Pago {account.product} {account.creditor}"[:200]


def shown_concept(concept: str, account: Account) -> str:
    """A stored concept as a page or message may show it: without the account number (codes
    issued before :func:`default_concept` dropped it, or a processor's concept that has it)."""
    digits = "".join(ch for ch in account.external_id if ch.isdigit())
    shown = concept.replace(account.external_id, "")
    if len(digits) >= 4:
        shown = shown.replace(digits, "").replace(digits[-4:], "")
    return " ".join(shown.split())


def check_code_request(
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    *,
    amount_cents: int,
    method: str,
    agreement: Agreement | None = None,
) -> datetime:
    """Refuse a code the rules do not allow; return its expiry (aware UTC).

    Refusals (:class:`PaymentCodeError` reasons): ``unknown_method``, ``no_validity``,
    ``amount_not_positive``, ``currency``, ``account_closed``, ``above_balance``,
    ``agreement_mismatch``, ``agreement_closed``, ``above_agreement``, ``oxxo_max_amount``.
    """
    if method not in PAYMENT_METHODS:
        raise PaymentCodeError(
            "unknown_method",
            f"unknown payment method '{method}' (use {', '.join(PAYMENT_METHODS)})",
        )
    hours = policy.payment_codes.validity_hours.get(method)  # type: ignore[call-overload]
    if hours is None:
        raise PaymentCodeError(
            "no_validity", f"policy.yml payment_codes.validity_hours has no entry for '{method}'"
        )
    if amount_cents <= 0:
        raise PaymentCodeError("amount_not_positive", "a payment code needs a positive amount")
    if account.currency != "MXN":
        raise PaymentCodeError(
            "currency", f"account {account.external_id} is in {account.currency}; codes are MXN"
        )
    if account.status != AccountStatus.ACTIVE.value:
        raise PaymentCodeError(
            "account_closed", f"account {account.external_id} is {account.status}; nothing to pay"
        )
    balance = balance_breakdown(session, account, clock).total_cents
    if amount_cents > balance:
        raise PaymentCodeError(
            "above_balance",
            f"{format_money(amount_cents)} is above the balance of {format_money(balance)}",
        )
    if agreement is not None:
        _check_agreement(session, account, agreement, amount_cents)
    if method == "oxxo":
        oxxo_max = pesos_to_cents(policy.payment_codes.oxxo_max_amount)
        if amount_cents > oxxo_max:
            raise PaymentCodeError(
                "oxxo_max_amount",
                f"OXXO takes at most {format_money(oxxo_max)} per reference; "
                f"{format_money(amount_cents)} needs SPEI, a bank deposit or a card",
            )
    return clock.now_utc() + timedelta(hours=hours)


def begin_code(
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    *,
    provider: str,
    method: str,
    amount_cents: int,
    agreement: Agreement | None,
    concept: str | None,
    offered: tuple[str, ...] = PAYMENT_METHODS,
) -> PaymentCode:
    """Every provider's first step: the shared refusals (:func:`check_code_request`), the
    provider's own ``offered`` methods (else ``method_not_offered``), then the code row
    (:func:`placeholder_code`) for the provider to fill in."""
    expires_at = check_code_request(
        session,
        clock,
        policy,
        account,
        amount_cents=amount_cents,
        method=method,
        agreement=agreement,
    )
    if method not in offered:
        raise PaymentCodeError(
            "method_not_offered",
            f"{provider} issues {', '.join(offered)} codes here, not '{method}'",
        )
    return placeholder_code(
        session,
        clock,
        account,
        provider=provider,
        method=method,
        amount_cents=amount_cents,
        expires_at=expires_at,
        agreement=agreement,
        concept=concept,
    )


def placeholder_code(
    session: Session,
    clock: Clock,
    account: Account,
    *,
    provider: str,
    method: str,
    amount_cents: int,
    expires_at: datetime,
    agreement: Agreement | None,
    concept: str | None,
) -> PaymentCode:
    """A new code row, flushed for its id, with unique placeholders for what the id decides
    (the reference, the link's token); nothing outside this transaction ever sees them."""
    placeholder = f"pending:{secrets.token_hex(16)}"
    code = PaymentCode(
        account_id=account.id,
        agreement_id=agreement.id if agreement is not None else None,
        provider=provider,
        method=method,
        reference=placeholder,
        clabe=None,
        amount_cents=amount_cents,
        currency="MXN",
        concept=(concept or default_concept(account))[:200],
        token=placeholder,
        expires_at=expires_at,
        status=PaymentCodeStatus.ACTIVE.value,
        created_at=clock.now_utc(),
        paid_at=None,
    )
    session.add(code)
    session.flush()
    return code


def finish_code(
    session: Session, clock: Clock, code: PaymentCode, *, link_secret: str, actor: str
) -> PaymentCode:
    """Sign the code's payment link, flush, and audit the issue (once its reference is set)."""
    code.token = payment_link_token(code, link_secret)
    session.flush()
    record_audit(
        session,
        clock,
        actor=actor,
        action="payment_code",
        account_id=code.account_id,
        payment_code_id=code.id,
        provider=code.provider,
        method=code.method,
        reference=code.reference,
        clabe=code.clabe,
        amount_cents=code.amount_cents,
        agreement_id=code.agreement_id,
        expires_at=code.expires_at.isoformat(),
    )
    return code


def _check_agreement(
    session: Session, account: Account, agreement: Agreement, amount_cents: int
) -> None:
    if agreement.account_id != account.id:
        raise PaymentCodeError(
            "agreement_mismatch", f"agreement {agreement.id} belongs to another account"
        )
    if agreement.status != AgreementStatus.ACTIVE.value:
        raise PaymentCodeError(
            "agreement_closed", f"agreement {agreement.id} is {agreement.status}"
        )
    owed = session.scalar(
        select(func.coalesce(func.sum(Installment.amount_cents - Installment.paid_cents), 0)).where(
            Installment.agreement_id == agreement.id
        )
    )
    if amount_cents > int(owed or 0):
        raise PaymentCodeError(
            "above_agreement",
            f"{format_money(amount_cents)} is above what agreement {agreement.id} still needs "
            f"({format_money(int(owed or 0))})",
        )


_FACTORIES: dict[str, Callable[[Settings], PaymentProvider]] = {}
# The providers built, by the settings they were built from: a processor's client keeps its
# connection pool (and Conekta's webhook key is read once), not one per webhook or code.
_BUILT: dict[int, tuple[Settings, PaymentProvider]] = {}
_BUILT_MAX = 8


def _local_factory(settings: Settings) -> PaymentProvider:
    from bot.payments.local import LocalPaymentProvider  # local imports this module

    return LocalPaymentProvider(
        webhook_secret=settings.payments_webhook_secret,
        link_secret=settings.resolved_secret_key(),
    )


def _stripe_factory(settings: Settings) -> PaymentProvider:
    from bot.payments.stripe_provider import StripePaymentProvider  # imports this module

    return StripePaymentProvider(
        api_key=settings.stripe_api_key or "",
        webhook_secrets=settings.stripe_webhook_secrets,
        api_base_url=settings.stripe_api_base_url,
        billing_email=settings.payments_billing_email,
        tolerance_seconds=settings.stripe_webhook_tolerance_seconds,
        link_secret=settings.resolved_secret_key(),
    )


def _conekta_factory(settings: Settings) -> PaymentProvider:
    from bot.payments.conekta_provider import ConektaPaymentProvider, load_webhook_key

    return ConektaPaymentProvider(
        api_key=settings.conekta_api_key or "",
        webhook_key=load_webhook_key(settings.conekta_webhook_public_key_file or ""),
        api_base_url=settings.conekta_api_base_url,
        billing_email=settings.payments_billing_email,
        link_secret=settings.resolved_secret_key(),
    )


_FACTORIES["local"] = _local_factory
_FACTORIES["stripe"] = _stripe_factory
_FACTORIES["conekta"] = _conekta_factory


def get_provider(settings: Settings) -> PaymentProvider:
    """The provider named by ``PAYMENTS_PROVIDER``, configured from the settings."""
    built = _BUILT.get(id(settings))
    if built is not None and built[0] is settings:
        return built[1]
    factory = _FACTORIES.get(settings.payments_provider)
    if factory is None:
        raise UnknownPaymentProvider(
            f"PAYMENTS_PROVIDER={settings.payments_provider!r} has no adapter "
            f"(known: {', '.join(sorted(_FACTORIES))})"
        )
    provider = factory(settings)
    if len(_BUILT) >= _BUILT_MAX:
        _BUILT.pop(next(iter(_BUILT)))
    _BUILT[id(settings)] = (settings, provider)  # the settings held: their id stays theirs
    return provider
