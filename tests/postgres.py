"""A throw-away PostgreSQL cluster for tests (skipped where PostgreSQL is not installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import DBAPIError

PG_BIN = next(
    (
        Path(p).parent
        for p in [
            shutil.which("pg_ctl") or "",
            *map(str, Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")),
        ]
        if p and Path(p).exists() and (Path(p).parent / "initdb").exists()
    ),
    None,
)


def _as_postgres_user() -> list[str]:
    """initdb refuses to run as root: run the server as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without runuser to start PostgreSQL")
    return [runuser, "-u", "postgres", "--"]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL cluster on a Unix socket in a temporary directory."""
    if PG_BIN is None:
        pytest.skip("PostgreSQL is not installed")
    pytest.importorskip("psycopg2")
    prefix = _as_postgres_user()
    # Not under pytest's tmp_path: the postgres user cannot enter root's private directory.
    base = Path(tempfile.mkdtemp(prefix="acuerdo-pg-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    if prefix:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(
        [
            *prefix,
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "acuerdo",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
        **run,  # type: ignore[arg-type]
    )
    subprocess.run(
        [
            *prefix,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "log"),
            "-w",
            "-o",
            f"-k {sockets} -c listen_addresses='' -c fsync=off",
            "start",
        ],
        **run,  # type: ignore[arg-type]
    )
    try:
        url = f"postgresql+psycopg2://acuerdo@/postgres?host={sockets}"
        deadline = time.monotonic() + 30
        while True:
            try:
                create_engine(url).connect().close()
                break
            except DBAPIError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        subprocess.run(
            [*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)
