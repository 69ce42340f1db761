"""A writer in a process of its own, for tests/test_sqlite_writes.py.

``python -m tests.sqlite_writer_process DB NOTE [--urgent] [--hold]`` inserts NOTE into the
``rows`` table through the ledger's connection class, prints ``wrote`` once the row is
written, and with ``--hold`` keeps the transaction open until a line arrives on stdin; it
prints ``committed`` after the commit.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys

from bot.db.sqlite_writes import SerializedWritesConnection, urgent_writes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database")
    parser.add_argument("note")
    parser.add_argument("--urgent", action="store_true")
    parser.add_argument("--hold", action="store_true")
    args = parser.parse_args()
    connection = sqlite3.connect(args.database, timeout=30, factory=SerializedWritesConnection)
    with urgent_writes() if args.urgent else contextlib.nullcontext():
        connection.cursor().execute("INSERT INTO rows (note) VALUES (?)", (args.note,))
        print("wrote", flush=True)
        if args.hold:
            sys.stdin.readline()
        connection.commit()
    print("committed", flush=True)
    connection.close()


if __name__ == "__main__":
    main()
