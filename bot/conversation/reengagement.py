"""The re-engagement template: when a reply is held for a closed service window, one
approved template (``templates.reanudar_conversacion`` in the policy file, no personal
data) invites the person back; tapping it releases the held messages.

It is a company-started message (it goes out after the 24 hours the debtor opened), so it
is queued through the compliance door
(:func:`bot.compliance.outreach.queue_company_message`): no invitation to a number that
opted out or is a wrong person, none during a dispute, and outside contact hours it waits
for the window to open. The outbox calls :meth:`Reengagement.invite` (its ``invite`` hook).
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.channels.base import RESUME_PAYLOAD, ChannelAdapter, OutboundMessage, TemplateMessage
from bot.clock import Clock
from bot.compliance.outreach import contact_point_of, queue_company_message, renderers_of
from bot.conversation.claims import OutboundStatus
from bot.db.models import Account, Conversation, Direction, Message
from bot.policy import Policy

log = structlog.get_logger("acuerdo.reengagement")

REENGAGEMENT_TEMPLATE = "reanudar_conversacion"


def reengagement_template(policy: Policy) -> TemplateMessage | None:
    """The approved template that invites the person back (no personal data in it)."""
    template = policy.templates.get(REENGAGEMENT_TEMPLATE)
    if template is None:
        return None
    return TemplateMessage(
        name=REENGAGEMENT_TEMPLATE,
        language=template.language,
        button_payloads=tuple(RESUME_PAYLOAD for _ in template.buttons),
        preview=template.body,
        button_titles=tuple(template.buttons),
    )


def already_invited(session: Session, conversation_id: int) -> bool:
    """Whether an invitation since the person's last message is queued, scheduled or sent."""
    last_inbound = session.scalar(
        select(func.max(Message.id)).where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.IN.value,
        )
    )
    invitations = session.scalars(
        select(Message).where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.OUT.value,
            Message.kind == "template",
            Message.id > (last_inbound or 0),
            Message.status.not_in((OutboundStatus.FAILED, OutboundStatus.HELD)),
        )
    ).all()
    return any((row.payload or {}).get("reengagement") for row in invitations)


class Reengagement:
    """The outbox's ``invite`` hook (runs in the transaction that holds the message)."""

    def __init__(
        self, clock: Clock, policy: Policy, adapters: Mapping[str, ChannelAdapter]
    ) -> None:
        self._clock = clock
        self._policy = policy
        self._adapters = adapters

    def invite(self, session: Session, message: Message) -> None:
        """``message`` is held: make sure one template invites the person back."""
        if already_invited(session, message.conversation_id):
            return
        template = reengagement_template(self._policy)
        if template is None:
            log.error("outbox.no_reengagement_template", template=REENGAGEMENT_TEMPLATE)
            return
        conversation = session.get(Conversation, message.conversation_id)
        if conversation is None:
            return
        account = session.get(Account, conversation.account_id) if conversation.account_id else None
        queued = queue_company_message(
            session,
            self._clock,
            self._policy,
            renderers_of(self._adapters),
            account,
            contact_point_of(session, self._clock, conversation),
            OutboundMessage(template=template),
            "reengagement",
            conversation=conversation,
            fallback=False,  # "tap Continuar" means nothing on another channel
            extra={"reengagement": True, "held_message_id": message.id},
        )
        log.info(
            "outbox.window_closed_template",
            conversation_id=message.conversation_id,
            verdict=queued.decision.verdict.value,
            reason=queued.decision.reason,
        )
