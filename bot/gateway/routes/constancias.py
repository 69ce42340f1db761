"""The carta finiquito in public: ``/constancias/{code}`` says whether a letter is genuine,
``/constancias/{code}/pdf`` gives the stored document.

Anyone holding the code may look (that is the point of a letter one can show), so the page
shows only what the letter itself says. The code is 80 random bits; an unknown code and a
malformed one get the same 404 page after the same single lookup. Codes are read as people
type them: any case, with or without dashes and spaces.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from bot.db.models import LetterKind
from bot.documents.finiquito_pdf import FontMissing
from bot.documents.letters import VERIFY_PATH, letter_pdf, pdf_filename
from bot.domain.money import format_money
from bot.domain.settlement_letters import LetterFacts, find_letter_by_code, letter_facts
from bot.gateway.deps import RuntimeDep
from bot.gateway.routes.schemas import LETTER_NOT_FOUND, LETTER_PDF_RESPONSES
from bot.gateway.runtime import GatewayRuntime
from bot.spanish import written_date

router = APIRouter(tags=["constancias"])
templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))
log = structlog.get_logger("acuerdo.constancias")
# The code is in the address: keep it out of caches, search engines and Referer headers.
PRIVATE = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
    "Referrer-Policy": "no-referrer",
}
KIND_TEXT = {
    LetterKind.PAID_IN_FULL.value: "La cuenta se pagó en su totalidad.",
    LetterKind.SETTLEMENT.value: "La cuenta se liquidó con un convenio que el acreedor aceptó "
    "como pago total.",
}


def _facts(runtime: GatewayRuntime, code: str) -> LetterFacts | None:
    with runtime.sessions() as session:
        letter = find_letter_by_code(session, code)
        return letter_facts(letter) if letter is not None else None


def _document(runtime: GatewayRuntime, code: str) -> tuple[bytes, str] | None:
    with runtime.sessions() as session:
        letter = find_letter_by_code(session, code)
        if letter is None:
            return None
        return letter_pdf(session, letter, runtime.settings.public_url), pdf_filename(letter)


def _not_found(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "constancia_not_found.html", {}, status_code=404, headers=PRIVATE
    )


@router.get(f"{VERIFY_PATH}/{{code}}", response_class=HTMLResponse, responses=LETTER_NOT_FOUND)
async def letter_page(code: str, request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """Whether a carta finiquito is genuine, and what it says."""
    facts = await run_in_threadpool(_facts, runtime, code)
    if facts is None:
        return _not_found(request)
    money = {
        "total_paid": format_money(facts.total_paid_cents, facts.currency),
        "agreed_amount": (
            format_money(facts.agreement_total_cents, facts.currency)
            if facts.agreement_total_cents is not None
            else None
        ),
        "original_balance": format_money(facts.original_balance_cents or 0, facts.currency),
    }
    context = {
        "letter": facts,
        "kind_text": KIND_TEXT.get(facts.kind, ""),
        "paid_off_on": written_date(facts.paid_off_on),
        "issued_on": written_date(facts.issued_on),
        "pdf_path": f"{VERIFY_PATH}/{facts.code}/pdf",
        **money,
    }
    return templates.TemplateResponse(request, "constancia.html", context, headers=PRIVATE)


@router.get(f"{VERIFY_PATH}/{{code}}/pdf", response_class=Response, responses=LETTER_PDF_RESPONSES)
async def letter_document(code: str, request: Request, runtime: RuntimeDep) -> Response:
    """The document of record, as stored (rendered the first time it is asked for)."""
    try:
        found = await run_in_threadpool(_document, runtime, code)
    except FontMissing as exc:
        log.error("constancias.font_missing", reason=str(exc))
        return Response(
            "La constancia no está disponible en este momento; intenta más tarde.",
            status_code=503,
            media_type="text/plain",
        )
    if found is None:
        return _not_found(request)
    pdf, filename = found
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            **PRIVATE,
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
