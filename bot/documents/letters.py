"""The carta finiquito's public addresses, and its PDF: rendered once, then always the same.

A letter is issued inside the payment's transaction (:mod:`bot.domain.settlement_letters`),
where the public URL the document prints is not known; the first caller that needs the
document (the download route, the console) renders it from the frozen facts and stores
it. The write only fills an empty ``pdf``: when two gateways render at once, the first
stored copy wins and both answer with it; later reads never render again.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot.db.models import SettlementLetter
from bot.documents.finiquito_pdf import LetterDocument, render_finiquito
from bot.domain.settlement_letters import grouped_code, letter_facts, normalize_code

VERIFY_PATH = "/constancias"


def verification_url(public_url: str, code: str) -> str:
    """``{ACUERDO_PUBLIC_URL}/constancias/{code}``: the page that says the letter is genuine."""
    shown = grouped_code(normalize_code(code) or code)  # typable: 7K3D-9QXA-M2PB-4HTR
    return f"{public_url.rstrip('/')}{VERIFY_PATH}/{shown}"


def pdf_url(public_url: str, code: str) -> str:
    """Where the document itself is downloaded (what a WhatsApp document message links)."""
    return f"{verification_url(public_url, code)}/pdf"


def pdf_filename(letter: SettlementLetter) -> str:
    """``constancia-liquidacion-5678.pdf`` (the account's last 4 digits)."""
    last4 = "".join(ch for ch in str(letter.details.get("account_last4", "")) if ch.isalnum())
    return f"constancia-liquidacion-{last4 or letter.id}.pdf"


def letter_pdf(session: Session, letter: SettlementLetter, public_url: str) -> bytes:
    """The stored document of ``letter``; rendered and stored first if it has none yet.

    Commits (the caller's session holds nothing else of its own): once before rendering,
    so that no read snapshot is held while it renders (on SQLite, a write from a stale
    snapshot fails when another gateway stored the document meanwhile), and when it stores.
    """
    if letter.pdf is not None:
        return letter.pdf
    document = LetterDocument(
        verification_url=verification_url(public_url, letter.verification_code),
        issued_at=letter.issued_at,
    )
    facts, letter_id = letter_facts(letter), letter.id
    session.commit()
    rendered = render_finiquito(facts, document)
    session.execute(
        update(SettlementLetter)
        .where(SettlementLetter.id == letter_id, SettlementLetter.pdf.is_(None))
        .values(pdf=rendered)
    )
    session.commit()
    session.refresh(letter)
    return letter.pdf or rendered
