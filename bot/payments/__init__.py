"""Payment codes: references a debtor can pay (bank deposit, SPEI CLABE, OXXO cash, card link),
the provider interface behind them, and reconciliation of the provider's confirmations.

See ``docs/payment-codes.md`` for the reference layouts and how to add a provider.
"""

from bot.payments.links import (
    InvalidPaymentLink,
    payment_link_token,
    payment_url,
    read_payment_link_token,
)
from bot.payments.provider import (
    PAYMENT_METHODS,
    PaymentCodeError,
    PaymentEvent,
    PaymentMethod,
    PaymentProvider,
    UnknownPaymentProvider,
    WebhookRejected,
    get_provider,
)
from bot.payments.reconcile import (
    UnknownPaymentReference,
    active_code_for,
    apply_payment_event,
    expire_codes,
    find_code_for_event,
)

__all__ = [
    "PAYMENT_METHODS",
    "InvalidPaymentLink",
    "PaymentCodeError",
    "PaymentEvent",
    "PaymentMethod",
    "PaymentProvider",
    "UnknownPaymentProvider",
    "UnknownPaymentReference",
    "WebhookRejected",
    "active_code_for",
    "apply_payment_event",
    "expire_codes",
    "find_code_for_event",
    "get_provider",
    "payment_link_token",
    "payment_url",
    "read_payment_link_token",
]
