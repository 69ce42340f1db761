"""``/console`` pages and agent actions: thin routes over :mod:`bot.console.service`.

Pausing and resuming the debtor's Rasa tracker (``runtime.rasa.append_event``) happens here
because it is async HTTP: the tracker is paused after a claim, and resumed *before* a chat
goes back to the bot (if Rasa cannot be reached the chat stays with the agent).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from bot.console import pages, service
from bot.console.auth import CheckedUser, CurrentUser, require_supervisor
from bot.console.rendering import error_page, page, wants_json
from bot.console.service import Refused
from bot.console.texts import console_texts
from bot.conversation.rasa import RasaUnavailable
from bot.domain.phones import mask_phone
from bot.gateway.deps import RowId, RuntimeDep
from bot.gateway.runtime import GatewayRuntime

router = APIRouter(prefix="/console", tags=["console"])
log = structlog.get_logger("acuerdo.console")


def _back_to_chat(
    request: Request, agent: Any, conversation_id: int, *, notice: str | None, error: Refused | None
) -> Response:
    """After a POST: JSON for the page's script, else a redirect with a notice or an error."""
    texts = console_texts()
    if error is not None and error.status in (403, 404):
        return error_page(request, agent, error)
    if wants_json(request):
        if error is not None:
            return JSONResponse(
                {"ok": False, "message": texts.error(error.reason)}, status_code=error.status
            )
        return JSONResponse({"ok": True, "message": texts.notice(notice or "")})
    query = f"error={error.reason}" if error is not None else f"aviso={notice}"
    return RedirectResponse(f"/console/chats/{conversation_id}?{query}", status_code=303)


async def _act(
    request: Request,
    runtime: GatewayRuntime,
    agent: Any,
    conversation_id: int,
    work: Callable[[], str | None],
    notice: str,
) -> Response:
    try:
        result = await run_in_threadpool(work)
    except Refused as refusal:
        return _back_to_chat(request, agent, conversation_id, notice=None, error=refusal)
    runtime.wake_outbox()
    return _back_to_chat(request, agent, conversation_id, notice=result or notice, error=None)


async def _tracker_event(runtime: GatewayRuntime, sender: str, event: str) -> bool:
    try:
        await runtime.rasa.append_event(sender, event)
    except RasaUnavailable as exc:
        log.warning(
            "console.tracker_event_failed",
            tracker_event=event,
            reason=str(exc),
            sender=mask_phone(sender),
        )
        return False
    log.info("console.tracker_event", tracker_event=event, sender=mask_phone(sender))
    return True


# -- pages --------------------------------------------------------------------------------
@router.get("", response_class=HTMLResponse)
async def queuepage(request: Request, agent: CurrentUser, runtime: RuntimeDep) -> Response:
    """The queue (reason, waiting time, priority, channel) and the agent's own chats."""
    context = await run_in_threadpool(pages.queue_context, runtime, agent)
    notice = console_texts().notice(request.query_params.get("aviso", ""))
    return page(request, "queue.html", {"agent": agent, "notice": notice, **context})


@router.get("/supervision", response_class=HTMLResponse)
async def supervisionpage(request: Request, agent: CurrentUser, runtime: RuntimeDep) -> Response:
    """Every agent's chats, with reassignment (supervisors only)."""
    require_supervisor(agent)
    context = await run_in_threadpool(pages.supervision_context, runtime)
    return page(request, "supervision.html", {"agent": agent, **context})


@router.get("/chats/{conversation_id}", response_class=HTMLResponse)
async def chatpage(
    conversation_id: RowId, request: Request, agent: CurrentUser, runtime: RuntimeDep
) -> Response:
    try:
        context = await run_in_threadpool(pages.chat_context, runtime, agent, conversation_id)
    except Refused as refusal:
        return error_page(request, agent, refusal)
    texts = console_texts()
    error = request.query_params.get("error")
    return page(
        request,
        "chat.html",
        {
            "agent": agent,
            "notice": texts.notice(request.query_params.get("aviso", "")),
            "error": texts.error(error) if error else "",
            **context,
        },
    )


# -- actions --------------------------------------------------------------------------------
@router.post("/chats/{conversation_id}/claim")
async def claim(
    conversation_id: RowId, request: Request, agent: CheckedUser, runtime: RuntimeDep
) -> Response:
    """Take the chat; the bot is silenced and its Rasa tracker paused."""
    try:
        sender = await run_in_threadpool(service.claim, runtime, agent, conversation_id)
    except Refused as refusal:
        return _back_to_chat(request, agent, conversation_id, notice=None, error=refusal)
    paused = await _tracker_event(runtime, sender, "pause")
    notice = "claimed" if paused else "claimed_no_pause"
    return _back_to_chat(request, agent, conversation_id, notice=notice, error=None)


@router.post("/chats/{conversation_id}/assign")
async def assign(
    conversation_id: RowId,
    request: Request,
    agent: CheckedUser,
    runtime: RuntimeDep,
    username: str = Form(..., max_length=64),
) -> Response:
    require_supervisor(agent)
    try:
        sender, was_queued = await run_in_threadpool(
            service.assign, runtime, agent, conversation_id, username
        )
    except Refused as refusal:
        return _back_to_chat(request, agent, conversation_id, notice=None, error=refusal)
    if was_queued:
        await _tracker_event(runtime, sender, "pause")
    return _back_to_chat(request, agent, conversation_id, notice="reassigned", error=None)


