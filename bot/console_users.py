"""Console users: agents and supervisors with argon2-hashed passwords."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import ConsoleUser
from bot.domain.audit import record_audit

ROLES = ("agent", "supervisor")
_hasher = PasswordHasher()


class ConsoleUserError(ValueError):
    pass


def create_console_user(
    session: Session, clock: Clock, username: str, password: str, role: str
) -> ConsoleUser:
    """Create a user; refuses unknown roles, short passwords and taken names."""
    if role not in ROLES:
        raise ConsoleUserError(f"Unknown role '{role}' (use agent or supervisor)")
    if len(password) < 8:
        raise ConsoleUserError("The password must have at least 8 characters")
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
    if user is None or not user.active:
        _hasher.hash(password)  # same cost either way: no user enumeration by timing
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except VerificationError:
        return None
    return user
