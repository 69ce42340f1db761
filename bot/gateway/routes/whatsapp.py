"""``GET/POST /webhooks/whatsapp``: Meta's handshake and webhook."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from bot.gateway.deps import RuntimeDep
from bot.gateway.intake import receive_delivery, refuse

router = APIRouter(tags=["whatsapp"])


@router.get("/webhooks/whatsapp")
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


@router.post("/webhooks/whatsapp")
async def whatsapp_webhook(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Store a signed delivery durably, answer, then process it in the background."""
    return await receive_delivery(runtime, runtime.whatsapp, request)