async def _release(
    request: Request, agent: Any, runtime: GatewayRuntime, conversation_id: int, *, closing: bool
) -> Response:
    """Resume the Rasa tracker first: a chat never goes back to a bot that stays deaf."""
    try:
        sender = await run_in_threadpool(
            lambda: service.releasable(runtime, agent, conversation_id, closing=closing)
        )
    except Refused as refusal:
        return _back_to_chat(request, agent, conversation_id, notice=None, error=refusal)
    if not await _tracker_event(runtime, sender, "resume"):
        return _back_to_chat(
            request, agent, conversation_id, notice=None, error=Refused("rasa_unavailable", 503)
        )
    work = service.close if closing else service.return_to_bot
    return await _act(
        request,
        runtime,
        agent,
        conversation_id,
        lambda: work(runtime, agent, conversation_id),
        "closed" if closing else "returned",
    )


@router.post("/chats/{conversation_id}/return")
async def return_to_bot(
    conversation_id: RowId, request: Request, agent: CheckedUser, runtime: RuntimeDep
) -> Response:
    return await _release(request, agent, runtime, conversation_id, closing=False)


@router.post("/chats/{conversation_id}/close")
async def close(
    conversation_id: RowId, request: Request, agent: CheckedUser, runtime: RuntimeDep
) -> Response:
    return await _release(request, agent, runtime, conversation_id, closing=True)


@router.post("/chats/{conversation_id}/reply")
async def reply(
    conversation_id: RowId,
    request: Request,
    agent: CheckedUser,
    runtime: RuntimeDep,
    text: str = Form("", max_length=4096),
) -> Response:
    return await _act(
        request,
        runtime,
        agent,
        conversation_id,
        lambda: service.reply(runtime, agent, conversation_id, text),
        "sent",
    )


@router.post("/chats/{conversation_id}/template")
async def send_template(
    conversation_id: RowId,
    request: Request,
    agent: CheckedUser,
    runtime: RuntimeDep,
    template: str = Form("", max_length=100),
) -> Response:
    return await _act(
        request,
        runtime,
        agent,
        conversation_id,
        lambda: service.send_template(runtime, agent, conversation_id, template),
        "template_sent",
    )


@router.post("/chats/{conversation_id}/code")
async def send_code(
    conversation_id: RowId,
    request: Request,
    agent: CheckedUser,
    runtime: RuntimeDep,
    amount: str = Form("", max_length=32),
    method: str = Form("spei", max_length=16),
) -> Response:
    return await _act(
        request,
        runtime,
        agent,
        conversation_id,
        lambda: service.send_code(runtime, agent, conversation_id, amount, method),
        "code_sent",
    )


@router.post("/chats/{conversation_id}/settlement")
async def approve_settlement(
    conversation_id: RowId,
    request: Request,
    agent: CheckedUser,
    runtime: RuntimeDep,
    amount: str = Form("", max_length=32),
    deadline: str = Form("", max_length=10),
) -> Response:
    return await _act(
        request,
        runtime,
        agent,
        conversation_id,
        lambda: service.approve_settlement(runtime, agent, conversation_id, amount, deadline),
        "settlement_sent",
    )


@router.post("/chats/{conversation_id}/promise")
async def record_promise(
    conversation_id: RowId,
    request: Request,
    agent: CheckedUser,
    runtime: RuntimeDep,
    amount: str = Form("", max_length=32),
    promised_date: str = Form("", max_length=10),
) -> Response:
    return await _act(
        request,
        runtime,
        agent,
        conversation_id,
        lambda: service.record_promise(runtime, agent, conversation_id, amount, promised_date),
        "promise_recorded",
    )


@router.post("/chats/{conversation_id}/verify")
async def verify_identity(
    conversation_id: RowId,
    request: Request,
    agent: CheckedUser,
    runtime: RuntimeDep,
    birth_date: str = Form("", max_length=10),
    last4: str = Form("", max_length=8),
) -> Response:
    return await _act(
        request,
        runtime,
        agent,
        conversation_id,
        lambda: service.verify_identity(runtime, agent, conversation_id, birth_date, last4),
        "verified",
    )


@router.post("/chats/{conversation_id}/end-verification")
async def end_verification(
    conversation_id: RowId, request: Request, agent: CheckedUser, runtime: RuntimeDep
) -> Response:
    return await _act(
        request,
        runtime,
        agent,
        conversation_id,
        lambda: service.end_verification(runtime, agent, conversation_id),
        "verification_ended",
    )


@router.post("/chats/{conversation_id}/opt-out")
async def record_opt_out(
    conversation_id: RowId, request: Request, agent: CheckedUser, runtime: RuntimeDep
) -> Response:
    return await _act(
        request,
        runtime,
        agent,
        conversation_id,
        lambda: service.record_opt_out(runtime, agent, conversation_id),
        "opt_out_recorded",
    )


@router.post("/chats/{conversation_id}/note")
async def add_note(
    conversation_id: RowId,
    request: Request,
    agent: CheckedUser,
    runtime: RuntimeDep,
    text: str = Form("", max_length=2000),
) -> Response:
    return await _act(
        request,
        runtime,
        agent,
        conversation_id,
        lambda: service.add_note(runtime, agent, conversation_id, text),
        "note_added",
    )
