"""What SQLite plans for the statements a function runs (for tests on real files)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session

T = TypeVar("T")


def plans_of(session: Session, call: Callable[[], T]) -> tuple[T, list[str]]:
    """``call()``'s result, and SQLite's ``EXPLAIN QUERY PLAN`` of each statement it ran,
    its steps joined with `` | `` (e.g. ``SEARCH messages USING INDEX ...``)."""
    statements: list[tuple[str, tuple[Any, ...]]] = []
    connection = session.connection()

    def record(_conn, _cursor, statement, params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        statements.append((statement, tuple(params)))

    event.listen(connection, "before_cursor_execute", record)
    try:
        result = call()
    finally:
        event.remove(connection, "before_cursor_execute", record)
    explain = session.connection()  # a new one if ``call`` committed
    plans = [
        " | ".join(
            str(row[-1])
            for row in explain.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
        )
        for statement, params in statements
    ]
    return result, plans
