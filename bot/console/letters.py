"""The carta finiquito in the console: what the debtor panel shows of it, and
``GET /console/chats/{conversation_id}/constancia``, its PDF for whoever may read the chat
(:func:`bot.domain.handoff.can_view`, as the chat page)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bot.console.auth import Agent, CurrentUser
from bot.console.rendering import error_page
from bot.console.service import Refused
from bot.console.views import local_time
from bot.db.models import ConsoleUser, Conversation, LetterKind
from bot.documents.finiquito_pdf import FontMissing
from bot.documents.letters import letter_pdf, pdf_filename, verification_url
from bot.domain import handoff
from bot.domain.settlement_letters import grouped_code, letter_of_account
from bot.gateway.deps import RowId, RuntimeDep
from bot.gateway.runtime import GatewayRuntime

router = APIRouter(prefix="/console", tags=["console"])
KIND_LABELS = {
    LetterKind.PAID_IN_FULL.value: "pago total",
    LetterKind.SETTLEMENT.value: "convenio de liquidación",
}


def letter_panel(
    runtime: GatewayRuntime, session: Session, conversation: Conversation
) -> dict[str, Any] | None:
    """The letter of the chat's account, for the debtor panel (None when there is none)."""
    if conversation.account_id is None:
        return None
    letter = letter_of_account(session, conversation.account_id)
    if letter is None:
        return None
    return {
        "kind": KIND_LABELS.get(letter.kind, letter.kind),
        "issued": local_time(letter.issued_at, runtime.clock, "%d/%m/%Y"),
        "code": grouped_code(letter.verification_code),
        "verify_url": verification_url(runtime.settings.public_url, letter.verification_code),
        "download": f"/console/chats/{conversation.id}/constancia",
    }


def _letter_document(runtime: GatewayRuntime, agent: Agent, conversation_id: int) -> Any:
    with runtime.sessions() as session:
        user = session.get(ConsoleUser, agent.id)
        conversation = session.get(Conversation, conversation_id)
        if user is None or conversation is None:
            raise Refused("not_found", 404)
        if not handoff.can_view(user, conversation):
            raise Refused("forbidden", 403)
        letter = (
            letter_of_account(session, conversation.account_id)
            if conversation.account_id is not None
            else None
        )
        if letter is None:
            raise Refused("no_letter", 404)
        try:
            pdf = letter_pdf(session, letter, runtime.settings.public_url)
        except FontMissing:
            raise Refused("letter_unavailable", 503) from None
        return pdf, pdf_filename(letter)


@router.get("/chats/{conversation_id}/constancia")
async def letter_download(
    conversation_id: RowId, request: Request, agent: CurrentUser, runtime: RuntimeDep
) -> Response:
    """The chat account's carta finiquito, as stored."""
    try:
        pdf, filename = await run_in_threadpool(_letter_document, runtime, agent, conversation_id)
    except Refused as refusal:
        return error_page(request, agent, refusal)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )
