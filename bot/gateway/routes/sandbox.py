"""The WhatsApp sandbox (only while the sandbox credentials are in use).

- ``POST /sandbox/graph/{phone_number_id}/messages``: a built-in sink speaking the Graph
  API, where the outbox sends when no real WhatsApp account is configured;
- ``GET /sandbox``: a phone-like chat page to talk to the bot as any demo debtor;
- ``/sandbox/api/*``: the page's small JSON API. What the page sends travels the real path:
  a Meta-shaped webhook body, signed with the app secret, posted to ``/webhooks/whatsapp``;
- RCS mode: ``POST /sandbox/rbm/v1/phones/{E164}/agentMessages`` (and ``agentEvents``) is a
  sink speaking the RBM API; the page's RCS messages are RBM Pub/Sub pushes, signed with the
  client token, posted to ``/webhooks/rcs``.
"""

from __future__ import annotations

import base64
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from bot.channels.rcs import SANDBOX_RBM_TOKEN, RcsAdapter
from bot.channels.rcs_parse import SIGNATURE_HEADER as RBM_SIGNATURE_HEADER
from bot.channels.rcs_parse import sign_data
from bot.channels.whatsapp import SIGNATURE_HEADER, sign_body
from bot.clock import wall_clock_utc
from bot.db.models import Account, Channel, ContactPoint, Conversation, Debtor, Message, PaymentCode
from bot.domain.conversations import is_verified
from bot.domain.errors import InvalidPhone
from bot.domain.phones import normalize_phone, whatsapp_id
from bot.gateway.deps import RuntimeDep
from bot.gateway.routes.schemas import json_answer
from bot.gateway.runtime import GatewayRuntime
from bot.payments.local import SIGNATURE_HEADER as PAYMENT_SIGNATURE_HEADER
from bot.payments.local import local_webhook_body, sign_local_webhook

router = APIRouter(tags=["sandbox"])
templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))


@router.post(
    "/sandbox/graph/{phone_number_id}/messages",
    responses={
        400: json_answer("Unknown phone number id, or not a JSON object"),
        401: json_answer("Not the sandbox's access token"),
    },
)
async def graph_sink(phone_number_id: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Accept what the outbox sends, as the Graph API would (the messages are in the DB)."""
    expected = f"Bearer {runtime.settings.whatsapp_access_token}"
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return JSONResponse({"error": {"code": 190, "message": "Invalid OAuth access token"}}, 401)
    if phone_number_id != runtime.settings.whatsapp_phone_number_id:
        return JSONResponse({"error": {"code": 100, "message": "Unknown phone number id"}}, 400)
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):  # RecursionError: "[[[[…"
        body = None
    if not isinstance(body, dict):
        return JSONResponse({"error": {"code": 100, "message": "Invalid JSON"}}, 400)
    if body.get("status") == "read":
        return JSONResponse({"success": True})
    wamid = f"wamid.sandbox.{uuid.uuid4().hex}"
    return JSONResponse(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body.get("to"), "wa_id": body.get("to")}],
            "messages": [{"id": wamid}],
        }
    )


@router.post(
    "/sandbox/rbm/v1/phones/{phone}/{resource}",
    responses={
        401: json_answer("Not the sandbox's RBM token"),
        404: json_answer("Not agentMessages or agentEvents"),
    },
)
async def rbm_sink(phone: str, resource: str, request: Request) -> JSONResponse:
    """Accept what the RCS adapter sends, as the RBM API would (the messages are in the DB)."""
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {SANDBOX_RBM_TOKEN}".encode()):
        return JSONResponse({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, 401)
    if resource not in ("agentMessages", "agentEvents"):
        return JSONResponse({"error": {"code": 404, "status": "NOT_FOUND"}}, 404)
    message_id = request.query_params.get("messageId") or request.query_params.get("eventId")
    return JSONResponse({"name": f"phones/{phone}/{resource}/{message_id}"})


def _debtors(runtime: GatewayRuntime) -> list[dict[str, Any]]:
    with runtime.sessions() as session:
        rows = session.execute(
            select(Account, Debtor, ContactPoint)
            .join(Debtor, Debtor.id == Account.debtor_id)
            .join(ContactPoint, ContactPoint.debtor_id == Debtor.id)
            .where(ContactPoint.channel == Channel.WHATSAPP.value)
            .order_by(Account.external_id)
        ).all()
        seen: set[str] = set()
        debtors = []
        for account, debtor, contact in rows:
            if contact.address in seen:
                continue
            seen.add(contact.address)
            debtors.append(
                {
                    "name": debtor.full_name,
                    "phone": contact.address,
                    "account_id": account.external_id,
                    "creditor": account.creditor,
                    "product": account.product,
                    # Demo data only: the sandbox shows the answer to the identity question.
                    "birth_date": debtor.birth_date.isoformat(),
                }
            )
        return debtors


@router.get("/sandbox", response_class=HTMLResponse)
async def sandbox_page(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    debtors = await run_in_threadpool(_debtors, runtime)
    return templates.TemplateResponse(
        request, "sandbox.html", {"debtors": debtors, "public_url": runtime.settings.public_url}
    )


@router.get("/sandbox/api/debtors")
async def sandbox_debtors(runtime: RuntimeDep) -> list[dict[str, Any]]:
    return await run_in_threadpool(_debtors, runtime)


class SandboxMessage(BaseModel):
    phone: str = Field(max_length=32)
    name: str | None = Field(None, max_length=100)
    text: str | None = Field(None, max_length=4096)
    reply_id: str | None = Field(None, max_length=256)  # a tapped button or list row
    reply_title: str | None = Field(None, max_length=100)
    reply_kind: str = Field("button_reply", pattern="^(button_reply|list_reply|button)$")
    channel: str = Field("whatsapp", pattern="^(whatsapp|rcs)$")


def whatsapp_envelope(
    runtime: GatewayRuntime, sender: str, name: str, message: dict[str, Any]
) -> dict[str, Any]:
    """A webhook body shaped exactly like Meta's."""
    settings = runtime.settings
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "sandbox-waba",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550000000",
                                "phone_number_id": settings.whatsapp_phone_number_id,
                            },
                            "contacts": [{"profile": {"name": name}, "wa_id": sender}],
                            "messages": [message],
                        },
                    }
                ],
            }
        ],
    }


