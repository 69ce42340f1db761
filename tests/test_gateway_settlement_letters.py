"""The carta finiquito through the real gateway: a payoff by signed payment webhook sends the
document on WhatsApp (only to a verified chat), anyone can check it at /constancias/{code},
and agents download it from the console. Real SQLite, the Graph API stood in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.config import Settings
from bot.db.engine import session_factory
from bot.db.models import Account, Conversation, LetterKind, PaymentCode, SettlementLetter
from bot.domain.negotiation import accept_offer, offer_settlement
from bot.domain.payments import apply_payment
from bot.domain.settlement_letters import grouped_code
from bot.payments import get_provider
from bot.payments.local import local_webhook_body, sign_local_webhook
from bot.policy import Policy
from tests.conftest_gateway import PHONE, envelope, signed_post, text, wait_outbound_settled
from tests.graph_stub import GraphStub, describe
from tests.test_console_access import client_for, escalated, login, people  # noqa: F401 (fixtures)

pytest_plugins = ["tests.conftest_gateway"]

OWED = 1_200_000
FULL_NUMBER = "4152-3100-9876-5678"


@pytest.fixture
def account(make_account: Callable[..., Account]) -> Account:
    return make_account(phone=PHONE, external_id=FULL_NUMBER, full_name="Laura Méndez Ortiz")


@pytest.fixture
def issue(
    session: Session, clock: Clock, policy: Policy, gateway_settings: Settings
) -> Callable[..., PaymentCode]:
    def _issue(account: Account, amount_cents: int = OWED, **kw: Any) -> PaymentCode:
        code = get_provider(gateway_settings).issue_code(
            session, clock, policy, account, amount_cents=amount_cents, method="spei", **kw
        )
        session.commit()
        return code

    return _issue


def pay(gateway: TestClient, code: PaymentCode, event_id: str = "evt-1") -> str:
    raw = local_webhook_body(
        event_id=event_id,
        reference=code.reference,
        amount_cents=code.amount_cents,
        paid_at=datetime(2026, 11, 23, 17, 0, tzinfo=timezone.utc),
    )
    answer = gateway.post(
        "/webhooks/payments/local",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Acuerdo-Signature": sign_local_webhook("acuerdo-sandbox-payments-secret", raw),
        },
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["status"])


def start_chat(gateway: TestClient, graph_server: GraphStub, db_url: str, clock: Clock, *,
               verified: bool) -> None:  # fmt: skip
    """The debtor says hello and gets an answer; ``verified``: they proved who they are."""
    signed_post(gateway, envelope([text("hola")]))
    graph_server.wait_for_sends(1)
    if verified:
        with session_factory(db_url)() as session:
            session.execute(update(Conversation).values(verified_at=clock.now_utc()))
            session.commit()


def stored_letters(db_url: str) -> list[SettlementLetter]:
    with session_factory(db_url)() as session:
        return list(session.scalars(select(SettlementLetter)))


def documents(graph_server: GraphStub) -> list[dict[str, Any]]:
    return [s.body for s in graph_server.sends if s.body.get("type") == "document"]


def test_paying_off_sends_the_letter_as_a_whatsapp_document_to_a_verified_chat(
    gateway: TestClient,
    graph_server: GraphStub,
    db_url: str,
    clock: Clock,
    account: Account,
    issue: Callable[..., PaymentCode],
) -> None:
    start_chat(gateway, graph_server, db_url, clock, verified=True)

    assert pay(gateway, issue(account)) == "applied"

    graph_server.wait_for_sends(3)  # the greeting's answer, the thank-you, the letter
    wait_outbound_settled(db_url)
    (letter,) = stored_letters(db_url)
    assert letter.kind == LetterKind.PAID_IN_FULL.value
    (document,) = documents(graph_server)
    code = grouped_code(letter.verification_code)
    assert document["document"]["link"] == f"http://testserver/constancias/{code}/pdf"
    assert document["document"]["filename"] == "constancia-liquidacion-5678.pdf"
    caption = document["document"]["caption"]
    assert "terminación 5678" in caption and f"http://testserver/constancias/{code}" in caption
    assert FULL_NUMBER not in caption

    # What WhatsApp downloads from that link is the stored document of record.
    answer = gateway.get(f"/constancias/{code}/pdf")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"] == (
        'attachment; filename="constancia-liquidacion-5678.pdf"'
    )
    assert answer.content.startswith(b"%PDF")
    assert answer.content == stored_letters(db_url)[0].pdf
    assert gateway.get(f"/constancias/{code.lower()}/pdf").content == answer.content


def test_an_unverified_chat_gets_a_text_that_discloses_nothing(
    gateway: TestClient,
    graph_server: GraphStub,
    db_url: str,
    clock: Clock,
    account: Account,
    issue: Callable[..., PaymentCode],
) -> None:
    start_chat(gateway, graph_server, db_url, clock, verified=False)

    pay(gateway, issue(account))

    graph_server.wait_for_sends(3)
    wait_outbound_settled(db_url)
    (letter,) = stored_letters(db_url)
    assert documents(graph_server) == []
    invitation = describe(graph_server.sends[-1].body)
    assert "documento" in invitation and "identidad" in invitation
    for send in graph_server.sends:
        said = describe(send.body)
        assert "constancias" not in said and grouped_code(letter.verification_code) not in said
        assert "5678" not in said and "$" not in said


def test_a_redelivered_webhook_or_a_second_payment_sends_no_second_letter(
    gateway: TestClient,
    graph_server: GraphStub,
    db_url: str,
    clock: Clock,
    account: Account,
    issue: Callable[..., PaymentCode],
) -> None:
    start_chat(gateway, graph_server, db_url, clock, verified=True)
    code = issue(account)
    pay(gateway, code)
    graph_server.wait_for_sends(3)

    assert pay(gateway, code) == "duplicate"  # the provider delivers the same event again
    assert pay(gateway, code, event_id="evt-2") == "applied"  # money paid in again

    graph_server.wait_for_sends(4)  # the second payment's thank-you
    wait_outbound_settled(db_url)
    assert len(stored_letters(db_url)) == 1
    assert len(documents(graph_server)) == 1
    assert len(graph_server.sends) == 4


def test_completing_a_settlement_sends_a_settlement_letter(
    gateway: TestClient,
    graph_server: GraphStub,
    db_url: str,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    issue: Callable[..., PaymentCode],
) -> None:
    agreement = accept_offer(
        session, clock, policy, offer_settlement(session, clock, policy, account)
    )
    session.commit()
    start_chat(gateway, graph_server, db_url, clock, verified=True)

    pay(gateway, issue(account, agreement.total_cents, agreement=agreement))

    graph_server.wait_for_sends(3)
    (letter,) = stored_letters(db_url)
    assert letter.kind == LetterKind.SETTLEMENT.value
    assert len(documents(graph_server)) == 1
    page = gateway.get(f"/constancias/{letter.verification_code}")
    assert page.status_code == 200
    assert "convenio" in page.text and "$12,000.00" in page.text


def test_the_verification_page_confirms_a_genuine_code_however_it_is_typed(
    gateway: TestClient, session: Session, clock: Clock, policy: Policy, account: Account
) -> None:
    applied = apply_payment(
        session, clock, policy, account,
        amount_cents=OWED, paid_at=clock.now_utc(), reference="DEP-1", source="import",
    )  # fmt: skip
    session.commit()
    assert applied.letter is not None
    code = grouped_code(applied.letter.verification_code)

    for typed in (code, code.lower(), code.replace("-", ""), code.replace("-", " ")):
        page = gateway.get(f"/constancias/{typed}")
        assert page.status_code == 200, typed
        assert "Esta constancia es auténtica" in page.text
        assert "Laura Méndez Ortiz" in page.text and "Banco Ejemplo" in page.text
        assert "terminación 5678" in page.text and FULL_NUMBER not in page.text
        assert "23 de noviembre de 2026" in page.text and "pagó en su totalidad" in page.text
        assert 'name="viewport"' in page.text
        assert page.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("typed", ["ZZZZ-ZZZZ-ZZZZ-ZZZZ", "abc", "UUUU-UUUU-UUUU-UUUU", "x" * 300])
def test_an_unknown_or_malformed_code_gets_the_same_not_found_page(
    gateway: TestClient, typed: str
) -> None:
    page = gateway.get(f"/constancias/{typed}")
    document = gateway.get(f"/constancias/{typed}/pdf")

    assert page.status_code == document.status_code == 404
    assert "No encontramos una constancia con este código" in page.text
    assert document.text == page.text


def test_an_agent_sees_the_letter_in_the_console_and_downloads_it(
    gateway: TestClient,
    people: dict[str, str],  # noqa: F811
    escalated: Conversation,  # noqa: F811
    session: Session,
    clock: Clock,
    policy: Policy,
) -> None:
    account = session.get(Account, escalated.account_id)
    assert account is not None
    apply_payment(
        session, clock, policy, account,
        amount_cents=OWED, paid_at=clock.now_utc(), reference="DEP-1", source="import",
    )  # fmt: skip
    session.commit()
    download = f"/console/chats/{escalated.id}/constancia"
    stranger = gateway.get(download, headers={"Accept": "text/html"}, follow_redirects=False)
    assert stranger.status_code == 303  # to the sign-in page: agents only

    login(gateway, "lucia")
    chat = gateway.get(f"/console/chats/{escalated.id}")
    assert "Constancia de liquidación" in chat.text and download in chat.text
    answer = gateway.get(download)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/pdf"
    assert answer.content.startswith(b"%PDF")


def test_another_agent_cannot_download_the_letter_of_a_chat_claimed_by_someone_else(
    gateway: TestClient,
    people: dict[str, str],  # noqa: F811
    escalated: Conversation,  # noqa: F811
    session: Session,
    clock: Clock,
    policy: Policy,
) -> None:
    account = session.get(Account, escalated.account_id)
    assert account is not None
    apply_payment(
        session, clock, policy, account,
        amount_cents=OWED, paid_at=clock.now_utc(), reference="DEP-1", source="import",
    )  # fmt: skip
    session.commit()
    chat = f"/console/chats/{escalated.id}"
    lucia_csrf = login(gateway, "lucia")
    gateway.post(f"{chat}/claim", data={"csrf_token": lucia_csrf})
    mateo = client_for(gateway)
    login(mateo, "mateo")

    answer = mateo.get(f"{chat}/constancia")

    assert answer.status_code == 403 and not answer.content.startswith(b"%PDF")
    assert gateway.get(f"{chat}/constancia").content.startswith(b"%PDF")  # Lucía's chat
