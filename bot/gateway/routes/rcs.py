"""``POST /webhooks/rcs``: RBM's verification handshake and its signed Pub/Sub pushes."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from bot.channels.rcs import RcsAdapter
from bot.channels.rcs_parse import CHANNEL, SIGNATURE_HEADER, handshake_secret
from bot.gateway.deps import RuntimeDep
from bot.gateway.intake import BodyTooLarge, read_body, receive_delivery, refuse
from bot.gateway.routes.schemas import RBM_PUSH, RCS_RESPONSES, signed_json_body

router = APIRouter(tags=["rcs"])
ENDPOINT = "/webhooks/rcs"


@router.post(
    ENDPOINT,
    responses=RCS_RESPONSES,
    openapi_extra=signed_json_body(RBM_PUSH, SIGNATURE_HEADER, required=False),
)
async def rcs_webhook(request: Request, runtime: RuntimeDep) -> Response:
    """The handshake (echo ``secret`` when ``clientToken`` is ours), or a signed delivery.

    Deliveries are verified (``X-Goog-Signature``, constant time; 401 and nothing stored
    when wrong), stored durably and deduplicated on the RBM message/event id, answered,
    and processed after the answer, exactly as WhatsApp's.
    """
    adapter = runtime.adapters.get(CHANNEL)
    if not isinstance(adapter, RcsAdapter):
        return refuse(ENDPOINT, 404, "the RCS channel is not configured")
    try:
        raw = await read_body(request, runtime.tuning.max_body_bytes)
    except BodyTooLarge:
        return refuse(ENDPOINT, 413, "body too large")
    handshake = handshake_secret(raw)
    if handshake is not None:
        token, secret = handshake
        if hmac.compare_digest(token.encode("utf-8"), adapter.client_token.encode("utf-8")):
            return PlainTextResponse(secret)
        return refuse(ENDPOINT, 403, "verification failed")
    # An UNSUBSCRIBE is an opt-out stored with its event, in the same transaction (inbox).
    response: JSONResponse = await receive_delivery(runtime, adapter, request, raw)
    return response