def _wire_message(sender: str, body: SandboxMessage) -> dict[str, Any] | None:
    base = {
        "from": sender,
        "id": f"wamid.sandbox.in.{uuid.uuid4().hex}",
        "timestamp": str(int(wall_clock_utc().timestamp())),
    }
    if body.reply_id:
        title = body.reply_title or body.reply_id
        if body.reply_kind == "button":
            return {**base, "type": "button", "button": {"payload": body.reply_id, "text": title}}
        reply = {"id": body.reply_id, "title": title}
        return {
            **base,
            "type": "interactive",
            "interactive": {"type": body.reply_kind, body.reply_kind: reply},
        }
    if body.text and body.text.strip():
        return {**base, "type": "text", "text": {"body": body.text}}
    return None


async def _post_internal(
    request: Request, path: str, raw: bytes, headers: dict[str, str]
) -> httpx.Response:
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.internal") as client:
        return await client.post(path, content=raw, headers=headers)


def rbm_push(agent_id: str, phone: str, body: SandboxMessage) -> dict[str, Any] | None:
    """The decoded data of an RBM push for what the page sent (a text or a tapped chip)."""
    data: dict[str, Any] = {
        "senderPhoneNumber": phone,
        "messageId": f"MsSandbox{uuid.uuid4().hex}",
        "sendTime": wall_clock_utc().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "agentId": agent_id,
    }
    if body.reply_id:
        data["suggestionResponse"] = {
            "postbackData": body.reply_id,
            "text": body.reply_title or body.reply_id,
            "type": "REPLY",
        }
        return data
    if body.text and body.text.strip():
        data["text"] = body.text
        return data
    return None


async def _send_rcs(
    request: Request, runtime: GatewayRuntime, phone: str, body: SandboxMessage
) -> JSONResponse:
    adapter = runtime.adapters.get("rcs")
    if not isinstance(adapter, RcsAdapter):
        return JSONResponse({"detail": "the RCS channel is off"}, status_code=404)
    data = rbm_push(adapter.agent_id, phone, body)
    if data is None:
        return JSONResponse({"detail": "write something or pick an option"}, status_code=400)
    decoded = json.dumps(data).encode()
    envelope = {
        "message": {
            "data": base64.b64encode(decoded).decode(),
            "messageId": uuid.uuid4().hex,
            "publishTime": data["sendTime"],
        },
        "subscription": "projects/acuerdo-sandbox/subscriptions/rbm",
    }
    headers = {
        "Content-Type": "application/json",
        RBM_SIGNATURE_HEADER: sign_data(adapter.client_token, decoded),
    }
    raw = json.dumps(envelope).encode()
    response = await _post_internal(request, "/webhooks/rcs", raw, headers)
    return JSONResponse({"webhook_status": response.status_code, "message_id": data["messageId"]})


