"""The audit log is evidence: the database itself refuses edits and deletions."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import AuditEntry
from bot.domain.audit import record_audit


@pytest.fixture
def entry(session: Session, clock: Clock) -> AuditEntry:
    recorded = record_audit(
        session, clock, actor="bot", action="disclosure", shown="balance", amount_cents=1_200_000
    )
    session.commit()
    return recorded


def test_an_entry_is_appended_with_its_details(
    session: Session, clock: Clock, entry: AuditEntry
) -> None:
    stored = session.scalars(select(AuditEntry)).one()

    assert stored.id == entry.id
    assert stored.at == clock.now_utc()
    assert (stored.actor, stored.action) == ("bot", "disclosure")
    assert stored.details == {"shown": "balance", "amount_cents": 1_200_000}


def test_insert_through_raw_sql_works(session: Session, entry: AuditEntry) -> None:
    session.execute(
        text(
            "INSERT INTO audit_log (at, actor, action, details) "
            "VALUES ('2026-11-23 18:00:00', 'system', 'manual', '{}')"
        )
    )
    session.commit()

    assert session.scalar(select(func.count()).select_from(AuditEntry)) == 2


def test_the_database_refuses_to_update_an_entry(session: Session, entry: AuditEntry) -> None:
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(
            text("UPDATE audit_log SET actor = 'alguien' WHERE id = :id"), {"id": entry.id}
        )
    session.rollback()

    assert session.scalars(select(AuditEntry.actor)).one() == "bot"


def test_the_database_refuses_to_delete_an_entry(session: Session, entry: AuditEntry) -> None:
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": entry.id})
    session.rollback()

    assert session.scalar(select(func.count()).select_from(AuditEntry)) == 1


def test_the_database_refuses_to_empty_the_log(session: Session, entry: AuditEntry) -> None:
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text("DELETE FROM audit_log"))
    session.rollback()

    assert session.scalar(select(func.count()).select_from(AuditEntry)) == 1


def test_changing_an_entry_through_the_orm_is_refused_too(
    session: Session, entry: AuditEntry
) -> None:
    entry.details = {"shown": "nada"}

    with pytest.raises(DBAPIError, match="append-only"):
        session.commit()
    session.rollback()
