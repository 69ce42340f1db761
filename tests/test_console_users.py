"""Console users: agents and supervisors with argon2-hashed passwords."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.console_users import ConsoleUserError, authenticate, create_console_user
from bot.db.models import AuditEntry, ConsoleUser

PASSWORD = "correcto-caballo-9"


def test_a_user_is_stored_with_an_argon2_hash_not_the_password(
    session: Session, clock: Clock
) -> None:
    user = create_console_user(session, clock, "lucia", PASSWORD, "agent")
    session.commit()

    stored = session.scalars(select(ConsoleUser).where(ConsoleUser.username == "lucia")).one()
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    assert PasswordHasher().verify(stored.password_hash, PASSWORD)
    assert (user.role, user.active) == ("agent", True)
    assert user.created_at == clock.now_utc()


def test_creating_a_user_is_audited_without_the_password(session: Session, clock: Clock) -> None:
    create_console_user(session, clock, "marta", PASSWORD, "supervisor")
    session.flush()

    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "console_user_created")
    ).one()
    assert entry.details == {"username": "marta", "role": "supervisor"}
    assert PASSWORD not in str(entry.details)


def test_a_taken_name_is_refused(session: Session, clock: Clock) -> None:
    create_console_user(session, clock, "lucia", PASSWORD, "agent")

    with pytest.raises(ConsoleUserError, match="already exists"):
        create_console_user(session, clock, "lucia", "otra-clave-larga", "supervisor")


@pytest.mark.parametrize("password", ["", "corta", "1234567"])
def test_a_password_under_8_characters_is_refused(
    session: Session, clock: Clock, password: str
) -> None:
    with pytest.raises(ConsoleUserError, match="at least 8"):
        create_console_user(session, clock, "lucia", password, "agent")


def test_a_password_of_exactly_8_characters_is_accepted(session: Session, clock: Clock) -> None:
    assert create_console_user(session, clock, "lucia", "12345678", "agent").id is not None


@pytest.mark.parametrize("role", ["admin", "Agent", "", "root"])
def test_an_unknown_role_is_refused(session: Session, clock: Clock, role: str) -> None:
    with pytest.raises(ConsoleUserError, match="Unknown role"):
        create_console_user(session, clock, "lucia", PASSWORD, role)


@pytest.mark.parametrize("username", ["", "   ", "x" * 65])
def test_an_empty_or_overlong_name_is_refused(
    session: Session, clock: Clock, username: str
) -> None:
    with pytest.raises(ConsoleUserError, match="user name"):
        create_console_user(session, clock, username, PASSWORD, "agent")


def test_nothing_is_stored_when_a_user_is_refused(session: Session, clock: Clock) -> None:
    with pytest.raises(ConsoleUserError):
        create_console_user(session, clock, "lucia", "corta", "agent")

    assert session.scalars(select(ConsoleUser)).all() == []


def test_the_right_password_authenticates(session: Session, clock: Clock) -> None:
    user = create_console_user(session, clock, "lucia", PASSWORD, "agent")
    session.commit()

    assert authenticate(session, "lucia", PASSWORD) == user


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("lucia", "clave-equivocada"),
        ("lucia", PASSWORD.upper()),
        ("lucia", ""),
        ("nadie", PASSWORD),
        ("LUCIA", PASSWORD),
    ],
)
def test_wrong_credentials_do_not_authenticate(
    session: Session, clock: Clock, username: str, password: str
) -> None:
    create_console_user(session, clock, "lucia", PASSWORD, "agent")
    session.commit()

    assert authenticate(session, username, password) is None


def test_a_deactivated_user_cannot_log_in(session: Session, clock: Clock) -> None:
    user = create_console_user(session, clock, "lucia", PASSWORD, "agent")
    user.active = False
    session.commit()

    assert authenticate(session, "lucia", PASSWORD) is None
