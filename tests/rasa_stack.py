"""A running Rasa server and action server for the whole test session (the model loads once).

Real processes, real HTTP, a real SQLite ledger seeded with known debtors.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.clock import Clock
from bot.db.engine import session_scope
from bot.db.migrate import upgrade
from bot.domain.debtors import upsert_account
from bot.engine.action_server import command as action_server_command
from bot.engine.training import latest_model, rasa_env, serve_command
from tests.accounts import account_data

REPO_ROOT = Path(__file__).resolve().parent.parent
# Lines the quality gates report; conftest prints them in pytest's terminal summary.
QUALITY_REPORT: list[str] = []
STACK_NOW = "2026-11-23"  # a Monday, noon in Mexico City
STACK_TOKEN = "test-internal-token-0123456789abcdef"  # ACUERDO_INTERNAL_TOKEN of the stack

# Debtors every conversation test may use; each test uses its own phone so that
# trackers and ledger rows never interfere.
STACK_DEBTORS = [
    account_data(
        f"TC-{n:04d}5678",
        f"María Prueba{n} López",
        f"+5255100{n:05d}",
        due_date=date(2026, 9, 24),
        minimum_payment_cents=150_000,
    )
    for n in range(1, 41)
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s")


@dataclass
class RasaStack:
    rasa_url: str
    action_url: str
    db_url: str
    env: dict[str, str]
    logs: Path
    token: str = STACK_TOKEN
    _turns: int = field(default=0)
    pids: dict[str, int] = field(default_factory=dict)  # "rasa", "actions" (for CPU figures)

    @property
    def auth(self) -> dict[str, str]:
        """The header the gateway sends to Rasa's REST channel."""
        return {"Authorization": f"Bearer {self.token}"}

    def say(self, sender: str, text: str, **metadata: Any) -> list[dict[str, Any]]:
        """One debtor turn through Rasa's REST channel; the bot's messages come back."""
        response = httpx.post(
            f"{self.rasa_url}/webhooks/rest/webhook",
            json={
                "sender": sender,
                "message": text,
                "metadata": {"channel": "whatsapp", "phone": sender, **metadata},
            },
            headers=self.auth,
            timeout=60,
        )
        response.raise_for_status()
        return list(response.json())

    def parse(self, text: str) -> dict[str, Any]:
        response = httpx.post(
            f"{self.rasa_url}/model/parse",
            params={"token": self.token},
            json={"text": text},
            timeout=30,
        )
        response.raise_for_status()
        return dict(response.json())


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def start_stack(
    workdir: Path, *, rasa_prelude: str | None = None, **extra_env: str
) -> Iterator[RasaStack]:
    """Seed a ledger in ``workdir`` and run the action server and Rasa on it (``extra_env``
    adds or overrides settings, e.g. ``ACUERDO_POLICY_FILE``). ``rasa_prelude``: Python run
    inside the Rasa process before ``rasa run`` starts (a test's instrument, e.g. a counter
    around one graph component); the command line is the same."""
    config = os.environ.get("ACUERDO_TRAIN_CONFIG", "config_ci.yml")
    override = os.environ.get("ACUERDO_TEST_MODEL")  # a model file to test instead (development)
    model = Path(override) if override else latest_model(REPO_ROOT, config)
    if model is None:
        pytest.fail(f"No trained model for {config}: run 'acuerdo train' (make test does).")
    db_url = f"sqlite:///{workdir / 'acuerdo.db'}"
    upgrade(db_url)
    clock = Clock.from_setting(STACK_NOW, "America/Mexico_City")
    with session_scope(db_url) as session:
        for data in STACK_DEBTORS:
            upsert_account(session, clock, data)
    rasa_port, action_port = free_port(), free_port()
    env = rasa_env(REPO_ROOT)
    env.update(
        {
            "ACUERDO_DATABASE_URL": db_url,
            "ACUERDO_SANDBOX": "1",  # the sandbox's built-in secrets
            "ACUERDO_NOW": STACK_NOW,
            "ACTION_PORT": str(action_port),
            "RASA_PORT": str(rasa_port),
            "ACUERDO_VAR_DIR": str(workdir / "var"),
            "ACUERDO_SECRET_KEY": "test-secret-key",
            "ACUERDO_PUBLIC_URL": "http://pay.test",
            "ACUERDO_INTERNAL_TOKEN": STACK_TOKEN,
            **extra_env,
        }
    )
    logs = workdir
    actions = subprocess.Popen(
        action_server_command(str(REPO_ROOT / ".venv/bin/python"), action_port),
        cwd=REPO_ROOT,
        env=env,
        stdout=(logs / "actions.log").open("wb"),  # noqa: SIM115 (lives as long as the process)
        stderr=subprocess.STDOUT,
    )
    command = serve_command(REPO_ROOT, model, port=rasa_port, token=STACK_TOKEN)
    if rasa_prelude is not None:
        starter = "import sys\nfrom rasa.__main__ import main\nsys.argv[0] = 'rasa'\nmain()\n"
        python = REPO_ROOT / ".venv-rasa" / "bin" / "python"
        command = [str(python), "-c", rasa_prelude + "\n" + starter, *command[1:]]
    rasa = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=(logs / "rasa.log").open("wb"),  # noqa: SIM115 (lives as long as the process)
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{action_port}/health", actions, 60)
        wait_until_ready(f"http://127.0.0.1:{rasa_port}/status?token={STACK_TOKEN}", rasa, 240)
        yield RasaStack(
            f"http://127.0.0.1:{rasa_port}",
            f"http://127.0.0.1:{action_port}",
            db_url,
            env,
            logs,
            pids={"rasa": rasa.pid, "actions": actions.pid},
        )
    finally:
        _stop(rasa)
        _stop(actions)


@pytest.fixture(scope="session")
def rasa_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasaStack]:
    with start_stack(tmp_path_factory.mktemp("stack")) as stack:
        yield stack
