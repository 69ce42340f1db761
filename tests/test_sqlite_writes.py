"""One writer at a time per process on a SQLite file (bot/db/sqlite_writes.py), on real files."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.db.engine import make_engine
from bot.db.sqlite_writes import (
    ProcessWriteLock,
    SerializedWritesConnection,
    urgent_writes,
    write_lock,
)
from tests.graph_stub import wait_until
from tests.topology import REPO_ROOT


def _connect(path: Path, timeout: float = 5.0) -> SerializedWritesConnection:
    connection = sqlite3.connect(
        path, timeout=timeout, check_same_thread=False, factory=SerializedWritesConnection
    )
    assert isinstance(connection, SerializedWritesConnection)
    return connection


@pytest.fixture()
def database(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, note TEXT UNIQUE)")
    setup.commit()
    setup.close()
    return path


def _write_in_thread(path: Path, note: str, done: threading.Event, errors: list[str]) -> None:
    connection = _connect(path)
    try:
        connection.cursor().execute("INSERT INTO rows (note) VALUES (?)", (note,))
        connection.commit()
    except sqlite3.Error as exc:
        errors.append(str(exc))
    finally:
        connection.close()
        done.set()


def test_a_second_writer_waits_for_the_first_and_goes_on_when_it_commits(database: Path) -> None:
    first = _connect(database)
    first.cursor().execute("INSERT INTO rows (note) VALUES ('first')")
    done, errors = threading.Event(), []
    writer = threading.Thread(target=_write_in_thread, args=(database, "second", done, errors))
    writer.start()
    assert not done.wait(0.3)  # still waiting: the first transaction is open
    first.commit()
    assert done.wait(10), "the second writer never got the lock"
    writer.join()
    assert errors == []
    notes = [n for (n,) in first.cursor().execute("SELECT note FROM rows ORDER BY id")]
    assert notes == ["first", "second"]


def test_readers_never_wait_for_a_writer(database: Path) -> None:
    writer = _connect(database)
    writer.cursor().execute("INSERT INTO rows (note) VALUES ('uncommitted')")
    reader = _connect(database, timeout=0.2)
    assert reader.cursor().execute("SELECT count(*) FROM rows").fetchone() == (0,)
    writer.commit()
    assert reader.cursor().execute("SELECT count(*) FROM rows").fetchone() == (1,)


def test_a_writer_that_never_ends_gets_the_database_is_locked_error_not_a_hang(
    database: Path,
) -> None:
    holder = _connect(database)
    holder.cursor().execute("INSERT INTO rows (note) VALUES ('held')")
    waiter = _connect(database, timeout=0.3)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        waiter.cursor().execute("INSERT INTO rows (note) VALUES ('never')")
    holder.rollback()
    waiter.cursor().execute("INSERT INTO rows (note) VALUES ('now')")  # free again
    waiter.commit()


def test_a_failed_first_write_and_a_rollback_give_the_lock_back(database: Path) -> None:
    connection = _connect(database)
    connection.cursor().execute("INSERT INTO rows (note) VALUES ('taken')")
    connection.commit()
    with pytest.raises(sqlite3.IntegrityError):
        connection.cursor().execute("INSERT INTO rows (note) VALUES ('taken')")
    connection.rollback()
    other = _connect(database, timeout=0.3)
    other.cursor().execute("INSERT INTO rows (note) VALUES ('free')")  # would time out
    other.commit()


def test_autocommit_statements_do_not_keep_the_lock(database: Path) -> None:
    connection = _connect(database)
    connection.isolation_level = None  # what SQLAlchemy's AUTOCOMMIT level sets
    connection.cursor().execute("INSERT INTO rows (note) VALUES ('auto')")
    other = _connect(database, timeout=0.3)
    other.cursor().execute("INSERT INTO rows (note) VALUES ('next')")
    other.commit()


def test_the_ledger_engine_uses_it_and_sessions_write_concurrently(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'acuerdo.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE hits (n INTEGER)"))
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for n in range(50):
                with engine.begin() as connection:
                    connection.execute(text("INSERT INTO hits (n) VALUES (:n)"), {"n": n})
                    connection.execute(text("UPDATE hits SET n = n + 1 WHERE n = :n"), {"n": n})
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM hits")).scalar() == 400
        raw = connection.connection.dbapi_connection
        assert isinstance(raw, SerializedWritesConnection)


def _write_urgently(path: Path, note: str, done: threading.Event, errors: list[str]) -> None:
    with urgent_writes():
        _write_in_thread(path, note, done, errors)


def test_an_urgent_writer_goes_before_writers_that_waited_longer(database: Path) -> None:
    """The webhook's ack (urgent) does not queue behind the workers' waiting transactions."""
    holder = _connect(database)
    holder.cursor().execute("INSERT INTO rows (note) VALUES ('holder')")
    lock = write_lock(str(database))
    errors: list[str] = []
    threads, dones = [], []
    for n in range(3):
        done = threading.Event()
        thread = threading.Thread(
            target=_write_in_thread, args=(database, f"worker-{n}", done, errors)
        )
        thread.start()
        threads.append(thread)
        dones.append(done)
    wait_until(lambda: lock.waiting == (0, 3), what="three workers waiting")
    urgent_done = threading.Event()
    urgent = threading.Thread(target=_write_urgently, args=(database, "ack", urgent_done, errors))
    urgent.start()
    wait_until(lambda: lock.waiting == (1, 3), what="the ack waiting too")
    holder.commit()
    for thread in [*threads, urgent]:
        thread.join(10)
    assert errors == []
    notes = [n for (n,) in holder.cursor().execute("SELECT note FROM rows ORDER BY id")]
    assert notes[:2] == ["holder", "ack"]
    assert sorted(notes[2:]) == ["worker-0", "worker-1", "worker-2"]


def test_a_writer_that_gives_up_waiting_passes_the_lock_on(database: Path) -> None:
    """A waiter timing out as the lock is handed to it must not strand the next one."""
    lock = write_lock(str(database))
    assert lock.acquire(1.0)
    gave_up = []
    impatient = threading.Thread(target=lambda: gave_up.append(not lock.acquire(0.05)))
    impatient.start()
    impatient.join(5)
    assert gave_up == [True]
    patient_got_it = []
    patient = threading.Thread(target=lambda: patient_got_it.append(lock.acquire(5.0)))
    patient.start()
    wait_until(lambda: lock.waiting == (0, 1), what="a patient writer waiting")
    lock.release()
    patient.join(5)
    assert patient_got_it == [True]
    lock.release()
    assert lock.waiting == (0, 0)


# -- between processes --------------------------------------------------------------------
def _writer_process(database: Path, note: str, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.sqlite_writer_process", str(database), note, *flags],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )


def _notes(database: Path) -> list[str]:
    reader = sqlite3.connect(database)
    try:
        return [n for (n,) in reader.execute("SELECT note FROM rows ORDER BY id")]
    finally:
        reader.close()


def test_a_writer_in_another_process_waits_on_the_lock_file_and_goes_on_at_the_commit(
    database: Path,
) -> None:
    holder = _writer_process(database, "other process", "--hold")
    assert holder.stdout is not None and holder.stdout.readline() == "wrote\n"
    # The other process's transaction holds the lock file: this process cannot take it ...
    assert not ProcessWriteLock(str(database)).acquire(0.05)
    done, errors = threading.Event(), []
    writer = threading.Thread(
        target=_write_in_thread, args=(database, "this process", done, errors)
    )
    writer.start()
    assert not done.wait(0.3)
    holder.communicate("go\n", timeout=10)  # ... until it commits
    assert done.wait(10), "this process's writer never got the lock"
    writer.join()
    assert errors == []
    assert _notes(database) == ["other process", "this process"]


def test_a_process_killed_while_it_writes_frees_the_lock(database: Path) -> None:
    """``kill -9`` in the middle of a transaction: the kernel drops the process's lock file
    with it, and the next writer goes on (its row is not half there)."""
    holder = _writer_process(database, "killed", "--hold")
    assert holder.stdout is not None and holder.stdout.readline() == "wrote\n"
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    writer = _connect(database, timeout=5)
    writer.cursor().execute("INSERT INTO rows (note) VALUES ('after the kill')")
    writer.commit()
    assert _notes(database) == ["after the kill"]


def test_an_urgent_writer_in_another_process_goes_before_this_process_s_next_write(
    database: Path,
) -> None:
    """The webhook's process (urgent) waits; the workers' process commits and writes again
    at once: the ack's row comes first."""
    holder = _connect(database)
    holder.cursor().execute("INSERT INTO rows (note) VALUES ('worker, first')")
    ack = _writer_process(database, "ack", "--urgent")
    probe = ProcessWriteLock(str(database))
    wait_until(probe._urgent_waiting, what="the other process's urgent writer waiting")
    holder.commit()
    holder.cursor().execute("INSERT INTO rows (note) VALUES ('worker, next')")
    holder.commit()
    out, _ = ack.communicate(timeout=10)
    assert out.splitlines() == ["wrote", "committed"]
    assert _notes(database) == ["worker, first", "ack", "worker, next"]
