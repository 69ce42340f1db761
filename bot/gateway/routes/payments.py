"""Payments in the gateway: the provider's webhook and the hosted payment page with its QR."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from bot.conversation.notices import send_settlement_letter, thank_for_payment
from bot.db.models import Account, PaymentCode, PaymentCodeStatus
from bot.domain.money import format_money
from bot.domain.payment_references import shown_reference
from bot.gateway.deps import RuntimeDep
from bot.gateway.intake import BodyTooLarge, read_body, refuse
from bot.gateway.routes.schemas import (
    IMAGE_NOT_FOUND,
    LOCAL_PAYMENT_EVENT,
    PAGE_NOT_FOUND,
    PAYMENT_WEBHOOK_RESPONSES,
    signed_json_body,
    text_answer,
)
from bot.gateway.runtime import GatewayRuntime
from bot.payments import (
    InvalidPaymentLink,
    PaymentEvent,
    UnknownPaymentReference,
    WebhookRejected,
    apply_payment_event,
    get_provider,
    payment_url,
    read_payment_link_token,
)
from bot.payments.event_log import EventOutcome, record_event
from bot.payments.local import SIGNATURE_HEADER as LOCAL_SIGNATURE_HEADER
from bot.payments.provider import shown_concept
from bot.payments.qr import qr_png, qr_svg
from bot.payments.reconcile import find_code_for_event

router = APIRouter(tags=["payments"])
templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))
log = structlog.get_logger("acuerdo.payments")
MAX_PAYMENT_WEBHOOK_BYTES = 64 * 1024


@dataclass
class _Applied:
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0


def _apply_events(runtime: GatewayRuntime, events: list[PaymentEvent]) -> _Applied:
    """Apply every event and queue the thank-you (and the carta finiquito of a payoff), in
    one transaction."""
    outcome = _Applied()
    with runtime.sessions() as session:
        for event in events:
            try:
                applied = apply_payment_event(session, runtime.clock, runtime.policy, event)
            except UnknownPaymentReference:  # nothing applied; the daily report flags it
                session.rollback()
                record_event(session, runtime.clock, event, EventOutcome.UNMATCHED)
                session.commit()
                raise
            if applied is None:
                outcome.ignored += 1
                status_of = find_code_for_event(session, event)
                record_event(
                    session,
                    runtime.clock,
                    event,
                    EventOutcome.STATUS,
                    account_id=status_of.account_id,
                )
            elif not applied.created:
                outcome.duplicates += 1
                record_event(
                    session,
                    runtime.clock,
                    event,
                    EventOutcome.DUPLICATE,
                    account_id=applied.payment.account_id,
                    payment_id=applied.payment.id,
                )
            else:
                outcome.applied += 1
                paid = applied.payment
                record_event(
                    session,
                    runtime.clock,
                    event,
                    EventOutcome.APPLIED,
                    account_id=paid.account_id,
                    payment_id=paid.id,
                )
                code = (
                    session.get(PaymentCode, paid.payment_code_id) if paid.payment_code_id else None
                )
                thank_for_payment(
                    session,
                    runtime.clock,
                    runtime.policy,
                    runtime.replies,
                    runtime.adapters,
                    account_id=paid.account_id,
                    amount_cents=paid.amount_cents,
                    # What the debtor paid with (a processor's reference is its own id)
                    reference=shown_reference(code) if code is not None else paid.reference,
                    paid_at=paid.paid_at,
                )
                if applied.letter is not None:  # this payment closed the account
                    send_settlement_letter(
                        session,
                        runtime.clock,
                        runtime.policy,
                        runtime.replies,
                        runtime.adapters,
                        account_id=paid.account_id,
                        public_url=runtime.settings.public_url,
                    )
        session.commit()
    return outcome


@router.post(
    "/webhooks/payments/{provider_name}",
    responses=PAYMENT_WEBHOOK_RESPONSES,
    openapi_extra=signed_json_body(LOCAL_PAYMENT_EVENT, LOCAL_SIGNATURE_HEADER),
)
async def payment_webhook(
    provider_name: str, request: Request, runtime: RuntimeDep
) -> JSONResponse:
    """A signed payment confirmation; idempotent on the provider's event id."""
    endpoint = "/webhooks/payments"
    provider = get_provider(runtime.settings)
    if provider_name != provider.name:
        return refuse(endpoint, 404, f"unknown payment provider '{provider_name[:40]}'")
    try:
        raw = await read_body(request, MAX_PAYMENT_WEBHOOK_BYTES)
    except BodyTooLarge:
        return refuse(endpoint, 413, "body too large")
    if not provider.verify_webhook(request.headers, raw):
        return refuse(endpoint, 401, "missing or invalid signature")
    try:
        events = provider.parse_webhook(raw)
        outcome = await run_in_threadpool(_apply_events, runtime, events)
    except WebhookRejected as exc:
        return refuse(endpoint, 422 if exc.reason == "currency_mismatch" else 400, exc.reason)
    except UnknownPaymentReference:
        return refuse(endpoint, 422, "unknown_reference")
    except SQLAlchemyError:
        log.exception("payments.store_failed")
        return JSONResponse({"detail": "storage unavailable, retry later"}, status_code=503)
    if outcome.applied:
        runtime.wake_outbox()
    log.info("payments.webhook", provider=provider.name, **outcome.__dict__)
    return JSONResponse(
        {
            "status": "applied" if outcome.applied else "duplicate" if outcome.duplicates else "ok",
            **outcome.__dict__,
        }
    )


