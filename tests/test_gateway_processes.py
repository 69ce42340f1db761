"""Real processes: a gateway killed between the 200 and the reply, and the ``up`` supervisor."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bot.channels.whatsapp import SIGNATURE_HEADER, sign_body
from bot.config import SANDBOX_APP_SECRET
from tests.conftest_gateway import PINNED_NOW, REPO_ROOT, envelope, rows, text
from tests.graph_stub import GraphStub, describe, wait_until
from tests.rasa_standin import RasaStandIn

pytest_plugins = ["tests.conftest_gateway"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


GATEWAY_APP = "bot.gateway.app:app_from_env"
WORKERS_APP = "bot.gateway.workers_app:workers_app_from_env"


class GatewayProcess:
    """``uvicorn bot.gateway.app:app_from_env`` (or ``app``) in its own process."""

    def __init__(self, env: dict[str, str], port: int, app: str = GATEWAY_APP) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                app,
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],  # fmt: skip
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._healthy, 30, "the gateway process to answer /healthz")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _healthy(self) -> bool:
        assert self.process.poll() is None, "the gateway process exited"
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no shutdown, no cleanup
        self.process.wait()

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


@pytest.fixture
def gateway_env(
    db_url: str,
    graph_server: GraphStub,
    rasa_standin: RasaStandIn,
    gateway_policy_file: Path,
    tmp_path: Path,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACUERDO_", "WHATSAPP_"))}
    env.update(
        {
            "ACUERDO_DATABASE_URL": db_url,
            "ACUERDO_SANDBOX": "1",  # the sandbox's built-in secrets
            "ACUERDO_NOW": PINNED_NOW,
            "WHATSAPP_API_BASE_URL": graph_server.url,
            "RASA_PORT": str(rasa_standin.port),
            "ACTION_PORT": str(rasa_standin.port),
            "ACUERDO_POLICY_FILE": str(gateway_policy_file),
            "ACUERDO_VAR_DIR": str(tmp_path / "var"),
            "ACUERDO_SECRET_KEY": "test-secret-key",
            "ACUERDO_LOG_LEVEL": "WARNING",
        }
    )
    return env


@pytest.fixture
def gateway_processes(gateway_env: dict[str, str]) -> Iterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    yield started
    for gateway in started:
        gateway.terminate()


def post_signed(url: str, body: dict) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign_body(SANDBOX_APP_SECRET, raw),
    }
    return httpx.post(f"{url}/webhooks/whatsapp", content=raw, headers=headers, timeout=10)


def test_a_gateway_killed_between_the_ack_and_the_reply_answers_after_restart(
    gateway_env: dict[str, str],
    gateway_processes: list[GatewayProcess],
    rasa_standin: RasaStandIn,
    graph_server: GraphStub,
    db_url: str,
) -> None:
    port = free_port()
    first = GatewayProcess(gateway_env, port)
    gateway_processes.append(first)
    rasa_standin.gate.clear()  # Rasa is slow: the reply is not written yet
    response = post_signed(first.url, envelope([text("cuanto debo")]))
    assert response.status_code == 200 and response.json()["stored"] == 1
    assert rasa_standin.arrived.wait(10)
    first.kill()
    rasa_standin.gate.set()
    assert graph_server.sends == []
    assert rows(db_url, "in")[0].status == "processing"

    second = GatewayProcess(gateway_env, port)
    gateway_processes.append(second)
    graph_server.wait_for_sends(1, timeout=20)
    wait_until(lambda: rows(db_url, "out")[0].status == "sent", 10, "the reply recorded")
    assert [describe(s.body) for s in graph_server.sends] == ["eco: cuanto debo"]


def test_the_same_signed_webhook_twice_gets_one_reply_over_real_http(
    gateway_env: dict[str, str],
    gateway_processes: list[GatewayProcess],
    rasa_standin: RasaStandIn,
    graph_server: GraphStub,
) -> None:
    gateway = GatewayProcess(gateway_env, free_port())
    gateway_processes.append(gateway)
    body = envelope([text("hola")])
    assert post_signed(gateway.url, body).json()["stored"] == 1
    assert post_signed(gateway.url, body).json()["duplicates"] == 1
    graph_server.wait_for_sends(1)
    wait_until(lambda: rasa_standin.answered, what="Rasa answered")
    assert len(rasa_standin.requests) == 1
    assert len(graph_server.sends) == 1


SUPERVISED = textwrap.dedent(
    """
    import sys
    from bot.gateway.supervisor import ChildSpec, Supervisor
    mortal = sys.argv[1] == "mortal"
    ports = [int(p) for p in sys.argv[2:]]
    specs = [
        ChildSpec(f"web{i}",
                  [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                  env={"PATH": "/usr/bin:/bin"}, ready_url=f"http://127.0.0.1:{port}/")
        for i, port in enumerate(ports)
    ]
    if mortal:
        # A child without a ready check that dies on its own two seconds in.
        specs.append(ChildSpec("mortal", [sys.executable, "-c", "import time; time.sleep(2)"],
                               env={"PATH": "/usr/bin:/bin"}))
    supervisor = Supervisor(specs, grace=5)
    sys.exit(supervisor.run(30, lambda: supervisor.say("ALL READY")))
    """
)


def _serving(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        return True
    except httpx.HTTPError:
        return False


def test_the_supervisor_starts_children_and_ctrl_c_stops_them_all(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    log = tmp_path / "supervisor.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SUPERVISED, "immortal", *map(str, ports)],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: "ALL READY" in log.read_text(), 30, "both children ready")
        assert all(_serving(port) for port in ports)
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0
    assert not any(_serving(port) for port in ports)
    output = log.read_text()
    assert "web0 | ready" in output and "web1 | ready" in output
    assert "stopped." in output


def test_the_supervisor_stops_everything_when_one_child_dies(tmp_path: Path) -> None:
    ports = [free_port()]
    log = tmp_path / "supervisor.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SUPERVISED, "mortal", *map(str, ports)],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        assert process.wait(30) == 1
    assert not _serving(ports[0])
    assert "mortal | exited with code 0" in log.read_text()


def test_up_and_demo_are_acuerdo_commands() -> None:
    from bot.cli import _register_optional_commands, app

    _register_optional_commands()
    runner = CliRunner()
    for command in ("up", "demo"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "--host" in result.output


def test_the_demo_data_loads_through_the_importers_and_twice_is_harmless(
    tmp_path: Path, gateway_policy_file: Path
) -> None:
    from bot.config import Settings
    from bot.db.engine import session_factory
    from bot.db.models import Account, Payment
    from bot.gateway.commands import load_demo_data

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        sandbox=True,  # on the sandbox's built-in secrets (ACUERDO_SANDBOX=1)
        database_url=f"sqlite:///{tmp_path / 'demo.db'}",
        now=PINNED_NOW,
        policy_file=str(gateway_policy_file),
        var_dir=str(tmp_path / "var"),
    )
    load_demo_data(settings)
    with session_factory(settings.database_url)() as session:
        accounts = session.query(Account).count()
        payments = session.query(Payment).count()
    assert accounts >= 30 and payments >= 5
    load_demo_data(settings)
    with session_factory(settings.database_url)() as session:
        assert session.query(Account).count() == accounts
        assert session.query(Payment).count() == payments
