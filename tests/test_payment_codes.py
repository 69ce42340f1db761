"""Issuing payment codes with the built-in ``local`` provider: references, expiry, links, QR."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.config import Settings
from bot.db.models import Account, AccountStatus, AuditEntry, PaymentCode, PaymentCodeStatus
from bot.payments.check_digits import is_valid_clabe, is_valid_luhn
from bot.payments.links import (
    InvalidPaymentLink,
    payment_link_token,
    payment_url,
    read_payment_link_token,
)
from bot.payments.local import LocalPaymentProvider
from bot.payments.provider import PaymentCodeError, get_provider
from bot.payments.qr import qr_png, qr_svg
from bot.payments.reconcile import active_code_for, expire_codes
from bot.policy import Policy

LINK_SECRET = "test-link-secret"
PUBLIC_URL = "https://cobranza.example.mx"


@pytest.fixture
def provider() -> LocalPaymentProvider:
    return LocalPaymentProvider(webhook_secret="test-webhook-secret", link_secret=LINK_SECRET)


@pytest.fixture
def account(make_account: Callable[..., Account]) -> Account:
    return make_account()  # owes $12,000.00


def _issue(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    method: str,
    amount_cents: int = 250_000,
    **kwargs: Any,
) -> PaymentCode:
    code = provider.issue_code(
        session, clock, policy, account, amount_cents=amount_cents, method=method, **kwargs
    )
    session.commit()
    return code


def test_bank_reference_carries_the_account_and_a_luhn_digit(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
) -> None:
    code = _issue(provider, session, clock, policy, account, "bank_ref")

    assert len(code.reference) == 17 and code.reference.isdigit()
    assert code.reference[:8] == f"{account.id:08d}"
    assert code.reference[8:16] == f"{code.id:08d}"
    assert is_valid_luhn(code.reference)
    assert code.clabe is None
    assert code.provider == "local" and code.method == "bank_ref"
    assert code.amount_cents == 250_000 and code.currency == "MXN"
    assert code.concept == "Pago Tarjeta de crédito Banco Ejemplo"  # no account number
    assert code.status == PaymentCodeStatus.ACTIVE.value


def test_spei_code_gets_its_own_valid_clabe_under_the_policy_prefix(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
) -> None:
    first = _issue(provider, session, clock, policy, account, "spei")
    second = _issue(provider, session, clock, policy, account, "spei", amount_cents=100_000)

    for code in (first, second):
        assert code.clabe is not None and len(code.clabe) == 18
        assert code.clabe.startswith(policy.payment_codes.clabe_prefix)
        assert is_valid_clabe(code.clabe)
        assert code.reference == code.clabe
        assert code.clabe[6:17] == f"{code.id:011d}"
    assert first.clabe != second.clabe


def test_oxxo_reference_has_14_digits_and_a_check_digit(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
) -> None:
    code = _issue(provider, session, clock, policy, account, "oxxo", amount_cents=1_000_000)

    assert len(code.reference) == 14 and code.reference.startswith("93")
    assert is_valid_luhn(code.reference)


def test_oxxo_refuses_more_than_its_maximum(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
) -> None:
    with pytest.raises(PaymentCodeError) as refused:
        provider.issue_code(session, clock, policy, account, amount_cents=1_000_001, method="oxxo")
    assert refused.value.reason == "oxxo_max_amount"
    assert session.scalars(select(PaymentCode)).first() is None


@pytest.mark.parametrize(
    ("amount_cents", "method", "reason"),
    [
        (0, "bank_ref", "amount_not_positive"),
        (-100, "spei", "amount_not_positive"),
        (1_200_001, "spei", "above_balance"),
        (10_000, "bitcoin", "unknown_method"),
    ],
)
def test_codes_outside_the_rules_are_refused_with_a_reason(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    amount_cents: int,
    method: str,
    reason: str,
) -> None:
    with pytest.raises(PaymentCodeError) as refused:
        provider.issue_code(
            session, clock, policy, account, amount_cents=amount_cents, method=method
        )
    assert refused.value.reason == reason


def test_a_closed_account_gets_no_code(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
) -> None:
    account.status = AccountStatus.PAID.value
    with pytest.raises(PaymentCodeError) as refused:
        provider.issue_code(session, clock, policy, account, amount_cents=100, method="card")
    assert refused.value.reason == "account_closed"


def test_every_method_gets_a_unique_reference_and_a_signed_link(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
) -> None:
    codes = [
        _issue(provider, session, clock, policy, account, method)
        for method in ("bank_ref", "spei", "oxxo", "card")
    ]

    assert len({c.reference for c in codes}) == 4
    assert len({c.token for c in codes}) == 4
    for code in codes:
        assert read_payment_link_token(code.token, LINK_SECRET) == code.id


def test_code_is_stored_expiring_after_the_policy_validity_and_audited(
    provider: LocalPaymentProvider,
    session: Session,
    db_url: str,
    clock: Clock,
    policy: Policy,
    account: Account,
) -> None:
    code = _issue(provider, session, clock, policy, account, "card", actor="agent:lucia")

    from bot.db.engine import session_factory

    with session_factory(db_url)() as fresh:
        stored = fresh.get(PaymentCode, code.id)
        assert stored is not None
        assert stored.reference == code.reference
        assert stored.expires_at == clock.now_utc() + timedelta(
            hours=policy.payment_codes.validity_hours["card"]
        )
        audit = fresh.scalars(select(AuditEntry).where(AuditEntry.action == "payment_code")).one()
    assert audit.actor == "agent:lucia"
    assert audit.account_id == account.id
    assert audit.details["payment_code_id"] == code.id
    assert audit.details["reference"] == code.reference
    assert audit.details["amount_cents"] == 250_000


def test_the_default_actor_is_the_bot(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
) -> None:
    _issue(provider, session, clock, policy, account, "oxxo")
    audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "payment_code")).one()
    assert audit.actor == "bot"


def test_codes_expire_after_their_validity_and_are_reused_until_then(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
) -> None:
    code = _issue(provider, session, clock, policy, account, "oxxo", amount_cents=50_000)
    hours = policy.payment_codes.validity_hours["oxxo"]
    just_before = Clock(clock.tz, pinned=clock.now() + timedelta(hours=hours, seconds=-1))
    at_expiry = Clock(clock.tz, pinned=clock.now() + timedelta(hours=hours))

    assert active_code_for(session, clock, account, "oxxo", 50_000) == code
    assert active_code_for(session, clock, account, "oxxo", 60_000) is None
    assert active_code_for(session, clock, account, "spei", 50_000) is None
    assert expire_codes(session, just_before) == 0
    assert active_code_for(session, at_expiry, account, "oxxo", 50_000) is None

    assert expire_codes(session, at_expiry) == 1
    session.commit()
    assert code.status == PaymentCodeStatus.EXPIRED.value
    assert expire_codes(session, at_expiry) == 0
    assert session.scalars(
        select(AuditEntry).where(AuditEntry.action == "payment_code_expired")
    ).one()


def test_link_token_round_trips_and_builds_the_public_url() -> None:
    token = payment_link_token(42, LINK_SECRET)
    assert read_payment_link_token(token, LINK_SECRET) == 42
    assert payment_url(PUBLIC_URL + "/", token) == f"{PUBLIC_URL}/pay/{token}"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: payment_link_token(43, LINK_SECRET).split(".")[0] + "." + t.split(".")[1],
        lambda t: "not-a-token",
        lambda t: "",
    ],
)
def test_a_tampered_link_token_is_refused(tamper: Callable[[str], str]) -> None:
    token = payment_link_token(42, LINK_SECRET)
    with pytest.raises(InvalidPaymentLink):
        read_payment_link_token(tamper(token), LINK_SECRET)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = payment_link_token(42, "another-installation")
    with pytest.raises(InvalidPaymentLink):
        read_payment_link_token(token, LINK_SECRET)


def test_get_provider_builds_the_local_provider_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        sandbox=True,  # WhatsApp on the sandbox's credentials; the payments secret is set
        secret_key="settings-secret",
        payments_webhook_secret="hook-secret",
        var_dir=str(tmp_path),
    )
    provider = get_provider(settings)
    assert provider.name == "local"
    body = b'{"x": 1}'
    from bot.payments.local import sign_local_webhook

    assert provider.verify_webhook(
        {"X-Acuerdo-Signature": sign_local_webhook("hook-secret", body)}, body
    )


def _png_grayscale(png: bytes) -> tuple[int, int, bytes]:
    """Decode a non-interlaced 1- or 8-bit greyscale PNG (what segno writes) to 8-bit pixels."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = data
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert colour == 0 and depth in (1, 8) and interlace == 0
    raw = zlib.decompress(idat)
    stride = (width * depth + 7) // 8
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - 1] if i else 0
            up, up_left = previous[i], previous[i - 1] if i else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[i] = (line[i] + pred) & 0xFF
        rows.append(line)
        previous = line
    pixels = bytearray()
    for line in rows:
        if depth == 8:
            pixels += line
        else:
            bits = "".join(f"{byte:08b}" for byte in line)[:width]
            pixels += bytes(255 if bit == "1" else 0 for bit in bits)
    return width, height, bytes(pixels)


def test_qr_png_decodes_to_the_payment_link(
    provider: LocalPaymentProvider,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
) -> None:
    zxingcpp = pytest.importorskip("zxingcpp")
    code = _issue(provider, session, clock, policy, account, "card")
    link = payment_url(PUBLIC_URL, code.token)

    png = qr_png(link, scale=4)
    width, height, pixels = _png_grayscale(png)
    image = memoryview(pixels).cast("B", (height, width))
    results = zxingcpp.read_barcodes(image)

    assert [r.text for r in results] == [link]
    assert results[0].format == zxingcpp.BarcodeFormat.QRCode


def test_qr_png_is_a_png_and_svg_is_an_svg() -> None:
    link = f"{PUBLIC_URL}/pay/abc"
    assert qr_png(link).startswith(b"\x89PNG\r\n\x1a\n")
    svg = qr_svg(link)
    assert "<svg" in svg and "</svg>" in svg
    assert not svg.startswith("<?xml")
