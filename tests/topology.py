"""Acuerdo's processes on loopback, single or scaled, for the chaos tests and the benchmarks.

* ``single``: the default deployment — SQLite ledger, one Rasa server (in-memory tracker
  store), one action server, one gateway.
* ``scaled``: the deployment for more than one machine (README) — PostgreSQL for the ledger
  and for Rasa's tracker store, Redis for Rasa's lock store, several Rasa servers and
  gateways, one action server.

Every piece is a real process started from this repository (Rasa from ``.venv-rasa``), each
in its own process group so that it can be killed with SIGKILL and started again. The only
stand-in is the WhatsApp Graph API (``tests.graph_stub``), passed in as a URL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx

from bot.clock import Clock
from bot.db.engine import session_scope
from bot.db.migrate import upgrade
from bot.domain.debtors import AccountData, upsert_account
from bot.engine.action_server import command as action_server_command
from bot.engine.training import rasa_env, serve_command
from bot.gateway.workers_app import command as workers_command
from tests.accounts import account_data

REPO_ROOT = Path(__file__).resolve().parent.parent
TOPOLOGY_NOW = "2026-11-23"  # a Monday: noon in Mexico City is inside contact hours
TOPOLOGY_TOKEN = "topology-internal-token-0123456789"  # ACUERDO_INTERNAL_TOKEN of every piece
SCALED_ENDPOINTS = REPO_ROOT / "deploy" / "endpoints.scaled.yml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_debtors(count: int, prefix: str = "+52552") -> list[AccountData]:
    """``count`` debtors with distinct phones ``{prefix}00NNNNN`` and known answers."""
    return [
        account_data(
            f"LD-{n:05d}",
            f"Deudor{n} Carga Prueba",
            f"{prefix}{n:07d}",
            due_date=date(2026, 9, 24),
            minimum_payment_cents=150_000,
        )
        for n in range(1, count + 1)
    ]


def _vm_kib(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class Service:
    """One child process: start, wait until ready, kill, restart, memory."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    ready_url: str | None = None
    cwd: Path = REPO_ROOT
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    peak_rss_kib: int = 0  # the highest VmHWM seen over every incarnation

    def start(self) -> Service:
        with self.log.open("ab") as out:
            out.write(f"\n==== start #{self.starts + 1} of {self.name} ====\n".encode())
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdout=self.log.open("ab"),  # noqa: SIM115 (lives as long as the process)
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        if not self.alive():
            return False
        if self.ready_url is None:
            return True
        try:
            return httpx.get(self.ready_url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if not self.alive():
                raise RuntimeError(f"{self.name} exited while starting; see {self.log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s; see {self.log}")
            time.sleep(0.25)

    def sample_memory(self) -> int:
        """Record and return this incarnation's peak RSS (KiB) so far."""
        if self.alive():
            self.peak_rss_kib = max(self.peak_rss_kib, _vm_kib(self.pid, "VmHWM"))
        return self.peak_rss_kib

    def cpu_seconds(self) -> float:
        """User + system CPU time this incarnation has used so far (0 once it is gone)."""
        if not self.alive():
            return 0.0
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

    def rss_kib(self) -> int:
        return _vm_kib(self.pid, "VmRSS") if self.alive() else 0

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group and wait for the process to end."""
        if not self.alive():
            return
        self.sample_memory()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)
        assert self.process is not None
        self.process.wait(timeout=60)

    def stop(self, grace: float = 20.0) -> None:
        if not self.alive():
            return
        self.sample_memory()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        assert self.process is not None
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self, timeout: float = 300.0) -> None:
        self.kill()
        self.start().wait_ready(timeout)


def _as_postgres_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root without runuser to start PostgreSQL")
    return [runuser, "-u", "postgres", "--"]


def postgres_bin() -> Path | None:
    candidates = [shutil.which("pg_ctl") or ""] + sorted(
        map(str, Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")), reverse=True
    )
    for candidate in candidates:
        if candidate and Path(candidate).exists() and (Path(candidate).parent / "initdb").exists():
            return Path(candidate).parent
    return None


@dataclass
class PostgresServer:
    """A throw-away PostgreSQL cluster listening on a loopback TCP port."""

    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="acuerdo-pgtop-")))
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed")
        self.bin = bin_dir
        self.prefix = _as_postgres_user()
        self.data = self.base / "data"
        self.sockets = self.base / "run"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        if not self.data.exists():
            self.sockets.mkdir(parents=True, exist_ok=True)
            if self.prefix:
                shutil.chown(self.base, "postgres")
                shutil.chown(self.sockets, "postgres")
            self._run(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "acuerdo",
                "--auth=trust", "-E", "UTF8",
            )  # fmt: skip
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log"), "-w",
            "-o",
            f"-k {self.sockets} -c listen_addresses=127.0.0.1 -p {self.port} -c fsync=off "
            "-c max_connections=200",
            "start",
        )  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            [*self.prefix, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "stop"],
            capture_output=True,
            timeout=120,
        )

    def restart(self) -> None:
        """Stop the server as a crash would (``immediate``) and start it again."""
        self.stop("immediate")
        self.start()

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://acuerdo@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class RedisServer:
    """A throw-away Redis server on a loopback port (no persistence)."""

    log: Path
    port: int = field(default_factory=free_port)
    service: Service | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.service = Service(
            "redis",
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ],  # fmt: skip
            dict(os.environ),
            self.log,
        ).start()
        deadline = time.monotonic() + 30
        while not self.ping():
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis not ready; see {self.log}")
            time.sleep(0.1)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()


@dataclass
class Topology:
    """Acuerdo's processes for one test module or benchmark run."""

    model: Path
    graph_url: str
    scaled: bool = True
    gateways: int = 2
    rasa_servers: int = 2
    debtors: list[AccountData] = field(default_factory=lambda: load_debtors(60))
    extra_env: dict[str, str] = field(default_factory=dict)
    rasa_nice: int = 0  # run Rasa at a lower CPU priority (nice) than the gateway
    # The single topology as ``acuerdo up`` runs it: the workers in a process of their own
    # beside the gateway (ACUERDO_WORKERS=separate); False keeps them inside the gateway.
    separate_workers: bool = True
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="acuerdo-top-")))
    postgres: PostgresServer | None = None
    redis: RedisServer | None = None
    actions: Service | None = None
    rasa: list[Service] = field(default_factory=list)
    gateway: list[Service] = field(default_factory=list)
    workers: Service | None = None
    db_url: str = ""

    # -- set-up -------------------------------------------------------------------------
    def _base_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ACUERDO_", "WHATSAPP_", "RASA_", "RCS_", "SMS_"))
        }
        env.update(
            {
                "ACUERDO_DATABASE_URL": self.db_url,
                "ACUERDO_SANDBOX": "1",  # the sandbox's built-in secrets
                "ACUERDO_NOW": TOPOLOGY_NOW,
                "ACUERDO_VAR_DIR": str(self.workdir / "var"),
                "ACUERDO_SECRET_KEY": "topology-secret-key",
                "ACUERDO_PUBLIC_URL": "http://pay.test",
                "ACUERDO_INTERNAL_TOKEN": TOPOLOGY_TOKEN,
                "WHATSAPP_API_BASE_URL": self.graph_url,
                "PYTHONUNBUFFERED": "1",
                "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
                "RASA_TELEMETRY_ENABLED": "false",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, ready_timeout: float = 400.0) -> Topology:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.scaled:
            self.gateways = self.rasa_servers = 1
        if self.scaled:
            self.postgres = PostgresServer().start()
            self.postgres.create_database("acuerdo")
            self.postgres.create_database("rasa")
            self.db_url = self.postgres.url("acuerdo")
            self.redis = RedisServer(self.workdir / "redis.log").start()
        else:
            self.db_url = f"sqlite:///{self.workdir / 'acuerdo.db'}"
        upgrade(self.db_url)
        clock = Clock.from_setting(TOPOLOGY_NOW, "America/Mexico_City")
        with session_scope(self.db_url) as session:
            for data in self.debtors:
                upsert_account(session, clock, data)

        action_port = free_port()
        rasa_ports = [free_port() for _ in range(self.rasa_servers)]
        gateway_ports = [free_port() for _ in range(self.gateways)]
        env = self._base_env()
        env["ACTION_PORT"] = str(action_port)
        env["ACTION_SERVER_URL"] = f"http://127.0.0.1:{action_port}"
        env["RASA_URLS"] = ",".join(f"http://127.0.0.1:{p}" for p in rasa_ports)
        env["RASA_PORT"] = str(rasa_ports[0])

        python = str(REPO_ROOT / ".venv/bin/python")
        self.actions = Service(
            "actions",
            action_server_command(python, action_port),
            env,
            self.workdir / "actions.log",
            f"http://127.0.0.1:{action_port}/health",
        ).start()

        r_env = dict(env)
        r_env["PYTHONPATH"] = rasa_env(REPO_ROOT)["PYTHONPATH"]
        r_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        endpoints = "endpoints.yml"
        if self.scaled:
            assert self.postgres is not None and self.redis is not None
            endpoints = str(SCALED_ENDPOINTS)
            r_env.update(
                {
                    "ACTION_SERVER_URL": f"http://127.0.0.1:{action_port}",
                    "RASA_TRACKER_STORE_URL": self.postgres.url("rasa", "postgresql"),
                    "REDIS_HOST": "127.0.0.1",
                    "REDIS_PORT": str(self.redis.port),
                }
            )
        for index, port in enumerate(rasa_ports):
            self.rasa.append(
                Service(
                    f"rasa{index + 1}",
                    [
                        *(["nice", "-n", str(self.rasa_nice)] if self.rasa_nice else []),
                        *serve_command(
                            REPO_ROOT,
                            self.model,
                            port=port,
                            token=TOPOLOGY_TOKEN,
                            endpoints=endpoints,
                        ),
                    ],
                    {**r_env, "RASA_PORT": str(port)},
                    self.workdir / f"rasa{index + 1}.log",
                    f"http://127.0.0.1:{port}/status?token={TOPOLOGY_TOKEN}",
                ).start()
            )
        if self.separate_workers and not self.scaled:
            workers_port = free_port()
            env["ACUERDO_WORKERS"] = "separate"
            env["ACUERDO_WORKERS_PORT"] = str(workers_port)
            self.workers = Service(
                "workers",
                workers_command(python, workers_port),
                {**env, "ACUERDO_PORT": str(gateway_ports[0])},
                self.workdir / "workers.log",
                f"http://127.0.0.1:{workers_port}/healthz",
            ).start()
        for index, port in enumerate(gateway_ports):
            self.gateway.append(
                Service(
                    f"gateway{index + 1}",
                    [
                        python,
                        "-m",
                        "uvicorn",
                        "bot.gateway.app:app_from_env",
                        "--factory",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--no-access-log",
                    ],  # fmt: skip
                    {**env, "ACUERDO_PORT": str(port)},
                    self.workdir / f"gateway{index + 1}.log",
                    f"http://127.0.0.1:{port}/healthz",
                ).start()
            )
        try:
            for service in self.services():
                service.wait_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    # -- use ----------------------------------------------------------------------------
    def services(self) -> list[Service]:
        pieces: list[Service | None] = [self.actions, *self.rasa, self.workers, *self.gateway]
        return [s for s in pieces if s is not None]

    def gateway_urls(self) -> list[str]:
        return [
            service.ready_url.removesuffix("/healthz")
            for service in self.gateway
            if service.ready_url
        ]

    def rasa_urls(self) -> list[str]:
        return [service.ready_url.split("/status")[0] for service in self.rasa if service.ready_url]

    def sample_memory(self) -> None:
        for service in self.services():
            service.sample_memory()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by each process (for per-message figures: take a difference)."""
        return {s.name: s.cpu_seconds() for s in self.services()}

    def peak_rss_mib(self) -> dict[str, float]:
        """Peak resident memory of each process (MiB), ``VmHWM`` from /proc."""
        self.sample_memory()
        return {s.name: round(s.peak_rss_kib / 1024, 1) for s in self.services()}

    def stop(self) -> None:
        for service in reversed(self.services()):
            service.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.cleanup()

    def __enter__(self) -> Topology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


if __name__ == "__main__":  # a quick manual check: python -m tests.topology
    from bot.engine.training import latest_model
    from tests.graph_stub import GraphStub

    model = latest_model(REPO_ROOT, os.environ.get("ACUERDO_TRAIN_CONFIG", "config_ci.yml"))
    assert model is not None
    with GraphStub() as graph, Topology(model=model, graph_url=graph.url) as topology:
        print("up:", topology.gateway_urls(), topology.rasa_urls(), topology.peak_rss_mib())
        sys.stdout.flush()
