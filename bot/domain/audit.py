"""The append-only audit trail: disclosures, offers, promises, agent actions, suppressions."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import AuditEntry


def record_audit(
    session: Session,
    clock: Clock,
    *,
    actor: str,
    action: str,
    account_id: int | None = None,
    conversation_id: int | None = None,
    **details: Any,
) -> AuditEntry:
    """Append one entry; it is flushed with the caller's transaction."""
    entry = AuditEntry(
        at=clock.now_utc(),
        actor=actor,
        action=action,
        account_id=account_id,
        conversation_id=conversation_id,
        details=details,
    )
    session.add(entry)
    return entry