@router.post(
    "/sandbox/api/send",
    responses={
        400: json_answer("Not a phone number, nothing to send, or not UTF-8 JSON"),
        404: json_answer("The RCS channel is off"),
    },
)
async def sandbox_send(body: SandboxMessage, request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Send as the chosen person, through the signed WhatsApp (or RCS) webhook."""
    try:
        phone = normalize_phone(body.phone)
    except InvalidPhone:
        return JSONResponse({"detail": "phone is not a valid number"}, status_code=400)
    if body.channel == "rcs":
        return await _send_rcs(request, runtime, phone, body)
    sender = whatsapp_id(phone)
    message = _wire_message(sender, body)
    if message is None:
        return JSONResponse({"detail": "write something or pick an option"}, status_code=400)
    raw = json.dumps(whatsapp_envelope(runtime, sender, body.name or "Sandbox", message)).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign_body(runtime.settings.whatsapp_app_secret, raw),
    }
    response = await _post_internal(request, "/webhooks/whatsapp", raw, headers)
    return JSONResponse({"webhook_status": response.status_code, "wamid": message["id"]})


def _conversation_messages(
    runtime: GatewayRuntime, phone: str, after: int, channel: str = Channel.WHATSAPP.value
) -> dict[str, Any]:
    with runtime.sessions() as session:
        conversation = session.scalars(
            select(Conversation).where(
                Conversation.channel == channel, Conversation.address == phone
            )
        ).first()
        if conversation is None:
            return {"conversation_id": None, "state": None, "messages": []}
        rows = session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation.id, Message.id > after)
            .order_by(Message.id)
        ).all()
        messages = []
        for row in rows:
            payload = row.payload or {}
            messages.append(
                {
                    "id": row.id,
                    "direction": row.direction,
                    "kind": row.kind,
                    "text": row.text,
                    "status": row.status,
                    "error_code": row.error_code,
                    "body": payload.get("body") if row.direction == "out" else None,
                    "reply_id": payload.get("reply_id"),
                    "options": payload.get("options") if row.direction == "out" else None,
                    "evidence": bool(payload.get("evidence")),
                }
            )
        return {
            "conversation_id": conversation.id,
            "state": conversation.state,
            "verified": is_verified(conversation, runtime.clock, runtime.policy),
            "messages": messages,
        }


@router.get(
    "/sandbox/api/messages", responses={400: json_answer("Not a phone number or a channel")}
)
async def sandbox_messages(
    phone: str, runtime: RuntimeDep, after: int = 0, channel: str = Channel.WHATSAPP.value
) -> JSONResponse:
    """The chat so far on ``channel`` (messages after id ``after``), from the inbox and outbox."""
    try:
        e164 = normalize_phone(phone)
    except InvalidPhone:
        return JSONResponse({"detail": "phone is not a valid number"}, status_code=400)
    if channel not in runtime.adapters:
        return JSONResponse({"detail": "unknown channel"}, status_code=400)
    return JSONResponse(
        await run_in_threadpool(_conversation_messages, runtime, e164, after, channel)
    )


class SandboxPayment(BaseModel):
    reference: str = Field(max_length=64)


def _code_amount(runtime: GatewayRuntime, reference: str) -> int | None:
    with runtime.sessions() as session:
        code = session.scalars(
            select(PaymentCode).where(
                (PaymentCode.reference == reference) | (PaymentCode.clabe == reference)
            )
        ).first()
        return code.amount_cents if code else None


@router.post(
    "/sandbox/api/pay",
    responses={
        400: json_answer("The body is not UTF-8 JSON"),
        404: json_answer("No code has that reference"),
    },
)
async def sandbox_pay(body: SandboxPayment, request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Pretend the provider confirmed payment of a code: a signed ``local`` webhook."""
    amount = await run_in_threadpool(_code_amount, runtime, body.reference)
    if amount is None:
        return JSONResponse({"detail": "no payment code has that reference"}, status_code=404)
    raw = local_webhook_body(
        event_id=f"sandbox-{uuid.uuid4().hex}",
        reference=body.reference,
        amount_cents=amount,
        paid_at=runtime.clock.now_utc(),
    )
    headers = {
        "Content-Type": "application/json",
        PAYMENT_SIGNATURE_HEADER: sign_local_webhook(runtime.settings.payments_webhook_secret, raw),
    }
    response = await _post_internal(request, "/webhooks/payments/local", raw, headers)
    return JSONResponse({"webhook_status": response.status_code, **response.json()})
