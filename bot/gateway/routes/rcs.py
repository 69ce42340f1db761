"""``POST /webhooks/rcs``: RBM's verification handshake and its signed Pub/Sub pushes."""

from __future__ import annotations

import hmac
import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from bot.channels.rcs import RcsAdapter
from bot.channels.rcs_parse import CHANNEL, SIGNATURE_HEADER, handshake_secret
from bot.db.models import ContactPoint
from bot.domain.conversations import opt_out
from bot.gateway.deps import RuntimeDep
from bot.gateway.intake import BodyTooLarge, read_body, receive_delivery, refuse
from bot.gateway.routes.schemas import RBM_PUSH, RCS_RESPONSES, signed_json_body
from bot.gateway.runtime import GatewayRuntime

router = APIRouter(tags=["rcs"])
ENDPOINT = "/webhooks/rcs"


def _honour_unsubscribes(runtime: GatewayRuntime, senders: list[str]) -> None:
    """Google Messages' "stop" (UNSUBSCRIBE) is an opt-out of company messages on RCS."""
    with runtime.sessions() as session:
        for sender in senders:
            contact = session.scalars(
                select(ContactPoint).where(
                    ContactPoint.channel == CHANNEL, ContactPoint.address == sender
                )
            ).first()
            if contact is None or contact.opted_out_at is None:
                opt_out(session, runtime.clock, CHANNEL, sender)
        session.commit()


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
    response: JSONResponse = await receive_delivery(runtime, adapter, request, raw)
    if response.status_code == 200 and json.loads(bytes(response.body)).get("stored"):
        delivery = adapter.parse_delivery(raw)  # verified and parsed once already: no error
        senders = [
            m.sender for m in delivery.messages if m.details.get("event_type") == "UNSUBSCRIBE"
        ]
        if senders:
            await run_in_threadpool(_honour_unsubscribes, runtime, senders)
    return response
