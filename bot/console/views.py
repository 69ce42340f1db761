"""Read models of the console pages, built inside a database session as plain values
(templates never touch ORM objects): the queue, the transcript, the debtor panel."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.console.texts import ConsoleTexts
from bot.db.models import (
    Account,
    Agreement,
    AuditEntry,
    Channel,
    ConsoleUser,
    ContactPoint,
    Conversation,
    ConversationNote,
    Debtor,
    Direction,
    Message,
    Payment,
    PaymentCode,
    Promise,
)
from bot.domain.accounts import balance_breakdown
from bot.domain.conversations import is_verified, verified_until
from bot.domain.money import format_money
from bot.domain.phones import mask_phone
from bot.policy import Policy

AUDIT_SHOWN = 40


def local_time(moment: datetime | None, clock: Clock, fmt: str = "%d/%m/%Y %H:%M") -> str:
    return moment.astimezone(clock.tz).strftime(fmt) if moment else ""


def waited(since: datetime | None, now: datetime) -> str:
    """``3 min``, ``1 h 20 min``, ``2 d 4 h`` since ``since``."""
    if since is None:
        return "—"
    minutes = max(0, int((now - since).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def usernames(session: Session) -> dict[int, str]:
    return dict(session.execute(select(ConsoleUser.id, ConsoleUser.username)).tuples().all())


def _who(session: Session, conversation: Conversation) -> str:
    debtor = session.get(Debtor, conversation.debtor_id) if conversation.debtor_id else None
    return debtor.full_name if debtor else mask_phone(conversation.address)


@dataclass(frozen=True)
class QueueRow:
    id: int
    who: str
    phone: str
    reason: str
    priority: int
    waiting: str
    channel: str
    state: str
    state_label: str
    holder: str | None
    last_text: str


def _last_inbound_text(session: Session, conversation_id: int) -> str:
    text = session.scalar(
        select(Message.text)
        .where(Message.conversation_id == conversation_id, Message.direction == Direction.IN.value)
        .order_by(Message.id.desc())
        .limit(1)
    )
    return (text or "")[:120]


def queue_rows(
    session: Session,
    clock: Clock,
    texts: ConsoleTexts,
    conversations: list[Conversation],
) -> list[QueueRow]:
    now = clock.now_utc()
    names = usernames(session)
    return [
        QueueRow(
            id=c.id,
            who=_who(session, c),
            phone=mask_phone(c.address),
            reason=texts.label("reasons", c.handoff_reason, "—"),
            priority=c.priority,
            waiting=waited(c.queued_at, now),
            channel=texts.label("channels", c.channel),
            state=c.state,
            state_label=texts.label("states", c.state),
            holder=names.get(c.assigned_agent_id) if c.assigned_agent_id else None,
            last_text=_last_inbound_text(session, c.id),
        )
        for c in conversations
    ]


@dataclass(frozen=True)
class Attachment:
    label: str
    media_id: str | None
    mime: str | None
    url: str | None  # an image the browser can show (same origin)
    evidence: bool
    media_url: str | None = None  # the inbound file through /console/media/{message id}
    view_as: str | None = None  # image | document: how the chat page shows media_url


@dataclass(frozen=True)
class TranscriptItem:
    id: int
    side: str  # debtor | bot | agent | system
    author: str
    kind: str
    text: str
    time: str
    mark: str = ""
    mark_title: str = ""
    status: str = ""
    note: str = ""
    attachment: Attachment | None = None


def _same_origin(link: str, public_url: str, under: str = "/pay/") -> str | None:
    """Our own links (payment QRs, letters) are shown through this gateway, whatever the
    public URL."""
    base = public_url.rstrip("/")
    if link.startswith(base + under):
        return link[len(base) :]
    return None


def _author(row: Message, texts: ConsoleTexts) -> tuple[str, str]:
    if row.author.startswith("agent:"):
        return "agent", f"{row.author.removeprefix('agent:')} ({texts.label('authors', 'agent')})"
    side = row.author if row.author in ("debtor", "bot", "system") else "system"
    return side, texts.label("authors", side)


def _view_as(row: Message, mime: str | None) -> str | None:
    if row.kind == "image" and (mime or "image/").startswith("image/"):
        return "image"
    if row.kind == "document":
        return "document"
    return None


def transcript(
    session: Session,
    clock: Clock,
    texts: ConsoleTexts,
    conversation: Conversation,
    public_url: str,
    *,
    media_viewable: bool = False,
) -> list[TranscriptItem]:
    """Every message of the conversation, in order, with delivery marks and attachments.

    With ``media_viewable``, inbound WhatsApp images and documents link to
    ``/console/media/{message id}`` (the sandbox cannot serve files, so it shows no link).
    """
    rows = session.scalars(
        select(Message).where(Message.conversation_id == conversation.id).order_by(Message.id)
    ).all()
    items = []
    for row in rows:
        payload: dict[str, Any] = row.payload or {}
        side, author = _author(row, texts)
        attachment = None
        mark = mark_title = note = ""
        if row.direction == Direction.IN.value:
            if payload.get("media_id") or row.kind in texts.section("attachment"):
                mime = payload.get("media_mime")
                view_as = (
                    _view_as(row, mime)
                    if media_viewable
                    and payload.get("media_id")
                    and row.channel == Channel.WHATSAPP.value
                    else None
                )
                attachment = Attachment(
                    label=texts.label("attachment", row.kind),
                    media_id=payload.get("media_id"),
                    mime=mime,
                    url=None,
                    evidence=bool(payload.get("evidence")),
                    media_url=f"/console/media/{row.id}" if view_as else None,
                    view_as=view_as,
                )
            note = texts.label("inbound_notes", row.error_code, "") or texts.label(
                "inbound_notes", row.status, ""
            )
        else:
            mark, mark_title = texts.section("marks").get(row.status) or ("", row.status)
            if row.error_code:
                mark_title = f"{mark_title} ({row.error_code})"
            body = payload.get("body") or {}
            link = (body.get("image") or {}).get("link") if isinstance(body, dict) else None
            document = (body.get("document") or {}).get("link") if isinstance(body, dict) else None
            if isinstance(link, str):
                attachment = Attachment(
                    label=texts.label("attachment", "image"),
                    media_id=None,
                    mime=None,
                    url=_same_origin(link, public_url),
                    evidence=False,
                )
            elif isinstance(document, str):  # the carta finiquito we sent
                shown = _same_origin(document, public_url, "/constancias/")
                attachment = Attachment(
                    label=texts.label("attachment", "document"),
                    media_id=None,
                    mime="application/pdf",
                    url=None,
                    evidence=False,
                    media_url=shown,
                    view_as="document" if shown else None,
                )
        items.append(
            TranscriptItem(
                id=row.id,
                side=side,
                author=author,
                kind=row.kind,
                text=row.text or "",
                time=local_time(row.created_at, clock, "%d/%m %H:%M"),
                mark=mark,
                mark_title=mark_title,
                status=row.status,
                note=note,
                attachment=attachment,
            )
        )
    return items


@dataclass(frozen=True)
class NoteView:
    author: str
    text: str
    time: str


def notes(session: Session, clock: Clock, conversation_id: int) -> list[NoteView]:
    rows = session.scalars(
        select(ConversationNote)
        .where(ConversationNote.conversation_id == conversation_id)
        .order_by(ConversationNote.id.desc())
    ).all()
    return [
        NoteView(row.author.removeprefix("agent:"), row.text, local_time(row.created_at, clock))
        for row in rows
    ]


@dataclass
class LedgerView:
    """The debtor panel."""

    name: str
    phone: str
    verified: bool
    opted_out: bool
    verified_until: str = ""  # local time the live verification ends
    opted_out_on: str = ""
    account: dict[str, str] | None = None
    balance: dict[str, str] | None = None
    balance_cents: int = 0
    days_past_due: int = 0
    promises: list[dict[str, str]] = field(default_factory=list)
    agreements: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, str]] = field(default_factory=list)
    codes: list[dict[str, str]] = field(default_factory=list)
    audit: list[dict[str, str]] = field(default_factory=list)


def _audit_details(details: dict[str, Any]) -> str:
    shown = []
    for key, value in details.items():
        if key.endswith("_cents") and isinstance(value, int):
            value = format_money(value)
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        shown.append(f"{key}={value}")
    return "; ".join(shown)[:200]


def ledger(
    session: Session,
    clock: Clock,
    policy: Policy,
    texts: ConsoleTexts,
    conversation: Conversation,
) -> LedgerView:
    """What the ledger knows of the person in ``conversation``."""
    contact = session.scalars(
        select(ContactPoint).where(
            ContactPoint.channel == conversation.channel,
            ContactPoint.address == conversation.address,
        )
    ).first()
    view = LedgerView(
        name=_who(session, conversation),
        phone=mask_phone(conversation.address),
        verified=is_verified(conversation, clock, policy),
        opted_out=bool(contact and contact.opted_out_at),
    )
    if contact is not None and contact.opted_out_at is not None:
        view.opted_out_on = local_time(contact.opted_out_at, clock)
    if view.verified:
        view.verified_until = local_time(verified_until(conversation, policy), clock, "%H:%M")
    account = session.get(Account, conversation.account_id) if conversation.account_id else None
    audit_filter = [AuditEntry.conversation_id == conversation.id]
    if account is not None:
        audit_filter.append(AuditEntry.account_id == account.id)
        _fill_account(session, clock, texts, account, view)
    for entry in session.scalars(
        select(AuditEntry)
        .where(or_(*audit_filter))
        .order_by(AuditEntry.id.desc())
        .limit(AUDIT_SHOWN)
    ):
        view.audit.append(
            {
                "time": local_time(entry.at, clock),
                "actor": entry.actor,
                "action": entry.action,
                "details": _audit_details(entry.details or {}),
            }
        )
    return view


def _fill_account(
    session: Session, clock: Clock, texts: ConsoleTexts, account: Account, view: LedgerView
) -> None:
    breakdown = balance_breakdown(session, account, clock)
    view.account = {
        "external_id": account.external_id,
        "creditor": account.creditor,
        "product": account.product,
        "status": texts.label("statuses", account.status),
        "dispute": "sí" if account.dispute_open else "no",
    }
    view.balance = {
        "principal": format_money(breakdown.principal_cents),
        "interest": format_money(breakdown.interest_cents),
        "fees": format_money(breakdown.fees_cents),
        "paid": format_money(breakdown.paid_cents),
        "total": format_money(breakdown.total_cents),
        "calculated_on": breakdown.calculated_on.strftime("%d/%m/%Y"),
        "due_date": breakdown.due_date.strftime("%d/%m/%Y"),
    }
    view.balance_cents = breakdown.total_cents
    view.days_past_due = breakdown.days_past_due
    for promise in session.scalars(
        select(Promise).where(Promise.account_id == account.id).order_by(Promise.id.desc())
    ):
        view.promises.append(
            {
                "date": promise.promised_date.strftime("%d/%m/%Y"),
                "amount": format_money(promise.amount_cents),
                "status": texts.label("statuses", promise.status),
                "by": promise.made_by,
            }
        )
    for agreement in session.scalars(
        select(Agreement).where(Agreement.account_id == account.id).order_by(Agreement.id.desc())
    ):
        view.agreements.append(
            {
                "kind": agreement.kind,
                "total": format_money(agreement.total_cents),
                "deadline": agreement.deadline.strftime("%d/%m/%Y"),
                "status": texts.label("statuses", agreement.status),
                "by": agreement.approved_by,
                "installments": [
                    f"{i.number}. {i.due_date:%d/%m/%Y} {format_money(i.amount_cents)}"
                    f" (pagado {format_money(i.paid_cents)})"
                    for i in agreement.installments
                ],
            }
        )
    for payment in session.scalars(
        select(Payment).where(Payment.account_id == account.id).order_by(Payment.paid_at.desc())
    ):
        view.payments.append(
            {
                "date": local_time(payment.paid_at, clock, "%d/%m/%Y"),
                "amount": format_money(payment.amount_cents),
                "reference": payment.reference,
                "source": payment.source,
            }
        )
    for code in session.scalars(
        select(PaymentCode)
        .where(PaymentCode.account_id == account.id)
        .order_by(PaymentCode.id.desc())
    ):
        view.codes.append(
            {
                "method": texts.label("payment_methods", code.method),
                "reference": code.reference,
                "amount": format_money(code.amount_cents),
                "expires": local_time(code.expires_at, clock),
                "status": texts.label("statuses", code.status),
            }
        )


def chat_fingerprint(session: Session, conversation_id: int) -> tuple[Any, ...]:
    """Changes whenever something the chat page shows changes (for live updates)."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        return ("gone",)
    messages = session.execute(
        select(func.count(Message.id), func.max(Message.id), func.max(Message.updated_at)).where(
            Message.conversation_id == conversation_id
        )
    ).one()
    note_count = session.scalar(
        select(func.count(ConversationNote.id)).where(
            ConversationNote.conversation_id == conversation_id
        )
    )
    audit_filter = [AuditEntry.conversation_id == conversation_id]
    if conversation.account_id is not None:
        audit_filter.append(AuditEntry.account_id == conversation.account_id)
    last_audit = session.scalar(select(func.max(AuditEntry.id)).where(or_(*audit_filter)))
    return (
        conversation.state,
        conversation.assigned_agent_id,
        conversation.last_inbound_at,
        tuple(messages),
        note_count,
        last_audit,
    )


def queue_fingerprint(session: Session, clock: Clock) -> tuple[Any, ...]:
    """Changes when the queue or any held chat changes, and once a minute (waiting times)."""
    rows = session.execute(
        select(
            Conversation.id,
            Conversation.state,
            Conversation.assigned_agent_id,
            Conversation.priority,
            Conversation.updated_at,
        )
        .where(Conversation.state.in_(("queued", "agent")))
        .order_by(Conversation.id)
    ).all()
    minute = clock.now_utc().replace(second=0, microsecond=0) if clock.pinned is None else None
    return (tuple(tuple(row) for row in rows), minute)


def service_window_left(
    conversation: Conversation, clock: Clock, window: timedelta | None
) -> str | None:
    """How long free-form replies may still go (None: no window on this channel)."""
    if window is None:
        return None
    if conversation.last_inbound_at is None:
        return "0 min"
    minutes = int((conversation.last_inbound_at + window - clock.now_utc()).total_seconds() // 60)
    if minutes <= 0:
        return "0 min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
