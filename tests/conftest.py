"""Shared fixtures: a real, migrated SQLite file per test, a pinned clock, the policy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.engine import session_factory
from bot.db.migrate import upgrade
from bot.db.models import Account
from bot.domain.debtors import upsert_account
from bot.policy import Policy, load_policy
from tests.accounts import account_data

pytest_plugins = ["tests.rasa_stack", "tests.conftest_gateway", "tests.postgres", "tests.rbm_stub"]

REPO_ROOT = Path(__file__).resolve().parent.parent
# Monday 2026-11-23, noon in Mexico City: the default pinned "now" of the suite.
PINNED_NOW = "2026-11-23"

_MIGRATED_TEMPLATE: dict[str, bytes] = {}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite file at the latest migration (migrated once, then copied)."""
    path = tmp_path / "acuerdo.db"
    if "db" not in _MIGRATED_TEMPLATE:
        template = tmp_path / "template.db"
        upgrade(f"sqlite:///{template}")
        _MIGRATED_TEMPLATE["db"] = template.read_bytes()
    path.write_bytes(_MIGRATED_TEMPLATE["db"])
    return f"sqlite:///{path}"


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    with session_factory(db_url)() as s:
        yield s


@pytest.fixture
def clock() -> Clock:
    return Clock.from_setting(PINNED_NOW, "America/Mexico_City")


@pytest.fixture
def policy() -> Policy:
    return load_policy(REPO_ROOT / "policy.yml")


@pytest.fixture
def make_account(session: Session, clock: Clock) -> Callable[..., Account]:
    """Create an account (with its debtor and WhatsApp contact) from keyword overrides."""
    counter = {"n": 0}

    def _make(**overrides: Any) -> Account:
        counter["n"] += 1
        n = counter["n"]
        values: dict[str, Any] = {
            "external_id": f"ACC-{n:04d}",
            "full_name": f"Deudor Prueba {n}",
            "phone": f"+52551234{n:04d}",
            **overrides,
        }
        account, _ = upsert_account(session, clock, account_data(**values))
        session.commit()
        return account

    return _make


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the Rasa quality report (NLU F1 per intent, entity values) after every run."""
    from tests.rasa_stack import QUALITY_REPORT

    if QUALITY_REPORT:
        terminalreporter.section("Rasa quality report")
        for line in QUALITY_REPORT:
            terminalreporter.write_line(line)
