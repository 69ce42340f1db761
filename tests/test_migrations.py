"""Alembic migrations: the migrated database is exactly what the models describe."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

from bot.db.migrate import alembic_config, upgrade
from bot.db.models import Base

EVERY_TABLE = set(Base.metadata.tables)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def schema_diff(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_models_describe_the_whole_ledger() -> None:
    assert {
        "debtors",
        "accounts",
        "contact_points",
        "payments",
        "payment_codes",
        "promises",
        "offers",
        "agreements",
        "installments",
        "conversations",
        "messages",
        "console_users",
        "audit_log",
    } <= EVERY_TABLE


def test_upgrade_on_an_empty_file_creates_every_table(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "nuevo" / "acuerdo.db")  # the directory is created too

    upgrade(url)

    assert table_names(url) == EVERY_TABLE | {"alembic_version"}


def test_upgrading_twice_is_harmless(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "acuerdo.db")
    upgrade(url)

    upgrade(url)

    assert table_names(url) == EVERY_TABLE | {"alembic_version"}
    assert schema_diff(url) == []


def test_the_migrated_database_matches_the_models_exactly(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "acuerdo.db")
    upgrade(url)

    assert schema_diff(url) == []


def test_the_migration_installs_the_audit_guards(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "acuerdo.db")
    upgrade(url)

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            triggers = set(
                connection.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
            )
    finally:
        engine.dispose()
    assert {"audit_log_no_update", "audit_log_no_delete"} <= triggers


def test_the_schema_lands_in_the_main_file_not_only_the_wal(tmp_path: Path) -> None:
    # Tests copy a migrated template file; a schema left in acuerdo.db-wal would be lost.
    path = tmp_path / "acuerdo.db"
    upgrade(sqlite_url(path))
    copy = tmp_path / "copia.db"
    shutil.copyfile(path, copy)

    assert table_names(sqlite_url(copy)) == EVERY_TABLE | {"alembic_version"}


def test_downgrade_to_base_and_back_up(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "acuerdo.db")
    upgrade(url)

    command.downgrade(alembic_config(url), "base")
    assert table_names(url) == {"alembic_version"}

    upgrade(url)
    assert schema_diff(url) == []


# --- PostgreSQL, the production database: only where its binaries are installed ---------


def test_postgresql_migrates_to_the_models_and_guards_the_audit_log(postgres_url: str) -> None:
    upgrade(postgres_url)
    upgrade(postgres_url)

    assert table_names(postgres_url) == EVERY_TABLE | {"alembic_version"}
    assert schema_diff(postgres_url) == []
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO audit_log (at, actor, action, details) "
                    "VALUES (now(), 'system', 'manual', '{}')"
                )
            )
        for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
                connection.execute(text(statement))
    finally:
        engine.dispose()
