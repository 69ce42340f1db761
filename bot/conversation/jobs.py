"""What the workers read about a claimed message: the pipeline's inbound, the outbox's send.

The statements are Core statements built once and run on the session's connection (see
:mod:`bot.conversation.claims`): this runs for every message the assistant answers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bot.clock import aware_instant
from bot.conversation.claims import (
    Claim,
    InboundStatus,
    OutboundStatus,
    bound_fence,
    fence_params,
)
from bot.conversation.inbox import STOP_REQUEST
from bot.conversation.rate_limit import RateDecision, rate_decision
from bot.db.models import Conversation, ConversationState, Direction, Message


@dataclass(frozen=True)
class InboundJob:
    message_id: int
    conversation_id: int
    channel: str
    kind: str
    text: str | None
    reply_id: str | None
    external_id: str | None
    sender: str
    profile_name: str | None
    agent_holds: bool
    menu: tuple[str, ...]  # payloads of the last numbered menu sent to this person
    emoji: str | None
    rate: RateDecision  # over the conversation's rate limit: not answered (tell them once)
    stop_request: bool = False  # a stop word: opted out when stored; confirmed, never skipped


_M = Message.__table__.c
_C = Conversation.__table__.c
# Built once, run on the session's connection (see bot/conversation/claims.py).
_LAST_OUTBOUND_PAYLOAD = (
    select(_M.payload)
    .where(
        _M.conversation_id == bindparam("conversation_id"),
        _M.direction == Direction.OUT.value,
        _M.id < bindparam("before_id"),
    )
    .order_by(_M.id.desc())
    .limit(1)
)
_CLAIMED_JOB = (
    select(
        _M.id,
        _M.conversation_id,
        _M.channel,
        _M.kind,
        _M.text,
        _M.payload,
        _M.external_id,
        _C.address,
        _C.state,
    )  # fmt: skip
    .join_from(Message.__table__, Conversation.__table__, _C.id == _M.conversation_id)
    .where(*bound_fence(InboundStatus.PROCESSING))
)


def _menu_payloads(session: Session, conversation_id: int, before_id: int) -> tuple[str, ...]:
    last = session.connection().execute(
        _LAST_OUTBOUND_PAYLOAD, {"conversation_id": conversation_id, "before_id": before_id}
    )
    options = (last.scalar() or {}).get("options")
    if not isinstance(options, list):
        return ()
    return tuple(str(option.get("payload", "")) for option in options if isinstance(option, dict))


def load_inbound_job(
    session: Session, claim: Claim, *, rate_limit_messages: int, rate_limit_seconds: float
) -> InboundJob | None:
    """The claimed message and what answering it needs; None if the claim was taken over."""
    row = session.connection().execute(_CLAIMED_JOB, fence_params(claim)).first()
    if row is None:
        return None
    payload = row.payload or {}
    details = payload.get("details") or {}
    return InboundJob(
        message_id=row.id,
        conversation_id=row.conversation_id,
        channel=row.channel,
        kind=row.kind,
        text=row.text,
        reply_id=payload.get("reply_id"),
        external_id=row.external_id,
        sender=row.address,
        profile_name=payload.get("profile_name"),
        agent_holds=row.state == ConversationState.AGENT.value,
        menu=_menu_payloads(session, row.conversation_id, row.id),
        emoji=details.get("emoji"),
        rate=rate_decision(
            session,
            conversation_id=row.conversation_id,
            message_id=row.id,
            payload=payload,
            limit=rate_limit_messages,
            window=rate_limit_seconds,
        ),
        stop_request=bool(payload.get(STOP_REQUEST)),
    )


# -- the outbox's send -------------------------------------------------------------------
# An outbound row written without a key (before keys existed) gets one derived from it.
_KEY_NAMESPACE = uuid.UUID("0b7f4f7e-5a0c-4b8e-8d8e-1d9f2f6b3a41")

_CLAIMED_SEND = (
    select(_M.id, _M.channel, _M.kind, _M.payload, _M.created_at, _C.address, _C.last_inbound_at)
    .join_from(Message.__table__, Conversation.__table__, _C.id == _M.conversation_id)
    .where(*bound_fence(OutboundStatus.SENDING))
)


@dataclass(frozen=True)
class OutboundJob:
    channel: str
    kind: str
    address: str
    body: dict[str, Any]
    last_inbound_at: datetime | None
    idempotency_key: str
    # Company-started messages must leave inside the debtor's contact window.
    send_before: datetime | None = None


def load_outbound_job(session: Session, claim: Claim) -> OutboundJob | None:
    """The claimed send and its conversation; None if the claim was taken over."""
    row = session.connection().execute(_CLAIMED_SEND, fence_params(claim)).first()
    if row is None:
        return None
    payload = row.payload or {}
    key = payload.get("idempotency_key") or str(
        uuid.uuid5(_KEY_NAMESPACE, f"{row.id}:{row.created_at.isoformat()}")
    )
    return OutboundJob(
        channel=row.channel,
        kind=row.kind,
        address=row.address,
        body=dict(payload.get("body") or {}),
        last_inbound_at=row.last_inbound_at,
        idempotency_key=str(key),
        send_before=aware_instant(payload.get("send_before")),
    )
