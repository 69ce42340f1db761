"""Console users: agents and supervisors with argon2-hashed passwords.

A new password and deactivation end every session of the user (``bot/console_sessions.py``).
"""

from __future__ import annotations

import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.console_sessions import revoke_sessions
from bot.db.models import ConsoleUser
from bot.domain.audit import record_audit

ROLES = ("agent", "supervisor")
_hasher = PasswordHasher()


class ConsoleUserError(ValueError):
    pass


@cache
def _unknown_user_hash() -> str:
    """A hash no password matches: unknown names are verified against it (same cost)."""
    return PasswordHasher().hash(secrets.token_urlsafe(24))


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise ConsoleUserError("The password must have at least 8 characters")


def _user_named(session: Session, username: str) -> ConsoleUser:
    user = session.scalars(select(ConsoleUser).where(ConsoleUser.username == username)).first()
    if user is None:
        raise ConsoleUserError(f"No user '{username}'")
    return user


def create_console_user(
    session: Session, clock: Clock, username: str, password: str, role: str
) -> ConsoleUser:
    """Create a user; refuses unknown roles, short passwords and taken names."""
    if role not in ROLES:
        raise ConsoleUserError(f"Unknown role '{role}' (use agent or supervisor)")
    _check_password(password)
    if not username.strip() or len(username) > 64:
        raise ConsoleUserError("The user name must have 1 to 64 characters")
    if session.scalars(select(ConsoleUser).where(ConsoleUser.username == username)).first():
        raise ConsoleUserError(f"User '{username}' already exists")
    user = ConsoleUser(
        username=username,
        password_hash=_hasher.hash(password),
        role=role,
        created_at=clock.now_utc(),
    )
    session.add(user)
    session.flush()
    record_audit(
        session, clock, actor="system", action="console_user_created", username=username, role=role
    )
    return user


def authenticate(session: Session, username: str, password: str) -> ConsoleUser | None:
    """The active user with these credentials, or None."""
    user = session.scalars(select(ConsoleUser).where(ConsoleUser.username == username)).first()
    known = user is not None and user.active
    stored = user.password_hash if user is not None and known else _unknown_user_hash()
    try:
        _hasher.verify(stored, password)  # same cost either way: no user enumeration by timing
    except VerificationError:
        return None
    return user if known else None


def set_password(session: Session, clock: Clock, username: str, password: str) -> ConsoleUser:
    """Give a user a new password; every session of theirs ends."""
    _check_password(password)
    user = _user_named(session, username)
    user.password_hash = _hasher.hash(password)
    ended = revoke_sessions(session, user.id)
    record_audit(
        session,
        clock,
        actor="system",
        action="console_password_changed",
        username=username,
        sessions_ended=ended,
    )
    return user


def deactivate_console_user(session: Session, clock: Clock, username: str) -> ConsoleUser:
    """Take a user out of the console: no more sign-ins, every session ends."""
    user = _user_named(session, username)
    user.active = False
    ended = revoke_sessions(session, user.id)
    record_audit(
        session,
        clock,
        actor="system",
        action="console_user_deactivated",
        username=username,
        sessions_ended=ended,
    )
    return user