def _code_for(runtime: GatewayRuntime, token: str) -> tuple[PaymentCode, Account] | None:
    try:
        code_id = read_payment_link_token(token, runtime.settings.resolved_secret_key())
    except InvalidPaymentLink:
        return None
    with runtime.sessions() as session:
        code = session.get(PaymentCode, code_id)
        if code is None or code.token != token:
            return None
        account = session.get(Account, code.account_id)
        if account is None:
            return None
        session.expunge_all()
        return code, account


def _not_found(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "pay_not_found.html", {}, status_code=404)


def _when(moment: datetime, runtime: GatewayRuntime) -> str:
    local = moment.astimezone(runtime.clock.tz)
    return local.strftime("%d/%m/%Y a las %H:%M")


@router.get("/pay/{token}", response_class=HTMLResponse, responses=PAGE_NOT_FOUND)
async def payment_page(token: str, request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """The hosted page of one payment code: amount, reference, QR, instructions, expiry."""
    found = await run_in_threadpool(_code_for, runtime, token)
    if found is None:
        return _not_found(request)
    code, account = found
    status = code.status
    if status == PaymentCodeStatus.ACTIVE.value and code.expires_at <= runtime.clock.now_utc():
        status = PaymentCodeStatus.EXPIRED.value
    link = payment_url(runtime.settings.public_url, token)
    context = {
        "code": code,
        "status": status,
        "amount": format_money(code.amount_cents, code.currency),
        "creditor": account.creditor,
        "concept": shown_concept(code.concept, account),
        "expires": _when(code.expires_at, runtime),
        "paid_at": _when(code.paid_at, runtime) if code.paid_at else None,
        "reference": shown_reference(code),
        # A processor's CLABE is at its bank, not the creditor's collection account.
        "bank_name": runtime.policy.payment_codes.bank_name if code.provider == "local" else None,
        "qr_svg": qr_svg(link, scale=6),
        "qr_png_url": f"/pay/{token}/qr.png",
        "pay_url": link,
    }
    return templates.TemplateResponse(request, "pay.html", context)


@router.get(
    "/pay/{token}/qr.png",
    response_class=Response,
    responses={200: text_answer("The QR", "image/png"), **IMAGE_NOT_FOUND},
)
async def payment_qr_png(token: str, runtime: RuntimeDep) -> Response:
    """The QR of the payment link as a PNG (what WhatsApp shows as an image)."""
    found = await run_in_threadpool(_code_for, runtime, token)
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain")
    png = qr_png(payment_url(runtime.settings.public_url, token))
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/pay/{token}/qr.svg",
    response_class=Response,
    responses={200: text_answer("The QR", "image/svg+xml"), **IMAGE_NOT_FOUND},
)
async def payment_qr_svg(token: str, runtime: RuntimeDep) -> Response:
    found = await run_in_threadpool(_code_for, runtime, token)
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain")
    svg = qr_svg(payment_url(runtime.settings.public_url, token))
    return Response(
        svg, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=3600"}
    )
