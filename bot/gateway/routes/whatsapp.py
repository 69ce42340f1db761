"""``GET/POST /webhooks/whatsapp``: Meta's handshake and webhook."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from bot.channels.whatsapp import SIGNATURE_HEADER
from bot.gateway.deps import RuntimeDep
from bot.gateway.intake import receive_delivery, refuse
from bot.gateway.routes.schemas import (
    WHATSAPP_ENVELOPE,
    json_answer,
    signed_json_body,
    text_answer,
    webhook_responses,
)

router = APIRouter(tags=["whatsapp"])


@router.get(
    "/webhooks/whatsapp",
    response_class=PlainTextResponse,
    responses={
        200: text_answer("The hub.challenge, echoed"),
        403: json_answer("Not a subscription request with our verify token"),
    },
)
async def whatsapp_handshake(request: Request, runtime: RuntimeDep) -> Response:
    """Echo ``hub.challenge`` when ``hub.mode=subscribe`` and the verify token matches."""
    params = request.query_params
    mode = params.get("hub.mode")
    token = params.get("hub.verify_token") or ""
    challenge = params.get("hub.challenge")
    expected = runtime.settings.whatsapp_verify_token
    if (
        mode == "subscribe"
        and challenge is not None
        and hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8"))
    ):
        return PlainTextResponse(challenge)
    return refuse("/webhooks/whatsapp", 403, "verification failed")


@router.post(
    "/webhooks/whatsapp",
    responses=webhook_responses(),
    openapi_extra=signed_json_body(WHATSAPP_ENVELOPE, SIGNATURE_HEADER),
)
async def whatsapp_webhook(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Store a signed delivery durably, answer, then process it in the background."""
    return await receive_delivery(runtime, runtime.whatsapp, request)
