"""The durable inbox: a verified delivery is committed here before the webhook answers 200.

Inbound messages become ``messages`` rows (direction ``in``, status ``pending``); the
unique constraint on (channel, direction, external_id) makes a redelivery a no-op.
Statuses update the outbound row they name. A status can arrive before the outbox has
recorded the provider's id of its send (WhatsApp posts "sent" or "failed" within
milliseconds); it is parked in ``early_statuses`` and applied once the send is recorded
(:func:`apply_early_statuses`). Nothing here talks to Rasa or the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import Table, and_, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.channels.base import (
    EVIDENCE_KINDS,
    Delivery,
    InboundKind,
    InboundMessage,
    SendOutcome,
    StatusUpdate,
)
from bot.clock import Clock, wall_clock_utc
from bot.compliance.stop_words import is_stop_request
from bot.conversation.claims import InboundStatus, OutboundStatus
from bot.conversation.rate_limit import RECEIVED_AT
from bot.db.models import ContactPoint, Direction, EarlyStatus, Message
from bot.domain.conversations import (
    VerificationEnd,
    end_verification,
    expire_idle_verification,
    get_or_create_conversation,
    opt_out,
)
from bot.domain.phones import mask_phone
from bot.policy import Policy

# Payload flag of an inbound text that opted its number out (the pipeline confirms it).
STOP_REQUEST = "stop_request"
# WhatsApp system messages saying the person behind the number changed (channels.md).
NUMBER_CHANGE_TYPES = frozenset({"user_changed_number", "customer_changed_number"})

log = structlog.get_logger("acuerdo.inbox")

# How far each delivery status has come; a late "delivered" never undoes a "read".
STATUS_RANK = {
    OutboundStatus.QUEUED: 0,
    OutboundStatus.SENDING: 0,
    OutboundStatus.SENT: 1,
    OutboundStatus.DELIVERED: 2,
    OutboundStatus.READ: 3,
    "played": 3,
}

# The statements every stored message runs, built once and run on the session's connection
# (see bot/conversation/claims.py). The two UPDATEs (contact point reachable again, held
# replies released) bypass the ORM, which would look for the loaded objects they change:
# that search cost more than the rest of the store (profiled). No held reply is loaded
# here; a contact point loaded by a first contact's account look-up is expired instead.
_MESSAGES: Table = Message.__table__  # type: ignore[assignment]
_CONTACT_POINTS: Table = ContactPoint.__table__  # type: ignore[assignment]
_M, _CP = _MESSAGES.c, _CONTACT_POINTS.c
_STORED_INBOUND = select(_M.id).where(
    _M.channel == bindparam("channel"),
    _M.direction == Direction.IN.value,
    _M.external_id == bindparam("external_id"),
)
_REACHABLE_AGAIN = (
    update(_CONTACT_POINTS)
    .where(
        _CP.channel == bindparam("on_channel"),
        _CP.address == bindparam("on_address"),
        _CP.unreachable_at.is_not(None),
    )
    .values(unreachable_at=None, unreachable_reason=None)
)
_RELEASE_HELD = (
    update(_MESSAGES)
    .where(
        _M.conversation_id == bindparam("of_conversation"),
        _M.direction == Direction.OUT.value,
        _M.status == OutboundStatus.HELD,
    )
    .values(status=OutboundStatus.QUEUED, next_attempt_at=None)
)

# A parked receipt whose send is never recorded (a message sent from another tool on the
# same number, say) is dropped after this long.
EARLY_STATUS_TTL = timedelta(hours=24)

WindowClosedHandler = Callable[[Session, Message], None]
UndeliverableHandler = Callable[[Session, Message], None]


@dataclass
class StoreResult:
    stored: int = 0
    duplicates: int = 0
    statuses: int = 0
    parked: int = 0  # statuses for sends not recorded yet (applied when they are)
    conversation_ids: set[int] = field(default_factory=set)
    released: int = 0  # held outbound messages set free by a new inbound message
    stored_kinds: list[str] = field(default_factory=list)


def _inbound_payload(message: InboundMessage) -> dict[str, Any]:
    # Real arrival time (the business clock may be pinned): the rate limit's window.
    payload: dict[str, Any] = {
        "details": dict(message.details),
        RECEIVED_AT: wall_clock_utc().isoformat(),
    }
    if message.payload is not None:
        payload["reply_id"] = message.payload
    if message.profile_name:
        payload["profile_name"] = message.profile_name
    if message.media_id:
        payload["media_id"] = message.media_id
        payload["media_mime"] = message.media_mime
    if message.timestamp is not None:
        payload["sent_at"] = message.timestamp.isoformat()
    if message.kind in EVIDENCE_KINDS:
        payload["evidence"] = True  # for the agent console: review this file
    return payload


def _store_message(
    session: Session, clock: Clock, policy: Policy, message: InboundMessage, result: StoreResult
) -> None:
    connection = session.connection()
    existing = connection.execute(
        _STORED_INBOUND, {"channel": message.channel, "external_id": message.external_id}
    ).scalar()
    if existing is not None:
        result.duplicates += 1
        log.info("inbox.duplicate", channel=message.channel, message_id=existing)
        return
    conversation = get_or_create_conversation(session, clock, message.channel, message.sender)
    now = clock.now_utc()
    payload = _inbound_payload(message)
    stop_word = message.kind == InboundKind.TEXT and is_stop_request(
        message.text, words=policy.contact.stop_words, phrases=policy.contact.stop_phrases
    )
    if stop_word:
        payload[STOP_REQUEST] = True  # the pipeline confirms it (RCS UNSUBSCRIBE: silence)
    if stop_word or message.opts_out:
        # Recorded with the message, in its transaction: nothing later can drop it.
        opt_out(
            session,
            clock,
            message.channel,
            conversation.address,
            conversation_id=conversation.id,
        )
    session.add(
        Message(
            conversation_id=conversation.id,
            channel=message.channel,
            direction=Direction.IN.value,
            external_id=message.external_id,
            author="debtor",
            kind=message.kind.value,
            text=message.text,
            payload=payload,
            status=InboundStatus.PENDING,
            attempts=0,
            next_attempt_at=None,
            created_at=now,
            updated_at=now,
        )
    )
    # Before this message counts as activity: a verification that ran out stays over, and
    # WhatsApp saying the person moved to another number ends it (the old number may be
    # given to someone else).
    expire_idle_verification(session, clock, policy, conversation)
    if message.details.get("system_type") in NUMBER_CHANGE_TYPES:
        end_verification(session, clock, conversation, VerificationEnd.NUMBER_CHANGED)
    conversation.last_inbound_at = now  # the service window reopens
    conversation.updated_at = now
    # The person wrote on this channel: it reaches them again (see bot/channels/fallback.py).
    # Flush first: the expiry below must not discard a change made above (an opt-out).
    session.flush()
    connection.execute(
        _REACHABLE_AGAIN, {"on_channel": message.channel, "on_address": conversation.address}
    )
    for loaded in list(session.identity_map.values()):
        if isinstance(loaded, ContactPoint):  # (a first contact looks its account up)
            session.expire(loaded)
    released = connection.execute(_RELEASE_HELD, {"of_conversation": conversation.id})
    result.released += released.rowcount
    result.stored += 1
    result.stored_kinds.append(message.kind.value)
    result.conversation_ids.add(conversation.id)
    log.info(
        "inbox.stored",
        channel=message.channel,
        kind=message.kind.value,
        sender=mask_phone(message.sender),
        conversation_id=conversation.id,
    )


def _store_status(
    session: Session,
    clock: Clock,
    status: StatusUpdate,
    on_window_closed: WindowClosedHandler | None,
    on_undeliverable: UndeliverableHandler | None = None,
) -> bool | None:
    """Apply ``status`` to its outbound row: True if it changed it, False if not, None if
    the send is not recorded yet (the status is parked)."""
    row = session.scalars(
        select(Message).where(
            Message.channel == status.channel,
            Message.direction == Direction.OUT.value,
            Message.external_id == status.external_id,
        )
    ).first()
    if row is None:
        if not status.external_id:
            return False
        _park(session, status)
        return None
    if status.status == OutboundStatus.FAILED:
        if STATUS_RANK.get(row.status, -1) >= STATUS_RANK[OutboundStatus.DELIVERED]:
            return False
        if row.status in (OutboundStatus.FAILED, OutboundStatus.HELD):
            return False
        row.error_code = status.error_code
        row.updated_at = clock.now_utc()
        if status.outcome == SendOutcome.WINDOW_CLOSED and on_window_closed is not None:
            on_window_closed(session, row)
        else:
            row.status = OutboundStatus.FAILED
            if status.outcome == SendOutcome.UNDELIVERABLE and on_undeliverable is not None:
                on_undeliverable(session, row)  # e.g. fall back to the next channel
        log.warning(
            "outbox.delivery_failed",
            channel=status.channel,
            message_id=row.id,
            error_code=status.error_code,
            error_title=status.error_title,
        )
        return True
    rank = STATUS_RANK.get(status.status)
    if rank is None or rank <= STATUS_RANK.get(row.status, 99):
        return False
    row.status = status.status
    row.updated_at = clock.now_utc()
    return True


def _park(session: Session, status: StatusUpdate) -> None:
    """Keep a receipt for a send that is not recorded yet (the caller commits)."""
    parked = session.scalars(
        select(EarlyStatus.id).where(
            EarlyStatus.channel == status.channel,
            EarlyStatus.external_id == status.external_id,
            EarlyStatus.status == status.status,
        )
    ).first()
    if parked is None:
        session.add(
            EarlyStatus(
                channel=status.channel,
                external_id=status.external_id,
                status=status.status,
                error_code=status.error_code,
                error_title=status.error_title,
                outcome=status.outcome.value if status.outcome else None,
                received_at=wall_clock_utc(),
            )
        )
    log.info("inbox.status_parked", channel=status.channel, status=status.status)


_EARLY = EarlyStatus.__table__.c
# Built once (see bot/conversation/claims.py): is anything parked for this send?
_PARKED_FOR_SEND = (
    select(_EARLY.id)
    .where(_EARLY.channel == bindparam("channel"), _EARLY.external_id == bindparam("external_id"))
    .limit(1)
)


def apply_early_statuses(
    session: Session,
    clock: Clock,
    *,
    external_id: str | None = None,
    channel: str | None = None,
    on_window_closed: WindowClosedHandler | None = None,
    on_undeliverable: UndeliverableHandler | None = None,
) -> int:
    """Apply parked receipts whose send is now recorded (only ``external_id``'s, if given,
    on ``channel``), and drop those parked longer than :data:`EARLY_STATUS_TTL`. The caller
    commits.

    Returns how many receipts changed an outbound row.
    """
    if external_id is not None and channel is not None:
        # The common case, every send: nothing parked for it. One cheap look first.
        found = session.connection().execute(
            _PARKED_FOR_SEND, {"channel": channel, "external_id": external_id}
        )
        if found.first() is None:
            return 0
    query = select(EarlyStatus).join(
        Message,
        and_(
            Message.channel == EarlyStatus.channel,
            Message.direction == Direction.OUT.value,
            Message.external_id == EarlyStatus.external_id,
        ),
    )
    if external_id is not None:
        query = query.where(EarlyStatus.external_id == external_id)
    applied = 0
    for parked in session.scalars(query.order_by(EarlyStatus.id)).all():
        update_ = StatusUpdate(
            channel=parked.channel,
            external_id=parked.external_id,
            status=parked.status,
            error_code=parked.error_code,
            error_title=parked.error_title,
            outcome=SendOutcome(parked.outcome) if parked.outcome else None,
        )
        changed = _store_status(session, clock, update_, on_window_closed, on_undeliverable)
        applied += int(changed is True)
        session.delete(parked)
    if external_id is None:
        session.execute(
            delete(EarlyStatus).where(EarlyStatus.received_at < wall_clock_utc() - EARLY_STATUS_TTL)
        )
    if applied:
        log.info("inbox.early_statuses_applied", count=applied)
    return applied


def store_delivery(
    session: Session,
    clock: Clock,
    delivery: Delivery,
    *,
    policy: Policy,
    on_window_closed: WindowClosedHandler | None = None,
    on_undeliverable: UndeliverableHandler | None = None,
) -> StoreResult:
    """Store every message and status of ``delivery`` in one transaction and commit.

    A concurrent delivery of the same message id can win the race for the unique key;
    the whole delivery is then stored again, now seeing that message as a duplicate.
    """
    messages = sorted(
        delivery.messages, key=lambda m: m.timestamp.timestamp() if m.timestamp else 0.0
    )
    for attempt in range(3):
        result = StoreResult()
        try:
            for message in messages:
                _store_message(session, clock, policy, message, result)
            for status in delivery.statuses:
                known = _store_status(session, clock, status, on_window_closed, on_undeliverable)
                result.statuses += int(known is True)
                result.parked += int(known is None)
            session.commit()
            return result
        except IntegrityError:
            session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
