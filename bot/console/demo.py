"""Console users of the demo (``acuerdo demo`` only): an agent and a supervisor whose
password is printed with the URLs. Never created outside the demo."""

from __future__ import annotations

from sqlalchemy import select

from bot.clock import Clock
from bot.console_users import create_console_user
from bot.db.engine import session_scope
from bot.db.models import ConsoleUser

DEMO_PASSWORD = "acuerdo-demo"
DEMO_USERS = (("asesora", "agent"), ("supervisora", "supervisor"))


def ensure_demo_console_users(database_url: str, clock: Clock) -> list[str]:
    """Create the demo users that do not exist yet; the names created."""
    created = []
    with session_scope(database_url) as session:
        for username, role in DEMO_USERS:
            exists = session.scalars(
                select(ConsoleUser).where(ConsoleUser.username == username)
            ).first()
            if exists is None:
                create_console_user(session, clock, username, DEMO_PASSWORD, role)
                created.append(username)
    return created


def demo_login_line() -> str:
    names = " / ".join(name for name, _ in DEMO_USERS)
    return f"users {names}, password {DEMO_PASSWORD}"
