"""A local stand-in for the WhatsApp Graph API: ``POST /{phone_number_id}/messages``, and
media downloads (``GET /{media_id}`` then ``GET /media-bytes/{media_id}``).

It listens on 127.0.0.1 on a free port, records every request, answers like Meta, and can
be told to fail the next sends (429, 500, a Graph error code, or a stall longer than the
client's timeout). Read receipts (``"status": "read"``) are recorded apart and never
faulted, so tests count only real sends. Media registered with :meth:`GraphStub.add_media`
is served to the right bearer token only; every media request is recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bot.config import SANDBOX_ACCESS_TOKEN


@dataclass
class Fault:
    status: int = 500
    code: int | None = None  # Graph error code in the body
    stall: float = 0.0  # seconds to wait before answering (a timeout for the client)
    retry_after: float | None = None


@dataclass
class GraphRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    accepted_id: str | None = None  # the wamid answered, when the send was accepted


class GraphStub:
    """The recording server; use as a context manager or via the ``graph_server`` fixture."""

    def __init__(
        self,
        access_token: str = SANDBOX_ACCESS_TOKEN,
        *,
        failure_rate: float = 0.0,
        stall_seconds: float = 3.0,
        seed: int = 8,
        keep_alive: bool = False,
    ) -> None:
        self.access_token = access_token
        # HTTP/1.1 keep-alive, like graph.facebook.com (one connection per client, not one
        # per send): for the benchmarks, whose gateways are real processes. The in-process
        # tests keep HTTP/1.0, as they drive one app from several TestClients, each on its
        # own event loop, where a pooled connection of another loop cannot be reused.
        self.keep_alive = keep_alive
        # Random faults on sends (chaos tests): 429, 500 or a stall past the client's timeout,
        # in equal parts. A stalled send is answered with a 500 after the stall and is never
        # accepted: Meta never got it. (A real timeout after acceptance would be a duplicate:
        # the Cloud API has no idempotency key; README "Delivery guarantees".)
        self.failure_rate = failure_rate
        self.stall_seconds = stall_seconds
        self._random = random.Random(seed)
        self.on_accept: Callable[[GraphRequest], None] | None = None
        self.media: dict[str, tuple[bytes, str]] = {}  # media id -> (bytes, mime type)
        self.media_requests: list[GraphRequest] = []  # GET /{id} and GET /media-bytes/{id}
        self.sends: list[GraphRequest] = []  # accepted sends, in arrival order
        self.attempts: list[GraphRequest] = []  # every send attempt, faulted ones included
        self.reads: list[GraphRequest] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._counter = 0
        self._instance = uuid.uuid4().hex[:8]  # wamids are unique across stand-ins, like Meta's
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Use as ``WHATSAPP_API_BASE_URL``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GraphStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> GraphStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, count: int = 1, **fault: Any) -> None:
        """Make the next ``count`` sends fail with ``Fault(**fault)``."""
        with self._lock:
            for _ in range(count):
                self._faults.append(Fault(**fault))

    def add_media(self, media_id: str, data: bytes, mime: str = "image/png") -> None:
        """Serve ``data`` as the file of ``media_id``."""
        with self._lock:
            self.media[media_id] = (data, mime)

    def media_fetches(self, media_id: str | None = None) -> list[GraphRequest]:
        """The metadata lookups (``GET /{media_id}``), one per download."""
        return [
            r
            for r in self.media_requests
            if not r.path.startswith("/media-bytes/")
            and (media_id is None or r.path.lstrip("/") == media_id)
        ]

    def texts_to(self, wa_id: str | None = None) -> list[str]:
        """The readable content of accepted sends (text body, interactive body, caption...)."""
        return [describe(r.body) for r in self.sends if wa_id is None or r.body.get("to") == wa_id]

    def wait_for_sends(self, count: int, timeout: float = 10.0) -> list[GraphRequest]:
        wait_until(lambda: len(self.sends) >= count, timeout, f"{count} sends")
        return list(self.sends)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            if self.failure_rate and self._random.random() < self.failure_rate:
                kind = self._random.choice(("throttle", "error", "stall"))
                if kind == "throttle":
                    return Fault(status=429, code=130429, retry_after=1)
                if kind == "stall":
                    return Fault(status=500, stall=self.stall_seconds)
                return Fault(status=500)
            return None

    def _accept(self, request: GraphRequest) -> str:
        with self._lock:
            self._counter += 1
            wamid = f"wamid.stub.{self._instance}.{self._counter}"
            request.accepted_id = wamid
            self.sends.append(request)
        if self.on_accept is not None:
            self.on_accept(request)
        return wamid

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if stub.keep_alive else "HTTP/1.0"
            # Headers and body leave in separate writes: on a kept-alive connection Nagle's
            # algorithm would hold the body back for the client's delayed ACK (~40 ms).
            disable_nagle_algorithm = True

            def log_message(self, *_args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            def _answer_bytes(self, data: bytes, mime: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", mime)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                path = self.path.split("?", 1)[0]
                stub.media_requests.append(GraphRequest(path, dict(self.headers.items()), {}))
                if self.headers.get("Authorization") != f"Bearer {stub.access_token}":
                    self._answer(401, {"error": {"code": 190, "message": "Invalid token"}}, {})
                    return
                download = path.startswith("/media-bytes/")
                media_id = path.removeprefix("/media-bytes/") if download else path.lstrip("/")
                found = stub.media.get(media_id)
                if found is None:
                    error = {"code": 100, "message": "Unsupported get request"}
                    self._answer(404 if download else 400, {"error": error}, {})
                    return
                data, mime = found
                if download:
                    self._answer_bytes(data, mime)
                    return
                self._answer(
                    200,
                    {
                        "messaging_product": "whatsapp",
                        "url": f"{stub.url}/media-bytes/{media_id}",
                        "mime_type": mime,
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "file_size": len(data),
                        "id": media_id,
                    },
                    {},
                )

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = {}
                request = GraphRequest(self.path, dict(self.headers.items()), body)
                if not self.path.endswith("/messages"):
                    self._answer(404, {"error": {"code": 100, "message": "Unknown path"}}, {})
                    return
                if body.get("status") == "read":
                    stub.reads.append(request)
                    self._answer(200, {"success": True}, {})
                    return
                stub.attempts.append(request)
                fault = stub._next_fault()
                if fault is not None:
                    if fault.stall:
                        time.sleep(fault.stall)
                    headers = {}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = str(fault.retry_after)
                    error: dict[str, Any] = {"message": "stub fault", "type": "OAuthException"}
                    if fault.code is not None:
                        error["code"] = fault.code
                    with contextlib.suppress(OSError):  # the client may have given up
                        self._answer(fault.status, {"error": error}, headers)
                    return
                wamid = stub._accept(request)
                self._answer(
                    200,
                    {
                        "messaging_product": "whatsapp",
                        "contacts": [{"input": body.get("to"), "wa_id": body.get("to")}],
                        "messages": [{"id": wamid}],
                    },
                    {},
                )

        return Handler


def describe(body: dict[str, Any]) -> str:
    """What the person would read in a Graph send body."""
    kind = body.get("type")
    if kind == "text":
        return str(body["text"]["body"])
    if kind == "interactive":
        return str(body["interactive"]["body"]["text"])
    if kind == "image":
        return str(body["image"].get("caption", ""))
    if kind == "template":
        return f"[template {body['template']['name']}]"
    return json.dumps(body)


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
