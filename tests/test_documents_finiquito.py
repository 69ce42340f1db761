"""The carta finiquito's PDF: what a person reads in it, that it draws, and that it is kept."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.engine import session_factory
from bot.db.models import Account, SettlementLetter
from bot.documents.finiquito_pdf import FontMissing, LetterDocument, find_font_dir, render_finiquito
from bot.documents.letters import letter_pdf, pdf_filename, verification_url
from bot.domain.money import format_money
from bot.domain.negotiation import accept_offer, offer_settlement
from bot.domain.payments import apply_payment
from bot.domain.settlement_letters import grouped_code, letter_facts
from bot.policy import Policy

PUBLIC_URL = "https://cobranza.example.mx"
FULL_NUMBER = "4152-3100-9876-5678"


@pytest.fixture
def account(make_account: Callable[..., Account]) -> Account:
    return make_account(external_id=FULL_NUMBER, full_name="María José Núñez Peña")


def pay_off(
    session: Session, clock: Clock, policy: Policy, account: Account, amount_cents: int
) -> SettlementLetter:
    applied = apply_payment(
        session,
        clock,
        policy,
        account,
        amount_cents=amount_cents,
        paid_at=clock.now_utc(),
        reference="REF-778899",
        source="import",
    )
    session.commit()
    assert applied.letter is not None
    return applied.letter


def pdf_text(pdf: bytes) -> str:
    """What a person reads in ``pdf``, with line breaks and spacing as single spaces."""
    reader = PdfReader(io.BytesIO(pdf))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def test_the_letter_names_the_debtor_the_masked_account_the_total_and_how_to_verify(
    session: Session, clock: Clock, policy: Policy, account: Account
) -> None:
    letter = pay_off(session, clock, policy, account, 1_200_000)

    text = pdf_text(letter_pdf(session, letter, PUBLIC_URL))

    code = grouped_code(letter.verification_code)
    assert "Constancia de liquidación (carta finiquito)" in text
    assert "Banco Ejemplo" in text and "María José Núñez Peña" in text
    assert "terminación 5678" in text
    assert FULL_NUMBER not in text and "3100-9876" not in text and "31009876" not in text
    assert "$12,000.00" in text and "REF-778899" in text
    assert "23 de noviembre de 2026" in text  # the payoff and issue dates, in Spanish
    assert "no tiene saldo pendiente" in text
    assert code in text
    assert f"{PUBLIC_URL}/constancias/{code}" in text
    assert "asistente automatizado" in text


def test_a_settlement_letter_says_what_was_owed_and_what_the_creditor_accepted(
    session: Session, clock: Clock, policy: Policy, account: Account
) -> None:
    agreement = accept_offer(
        session, clock, policy, offer_settlement(session, clock, policy, account)
    )
    session.commit()

    letter = pay_off(session, clock, policy, account, agreement.total_cents)
    text = pdf_text(letter_pdf(session, letter, PUBLIC_URL))

    assert "convenio de liquidación" in text
    assert "$12,000.00" in text  # the original balance
    assert f"aceptó la cantidad de {format_money(agreement.total_cents)}" in text
    assert "como pago total del adeudo" in text


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is not installed")
def test_the_letter_renders_to_a_page_with_ink_on_it(
    session: Session, clock: Clock, policy: Policy, account: Account, tmp_path: Path
) -> None:
    letter = pay_off(session, clock, policy, account, 1_200_000)
    pdf = tmp_path / pdf_filename(letter)
    pdf.write_bytes(letter_pdf(session, letter, PUBLIC_URL))

    subprocess.run(
        ["pdftoppm", "-png", "-r", "50", "-singlefile", str(pdf), str(tmp_path / "page")],
        check=True,
        timeout=60,
    )

    page = Image.open(tmp_path / "page.png").convert("L")
    dark = sum(1 for value in page.getdata() if value < 128)
    assert page.width > 300 and page.height > 400  # a Letter-size page at 50 dpi
    assert dark > 0.01 * page.width * page.height  # text and the QR, not a blank page


def test_the_document_of_record_is_stored_once_and_never_rendered_again(
    session: Session, clock: Clock, policy: Policy, account: Account
) -> None:
    letter = pay_off(session, clock, policy, account, 1_200_000)
    first = letter_pdf(session, letter, PUBLIC_URL)

    # Whatever changes later (here even the address), the stored document is what is served.
    again = letter_pdf(session, letter, "https://otro.example.mx")

    assert again == first == letter.pdf
    assert pdf_filename(letter) == "constancia-liquidacion-5678.pdf"


def test_when_two_gateways_render_it_at_once_the_first_stored_copy_is_served_by_both(
    db_url: str, session: Session, clock: Clock, policy: Policy, account: Account
) -> None:
    letter = pay_off(session, clock, policy, account, 1_200_000)
    with session_factory(db_url)() as other:
        late = other.get(SettlementLetter, letter.id)
        assert late is not None and late.pdf is None  # read before the first one stored it
        first = letter_pdf(session, letter, PUBLIC_URL)

        second = letter_pdf(other, late, "https://otro.example.mx")

    assert second == first
    assert "otro.example.mx" not in pdf_text(second)


def test_a_missing_font_stops_rendering_with_a_message_naming_the_package(
    session: Session, clock: Clock, policy: Policy, account: Account, tmp_path: Path
) -> None:
    with pytest.raises(FontMissing, match="fonts-dejavu-core"):
        find_font_dir((tmp_path / "no-fonts",))

    letter = pay_off(session, clock, policy, account, 1_200_000)
    facts = letter_facts(letter)
    url = verification_url(PUBLIC_URL, letter.verification_code)
    pdf = render_finiquito(facts, LetterDocument(url, letter.issued_at), font_dir=find_font_dir())
    assert pdf.startswith(b"%PDF")
