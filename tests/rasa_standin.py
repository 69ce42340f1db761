"""A tiny local stand-in for Rasa's REST channel, for the gateway's unit tests only.

``POST /webhooks/rest/webhook`` answers with ``responder(body)`` (by default an echo);
``GET /`` is Rasa's status line and ``GET /health`` the action server's health, so one
stand-in can serve as both ends (point RASA_PORT and ACTION_PORT at it). It records every
request and can be made unavailable or made to hold requests until released.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], list[dict[str, Any]]]


def echo(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"recipient_id": body.get("sender"), "text": f"eco: {body.get('message')}"}]


class RasaStandIn:
    def __init__(self, responder: Responder = echo, *, keep_alive: bool = False) -> None:
        self.responder = responder
        # HTTP/1.1 keep-alive, as Sanic answers (for the benchmarks; see GraphStub).
        self.keep_alive = keep_alive
        self.requests: list[dict[str, Any]] = []  # every webhook call, answered or not
        self.answered: list[dict[str, Any]] = []
        self.rasa_down = False  # webhook answers 503
        self.actions_down = False  # /health answers 500
        self.health_checks = 0  # GET /health calls (the gateway's action-server checks)
        self.gate = threading.Event()  # cleared: webhook calls wait until it is set
        self.gate.set()
        self.arrived = threading.Event()  # set when a webhook call arrives
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> RasaStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.gate.set()
        self._server.shutdown()
        self._server.server_close()

    def messages(self) -> list[str]:
        return [str(r.get("message")) for r in self.answered]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if standin.keep_alive else "HTTP/1.0"

            def log_message(self, *_args: Any) -> None:
                pass

            def _json(self, status: int, data: Any) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(raw)

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/health":
                    standin.health_checks += 1
                    ok = not standin.actions_down
                    self._json(200 if ok else 500, {"status": "ok" if ok else "down"})
                else:
                    self._json(200 if not standin.rasa_down else 503, "Hello from Rasa: 3.6.21")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                standin.requests.append(body)
                standin.arrived.set()
                standin.gate.wait(30)
                if standin.rasa_down:
                    self._json(503, {"error": "down"})
                    return
                standin.answered.append(body)
                self._json(200, standin.responder(body))

        return Handler
