"""The hosted payment page, its QR, and the signed payment webhook that thanks the debtor."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.config import Settings
from bot.db.engine import session_factory
from bot.db.models import Account, Conversation, Payment, PaymentCode
from bot.payments import get_provider
from bot.payments.local import local_webhook_body, sign_local_webhook
from bot.policy import Policy
from tests.conftest_gateway import envelope, rows, signed_post, text, wait_outbound_settled
from tests.graph_stub import GraphStub, describe

pytest_plugins = ["tests.conftest_gateway"]


@pytest.fixture
def oxxo_code(
    make_account: Callable[..., Account],
    session: Session,
    clock: Clock,
    policy: Policy,
    gateway_settings: Settings,
) -> PaymentCode:
    account = make_account()
    code = get_provider(gateway_settings).issue_code(
        session, clock, policy, account, amount_cents=125_000, method="oxxo"
    )
    session.commit()
    return code


def _webhook(
    gateway: TestClient, code: PaymentCode, *, event_id: str = "evt-1", secret: str | None = None
) -> tuple[bytes, httpx.Response]:
    raw = local_webhook_body(
        event_id=event_id,
        reference=code.reference,
        amount_cents=code.amount_cents,
        paid_at=datetime(2026, 11, 23, 17, 0, tzinfo=timezone.utc),
    )
    signature = sign_local_webhook(secret or "acuerdo-sandbox-payments-secret", raw)
    response = gateway.post(
        "/webhooks/payments/local",
        content=raw,
        headers={"Content-Type": "application/json", "X-Acuerdo-Signature": signature},
    )
    return raw, response


def test_the_payment_page_shows_amount_reference_qr_and_instructions(
    gateway: TestClient, oxxo_code: PaymentCode
) -> None:
    response = gateway.get(f"/pay/{oxxo_code.token}")
    assert response.status_code == 200
    page = response.text
    assert "$1,250.00" in page
    assert oxxo_code.reference in page
    assert "<svg" in page and f"/pay/{oxxo_code.token}/qr.png" in page
    assert "OXXO" in page and "asistente automatizado" in page
    assert "Banco Ejemplo" in page
    assert 'name="viewport"' in page


def test_the_qr_images_encode_the_payment_link(gateway: TestClient, oxxo_code: PaymentCode) -> None:
    png = gateway.get(f"/pay/{oxxo_code.token}/qr.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    svg = gateway.get(f"/pay/{oxxo_code.token}/qr.svg")
    assert svg.status_code == 200 and svg.text.lstrip().startswith("<svg")


@pytest.mark.parametrize(
    "mangle",
    [lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), lambda t: "x" + t, lambda t: "abc"],
)
def test_a_tampered_or_unknown_token_is_not_found(
    gateway: TestClient, oxxo_code: PaymentCode, mangle: Callable[[str], str]
) -> None:
    token = mangle(oxxo_code.token)
    assert gateway.get(f"/pay/{token}").status_code == 404
    assert gateway.get(f"/pay/{token}/qr.png").status_code == 404
    assert gateway.get(f"/pay/{token}/qr.svg").status_code == 404


def test_a_paid_code_says_so_on_its_page(gateway: TestClient, oxxo_code: PaymentCode) -> None:
    _raw, response = _webhook(gateway, oxxo_code)
    assert response.status_code == 200
    page = gateway.get(f"/pay/{oxxo_code.token}").text
    assert "ya quedó registrado" in page


def test_a_signed_payment_webhook_is_applied_once_and_thanks_the_debtor(
    gateway: TestClient, oxxo_code: PaymentCode, graph_server: GraphStub, db_url: str
) -> None:
    signed_post(gateway, envelope([text("hola")]))  # the debtor has a WhatsApp conversation
    graph_server.wait_for_sends(1)
    with session_factory(db_url)() as session:
        session.execute(update(Conversation).values(verified_at=datetime.now(timezone.utc)))
        session.commit()
    _raw, first = _webhook(gateway, oxxo_code)
    assert first.status_code == 200 and first.json()["status"] == "applied"
    _raw, again = _webhook(gateway, oxxo_code)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    graph_server.wait_for_sends(2)
    wait_outbound_settled(db_url)
    thanks = describe(graph_server.sends[1].body)
    assert "$1,250.00" in thanks and oxxo_code.reference in thanks
    # A receipt: the payment's date and what is still owed after it ($12,000 - $1,250)
    assert "del lunes 23 de noviembre de 2026" in thanks
    assert "Tu saldo pendiente ahora es de $10,750.00" in thanks
    assert len(graph_server.sends) == 2
    with session_factory(db_url)() as session:
        payments = session.scalars(select(Payment)).all()
        assert len(payments) == 1 and payments[0].provider_event_id == "evt-1"


def test_an_unverified_conversation_is_thanked_without_amounts(
    gateway: TestClient, oxxo_code: PaymentCode, graph_server: GraphStub
) -> None:
    signed_post(gateway, envelope([text("hola")]))
    graph_server.wait_for_sends(1)
    _webhook(gateway, oxxo_code)
    graph_server.wait_for_sends(2)
    thanks = describe(graph_server.sends[1].body)
    assert "Registramos un pago" in thanks and "$" not in thanks


def test_a_payment_webhook_with_a_bad_signature_is_refused(
    gateway: TestClient, oxxo_code: PaymentCode, db_url: str
) -> None:
    _raw, response = _webhook(gateway, oxxo_code, secret="not-the-secret")
    assert response.status_code == 401
    unsigned = gateway.post(
        "/webhooks/payments/local", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert unsigned.status_code == 401
    with session_factory(db_url)() as session:
        assert session.scalars(select(Payment)).all() == []


EVENT = {
    "event_id": "e",
    "reference": "R",
    "amount": "10",
    "currency": "MXN",
    "paid_at": "2026-11-23T10:00:00Z",
}


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"{not json", 400),
        (b"[]", 400),
        (
            json.dumps({**EVENT, "currency": "USD"}).encode(),
            400,
        ),
        (
            json.dumps({**EVENT, "reference": "NOPE"}).encode(),
            422,
        ),
    ],
)
def test_malformed_payment_webhooks_get_a_4xx(gateway: TestClient, raw: bytes, status: int) -> None:
    signature = sign_local_webhook("acuerdo-sandbox-payments-secret", raw)
    response = gateway.post(
        "/webhooks/payments/local",
        content=raw,
        headers={"Content-Type": "application/json", "X-Acuerdo-Signature": signature},
    )
    assert response.status_code == status
    assert response.json()["detail"]


def test_an_unknown_payment_provider_is_not_found(gateway: TestClient) -> None:
    assert gateway.post("/webhooks/payments/stripe", content=b"{}").status_code == 404


def test_the_thank_you_respects_an_opt_out(
    gateway: TestClient, oxxo_code: PaymentCode, graph_server: GraphStub, db_url: str
) -> None:
    from bot.domain.conversations import opt_out

    signed_post(gateway, envelope([text("hola")]))
    graph_server.wait_for_sends(1)
    with session_factory(db_url)() as session:
        opt_out(
            session,
            Clock.from_setting("2026-11-23", "America/Mexico_City"),
            "whatsapp",
            "+525512340001",
        )
        session.commit()
    _raw, response = _webhook(gateway, oxxo_code)
    assert response.status_code == 200
    with session_factory(db_url)() as session:
        assert session.scalars(select(Payment)).one()
    assert len(rows(db_url, "out")) == 1  # only the first reply: no thank-you was queued
