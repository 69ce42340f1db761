"""The real gateway over real HTTP, for the hostile-input tests (fuzzing, body limits).

:func:`live_gateway` migrates a SQLite file, starts the Rasa and Graph API stand-ins, builds
the app with :func:`bot.gateway.app.create_app` and serves it with uvicorn in a thread on a
free loopback port (lifespan and workers running). It yields a :class:`LiveGateway` whose
``url`` is the base URL. Meant for module-scoped fixtures: one server for many requests.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from bot.config import Settings
from bot.db.migrate import upgrade
from bot.gateway.app import create_app
from tests.conftest_gateway import FAST, PINNED_NOW, REPO_ROOT
from tests.graph_stub import GraphStub
from tests.rasa_standin import RasaStandIn

# The settings of a gateway that is not the sandbox (its own WhatsApp app secret).
REAL_APP_SECRET = "hostile-input-app-secret"
REAL_VERIFY_TOKEN = "hostile-input-verify-token"
REAL_ACCESS_TOKEN = "hostile-input-access-token"
REAL_PAYMENTS_SECRET = "hostile-input-payments-secret"
# Settings overrides: a gateway with secrets of its own (the sandbox off) ...
REAL_SECRETS: dict[str, Any] = {
    "sandbox": False,
    "whatsapp_app_secret": REAL_APP_SECRET,
    "whatsapp_verify_token": REAL_VERIFY_TOKEN,
    "whatsapp_access_token": REAL_ACCESS_TOKEN,
    "payments_webhook_secret": REAL_PAYMENTS_SECRET,
}
# ... or one on the sandbox's built-in credentials (ACUERDO_SANDBOX=1).
SANDBOX_ON: dict[str, Any] = {"sandbox": True}


@dataclass
class LiveGateway:
    url: str
    app: FastAPI
    settings: Settings
    graph: GraphStub
    rasa: RasaStandIn

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def live_gateway(workdir: Path, *, sandbox: bool = True, **overrides: Any) -> Iterator[LiveGateway]:
    """Serve a freshly migrated gateway; ``sandbox=False`` gives one with its own secrets."""
    workdir.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{workdir / 'acuerdo.db'}"
    upgrade(db_url)
    port = free_port()
    with GraphStub() as graph:
        rasa = RasaStandIn().start()
        values: dict[str, Any] = {
            "database_url": db_url,
            "now": PINNED_NOW,
            "whatsapp_api_base_url": graph.url,
            "rasa_port": rasa.port,
            "action_port": rasa.port,
            "policy_file": str(REPO_ROOT / "policy.yml"),
            "var_dir": str(workdir / "var"),
            "secret_key": "hostile-input-secret-key",
            "public_url": f"http://127.0.0.1:{port}",
            "port": port,  # the sandbox's RBM sink is this server
        }
        values.update(SANDBOX_ON if sandbox else REAL_SECRETS)
        values.update(overrides)
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        app = create_app(settings, tuning=FAST)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the gateway did not start")
                time.sleep(0.02)
            yield LiveGateway(f"http://127.0.0.1:{port}", app, settings, graph, rasa)
        finally:
            server.should_exit = True
            thread.join(15)
            rasa.stop()
