"""Signed payment-link tokens: ``{ACUERDO_PUBLIC_URL}/pay/{token}``.

The token carries only the payment code's id, signed with ``ACUERDO_SECRET_KEY``
(itsdangerous, salt ``payment-link``), so a link cannot be forged or edited to show
another debtor's code. It does not expire by itself: the page shows the code's own
status (active, paid, expired), which is what a debtor holding an old link should see.
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeSerializer

from bot.db.models import PaymentCode
from bot.domain.errors import DomainError

SALT = "payment-link"


class InvalidPaymentLink(DomainError):
    """The token was not signed by this installation or was altered."""


def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=SALT)


def payment_link_token(code: PaymentCode | int, secret: str) -> str:
    """The URL-safe signed token naming ``code`` (a flushed row, or its id)."""
    code_id = code if isinstance(code, int) else code.id
    if code_id is None:
        raise ValueError("the payment code must be flushed (have an id) before it gets a link")
    return _serializer(secret).dumps({"c": code_id})


def read_payment_link_token(token: str, secret: str) -> int:
    """The payment code id in ``token``, or :class:`InvalidPaymentLink` on any tampering."""
    try:
        payload = _serializer(secret).loads(token)
    except BadSignature as exc:
        raise InvalidPaymentLink("this payment link is not valid") from exc
    code_id = payload.get("c") if isinstance(payload, dict) else None
    if not isinstance(code_id, int) or isinstance(code_id, bool) or code_id <= 0:
        raise InvalidPaymentLink("this payment link is not valid")
    return code_id


def payment_url(public_url: str, token: str) -> str:
    """The absolute link sent to the debtor (and encoded in the QR)."""
    return f"{public_url.rstrip('/')}/pay/{token}"
