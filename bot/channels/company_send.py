"""The first send of a company-started template: the debtor's preferred channel, through the door.

:func:`send_company_message` queues a template (a reminder) on the first usable channel of
the chain (:func:`bot.channels.fallback.fallback_chain`) through the compliance door
(:func:`bot.compliance.outreach.queue_company_message`): the gate judges it and the verdict
is audited; outside contact hours it is scheduled. The rest of the chain rides on the row,
for :class:`bot.channels.fallback.ChannelFallback` when the channel cannot deliver.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.orm import Session

from bot.channels.base import OutboundMessage, TemplateMessage
from bot.channels.company_template import company_info, company_template
from bot.channels.fallback import (
    RENDERERS,
    CompanySend,
    contact_on,
    fallback_chain,
    is_wrong_number,
    preferred_contact,
    queue_on_chain,
)
from bot.clock import Clock
from bot.compliance.gate import Kind
from bot.compliance.outreach import Queued, queue_company_message
from bot.db.models import Account, ContactPoint, Debtor
from bot.domain.audit import record_audit
from bot.domain.phones import mask_phone
from bot.policy import Policy

log = structlog.get_logger("acuerdo.fallback")


@dataclass(frozen=True)
class _Door:
    """The first send of a chain, through :func:`bot.compliance.outreach.queue_company_message`."""

    policy: Policy
    debtor: Debtor
    account: Account | None
    kind: Kind

    def queue(
        self,
        session: Session,
        clock: Clock,
        channel: str,
        address: str,
        template: TemplateMessage,
        company: dict[str, Any],
        author: str,
    ) -> Queued:
        contact = contact_on(session, channel, address) or _new_contact(
            session, clock, self.debtor, channel, address
        )
        return queue_company_message(
            session,
            clock,
            self.policy,
            RENDERERS,
            self.account,
            contact,
            OutboundMessage(template=template),
            self.kind,
            channel=channel,
            author=author,
            fallback=False,  # the chain is in ``company``, on the first row
            first_extra={"company": company},
        )


def _new_contact(
    session: Session, clock: Clock, debtor: Debtor, channel: str, address: str
) -> ContactPoint:
    """The debtor's number on another channel, recorded for the gate to judge."""
    contact = ContactPoint(
        debtor_id=debtor.id,
        channel=channel,
        address=address,
        preferred=False,
        created_at=clock.now_utc(),
    )
    session.add(contact)
    session.flush()
    return contact


def send_company_message(
    session: Session,
    clock: Clock,
    policy: Policy,
    debtor: Debtor,
    template_name: str,
    variables: Sequence[str],
    *,
    account_id: int | None = None,
    button_payloads: Sequence[str] | None = None,
    channels: Collection[str] | None = None,
    author: str = "system",
    kind: Kind = "reminder",
) -> CompanySend:
    """Queue a company-started template for ``debtor`` on the first usable channel.

    The first channel's send goes through the compliance door (the gate judges it, the
    verdict is audited; outside contact hours it is scheduled). Channels the person opted
    out of, or that said the number cannot receive, are skipped; a number flagged as a
    wrong person gets nothing on any channel. The caller commits and wakes the outbox.
    """
    template = company_template(policy, template_name, variables, button_payloads)
    contact = preferred_contact(session, debtor.id)
    if contact is None:
        record_audit(
            session,
            clock,
            actor="system",
            action="company_message_undeliverable",
            account_id=account_id,
            template=template_name,
            reason="no_contact_point",
        )
        return CompanySend(message=None, channel=None, skipped=[("*", "no_contact_point")])
    address = contact.address
    if is_wrong_number(session, address):
        log.info("fallback.wrong_number", to=mask_phone(address))
        return CompanySend(message=None, channel=None, skipped=[("*", "wrong_number")])
    chain = fallback_chain(policy, contact.channel, channels)
    info = company_info(template, debtor_id=debtor.id, account_id=account_id)
    account = session.get(Account, account_id) if account_id is not None else None
    result = queue_on_chain(
        session,
        clock,
        address=address,
        template=template,
        chain=chain,
        info=info,
        hop=0,
        author=author,
        door=_Door(policy, debtor, account, kind),
    )
    if result.message is None:
        record_audit(
            session,
            clock,
            actor="system",
            action="company_message_undeliverable",
            account_id=account_id,
            template=template_name,
            reason="no_usable_channel",
            skipped=[list(item) for item in result.skipped],
        )
    return result
