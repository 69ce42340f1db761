"""Run Alembic migrations from code (``acuerdo migrate`` and start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (the latest by default)."""
    command.upgrade(alembic_config(url), revision)


def make_revision(url: str, message: str) -> None:
    """Autogenerate a new migration against the database at ``url`` (developers only)."""
    command.revision(alembic_config(url), message=message, autogenerate=True)
