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


def test_a_new_password_replaces_the_old_and_ends_every_session(
    session: Session, clock: Clock
) -> None:
    from bot.clock import wall_clock_utc
    from bot.console_sessions import open_session, session_user
    from bot.console_users import set_password

    user = create_console_user(session, clock, "lucia", PASSWORD, "agent")
    secrets = [open_session(session, user, wall_clock_utc()) for _ in range(2)]

    set_password(session, clock, "lucia", "otra-clave-larga")

    assert authenticate(session, "lucia", PASSWORD) is None
    assert authenticate(session, "lucia", "otra-clave-larga") is not None
    assert [session_user(session, s, wall_clock_utc()) for s in secrets] == [None, None]
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "console_password_changed")
    ).one()
    assert entry.details == {"username": "lucia", "sessions_ended": 2}
    with pytest.raises(ConsoleUserError, match="at least 8"):
        set_password(session, clock, "lucia", "corta")
    with pytest.raises(ConsoleUserError, match="No user"):
        set_password(session, clock, "nadie", "otra-clave-larga")


def test_a_deactivated_user_cannot_sign_in(session: Session, clock: Clock) -> None:
    from bot.console_users import deactivate_console_user

    create_console_user(session, clock, "mateo", PASSWORD, "agent")

    deactivate_console_user(session, clock, "mateo")

    assert authenticate(session, "mateo", PASSWORD) is None


def test_the_agents_commands_change_a_password_and_deactivate(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from bot.cli import app
    from bot.config import get_settings
    from bot.db.engine import session_factory

    monkeypatch.setenv("ACUERDO_DATABASE_URL", db_url)
    get_settings.cache_clear()
    monkeypatch.setattr("bot.cli.get_settings", get_settings)
    runner = CliRunner()
    try:
        assert runner.invoke(app, ["agents", "add", "ana"], input=PASSWORD + "\n").exit_code == 0
        changed = runner.invoke(app, ["agents", "password", "ana"], input="nueva-clave-9\n")
        assert changed.exit_code == 0, changed.output
        gone = runner.invoke(app, ["agents", "deactivate", "ana"])
        assert gone.exit_code == 0, gone.output
        missing = runner.invoke(app, ["agents", "deactivate", "nadie"])
        assert missing.exit_code == 1
    finally:
        get_settings.cache_clear()
    with session_factory(db_url)() as s:
        user = s.scalars(select(ConsoleUser).where(ConsoleUser.username == "ana")).one()
        assert user.active is False
        assert PasswordHasher().verify(user.password_hash, "nueva-clave-9")
