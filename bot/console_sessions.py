"""Console sessions on the server: the cookie carries a random secret, the ledger keeps its
sha256 (``console_sessions``), so a stolen database cannot be replayed as cookies and a
deleted row is a revoked session.

Expiry is machinery, not business time: it follows the wall clock (like the cookie's own
signature age), never a pinned ``ACUERDO_NOW``.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.db.models import ConsoleSession, ConsoleUser

SESSION_LIFETIME = timedelta(hours=12)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def open_session(session: Session, user: ConsoleUser, now: datetime) -> str:
    """A new session of ``user``; the secret for the cookie (expired rows are pruned here)."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    secret = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            token_hash=_digest(secret),
            user_id=user.id,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    session.flush()
    return secret


def session_user(session: Session, secret: str, now: datetime) -> tuple[int, ConsoleUser] | None:
    """(session id, user) of a live session of an active user, or None."""
    row = session.execute(
        select(ConsoleSession.id, ConsoleUser)
        .join(ConsoleUser, ConsoleUser.id == ConsoleSession.user_id)
        .where(
            ConsoleSession.token_hash == _digest(secret),
            ConsoleSession.expires_at > now,
            ConsoleUser.active.is_(True),
        )
    ).first()
    return None if row is None else (row[0], row[1])


def close_session(session: Session, session_id: int) -> None:
    """Sign one browser out."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.id == session_id))


def revoke_sessions(session: Session, user_id: int) -> int:
    """Sign every browser of a user out; how many sessions ended."""
    result = session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)
