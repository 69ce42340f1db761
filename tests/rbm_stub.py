"""Local stand-ins for Google's RBM API and OAuth token endpoint, and for Twilio's SMS API.

One recording HTTP server on 127.0.0.1 answers:

- ``POST /token``: Google's OAuth2 token endpoint for service accounts. It checks the signed
  JWT assertion against the service account's public key and hands out bearer tokens;
- ``POST /v1/phones/{E164}/agentMessages?messageId=…&agentId=…``: RBM sends. Only tokens it
  issued are accepted (401 otherwise); a ``messageId`` seen before is ignored as RBM does;
  a number can be declared not RCS-capable (404), and the next sends can be faulted;
- ``POST /v1/phones/{E164}/agentEvents?eventId=…``: read receipts and typing;
- ``POST /2010-04-01/Accounts/{sid}/Messages.json``: Twilio-style SMS (form body, basic auth).

It is also a pytest plugin (``pytest_plugins = ["tests.rbm_stub"]``): fixtures ``rbm_server``,
``service_account_file`` and ``rcs_settings`` (the gateway's settings with RCS and SMS on).
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt

from bot.channels.rcs_parse import SIGNATURE_HEADER, sign_data
from bot.config import Settings
from tests.graph_stub import wait_until
from tests.local_server import LocalServer

AGENT_ID = "acuerdo-test@rbm.goog"
CLIENT_TOKEN = "rbm-test-client-token"
SMS_SID = "ACtest0000000000000000000000000000"
SMS_TOKEN = "twilio-test-auth-token"
SMS_FROM = "+15005550006"


@dataclass
class Fault:
    status: int = 500
    stall: float = 0.0
    retry_after: float | None = None


@dataclass
class StubRequest:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)

    @property
    def phone(self) -> str:
        return self.path.split("/phones/", 1)[1].split("/", 1)[0] if "/phones/" in self.path else ""


class RbmStub(LocalServer):
    """The recording server; use as a context manager or via the ``rbm_server`` fixture."""

    def __init__(self, public_key_pem: bytes | None = None) -> None:
        self.public_key_pem = public_key_pem
        self.token_requests: list[StubRequest] = []
        self.sends: list[StubRequest] = []  # accepted agent messages (new message ids only)
        self.attempts: list[StubRequest] = []  # every agentMessages call
        self.duplicates: list[StubRequest] = []  # accepted again with a known message id
        self.events: list[StubRequest] = []  # agentEvents (READ, IS_TYPING)
        self.sms: list[StubRequest] = []  # accepted SMS
        self.sms_attempts: list[StubRequest] = []
        self.not_rcs_capable: set[str] = set()  # E.164 numbers answered with 404
        self.issued: set[str] = set()
        self.token_faults: deque[Fault] = deque()
        self._faults: deque[Fault] = deque()
        self._sms_faults: deque[tuple[int, int | None]] = deque()
        self._lock = threading.Lock()
        super().__init__(self._handler_class())

    @property
    def rbm_url(self) -> str:
        """Use as ``RCS_API_BASE_URL``."""
        return f"{self.url}/v1"

    @property
    def sms_url(self) -> str:
        """Use as ``SMS_API_BASE_URL``."""
        return f"{self.url}/2010-04-01"

    def fail_next(self, count: int = 1, **fault: Any) -> None:
        """Make the next ``count`` agentMessages calls fail with ``Fault(**fault)``."""
        with self._lock:
            self._faults.extend(Fault(**fault) for _ in range(count))

    def fail_next_sms(self, status: int, code: int | None = None) -> None:
        with self._lock:
            self._sms_faults.append((status, code))

    def wait_for_sends(self, count: int, timeout: float = 10.0) -> list[StubRequest]:
        wait_until(lambda: len(self.sends) >= count, timeout, f"{count} RBM sends")
        return list(self.sends)

    def wait_for_sms(self, count: int, timeout: float = 10.0) -> list[StubRequest]:
        wait_until(lambda: len(self.sms) >= count, timeout, f"{count} SMS")
        return list(self.sms)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _answer(
                self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(raw)

            def _error(self, status: int, name: str, message: str, **headers: str) -> None:
                error = {"code": status, "message": message, "status": name}
                self._answer(status, {"error": error}, headers)

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                parsed = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                content_type = self.headers.get("Content-Type", "")
                if "x-www-form-urlencoded" in content_type:
                    body: Any = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                else:
                    try:
                        body = json.loads(raw or b"{}")
                    except ValueError:
                        body = {}
                request = StubRequest(parsed.path, query, dict(self.headers.items()), body)
                if parsed.path == "/token":
                    self._token(request)
                elif parsed.path.startswith("/v1/phones/"):
                    self._rbm(request)
                elif parsed.path.startswith("/2010-04-01/Accounts/"):
                    self._sms(request)
                else:
                    self._error(404, "NOT_FOUND", "unknown path")

            def _token(self, request: StubRequest) -> None:
                stub.token_requests.append(request)
                fault = stub.token_faults.popleft() if stub.token_faults else None
                if fault is not None:
                    self._answer(fault.status, {"error": "invalid_grant", "error_description": "x"})
                    return
                body = request.body
                if body.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
                    self._answer(400, {"error": "unsupported_grant_type"})
                    return
                try:
                    claims = jwt.decode(
                        body.get("assertion", ""),
                        certs=stub.public_key_pem,
                        verify=stub.public_key_pem is not None,
                    )
                except ValueError:
                    self._answer(400, {"error": "invalid_grant", "error_description": "bad jwt"})
                    return
                if "rcsbusinessmessaging" not in str(claims.get("scope")):
                    self._answer(400, {"error": "invalid_scope"})
                    return
                token = f"rbm-access-{uuid.uuid4().hex}"
                stub.issued.add(token)
                self._answer(
                    200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
                )

            def _rbm(self, request: StubRequest) -> None:
                bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
                if bearer not in stub.issued:
                    self._error(401, "UNAUTHENTICATED", "invalid token")
                    return
                if request.path.endswith("/agentEvents"):
                    stub.events.append(request)
                    self._answer(
                        200, {"name": request.path, "eventType": request.body.get("eventType")}
                    )
                    return
                if not request.path.endswith("/agentMessages"):
                    self._error(404, "NOT_FOUND", "unknown path")
                    return
                stub.attempts.append(request)
                with stub._lock:
                    fault = stub._faults.popleft() if stub._faults else None
                if fault is not None:
                    if fault.stall:
                        time.sleep(fault.stall)
                    headers = {}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = str(fault.retry_after)
                    with contextlib.suppress(OSError):
                        self._error(fault.status, "STUB_FAULT", "stub fault", **headers)
                    return
                try:
                    uuid.UUID(request.query.get("messageId", ""))
                except ValueError:
                    self._error(400, "INVALID_ARGUMENT", "messageId must be a UUID")
                    return
                if request.phone in stub.not_rcs_capable:
                    self._error(404, "NOT_FOUND", "Requested entity was not found.")
                    return
                with stub._lock:
                    known = {s.query["messageId"] for s in stub.sends}
                    if request.query["messageId"] in known:
                        stub.duplicates.append(request)
                    else:
                        stub.sends.append(request)
                message_id = request.query["messageId"]
                self._answer(
                    200,
                    {
                        "name": f"phones/{request.phone}/agentMessages/{message_id}",
                        "sendTime": "2026-11-23T18:00:00.000000Z",
                        "contentMessage": request.body.get("contentMessage"),
                    },
                )

            def _sms(self, request: StubRequest) -> None:
                sid = request.path.split("/Accounts/", 1)[1].split("/", 1)[0]
                expected = "Basic " + base64.b64encode(f"{sid}:{SMS_TOKEN}".encode()).decode()
                if sid != SMS_SID or request.headers.get("Authorization") != expected:
                    self._answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
                    return
                stub.sms_attempts.append(request)
                with stub._lock:
                    fault = stub._sms_faults.popleft() if stub._sms_faults else None
                if fault is not None:
                    status, code = fault
                    self._answer(status, {"code": code, "message": "stub fault", "status": status})
                    return
                stub.sms.append(request)
                self._answer(201, {"sid": f"SM{uuid.uuid4().hex}", "status": "queued"})

        return Handler


# -- building what RBM sends us ------------------------------------------------------------
def push(data: dict[str, Any], *, pubsub_id: str | None = None) -> bytes:
    """A Pub/Sub push body carrying ``data`` (a UserMessage / UserEvent / server event)."""
    encoded = base64.b64encode(json.dumps(data).encode()).decode()
    envelope = {
        "message": {
            "attributes": {"message_type": "message"},
            "data": encoded,
            "messageId": pubsub_id or str(int(time.time_ns())),
            "publishTime": "2026-11-23T18:00:00.123Z",
        },
        "subscription": "projects/rbm-test/subscriptions/rbm-agent-sub",
    }
    return json.dumps(envelope).encode()


def signed_headers(raw: bytes, token: str = CLIENT_TOKEN) -> dict[str, str]:
    """The headers RBM sends with ``raw`` (signature over the decoded data)."""
    data = base64.b64decode(json.loads(raw)["message"]["data"])
    return {"Content-Type": "application/json", SIGNATURE_HEADER: sign_data(token, data)}


_counter = iter(range(1, 10**9))


def user_message(phone: str, **content: Any) -> dict[str, Any]:
    """A UserMessage from ``phone`` with ``content`` (text=…, suggestionResponse=…, …)."""
    n = next(_counter)
    return {
        "senderPhoneNumber": phone,
        "messageId": f"MsTest{n:08d}{uuid.uuid4().hex[:8]}",
        "sendTime": f"2026-11-23T18:00:{n % 60:02d}.123456789Z",
        "agentId": AGENT_ID,
        **content,
    }


def user_event(phone: str, event_type: str, message_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "senderPhoneNumber": phone,
        "eventType": event_type,
        "eventId": f"MxEvent{uuid.uuid4().hex[:12]}",
        "sendTime": "2026-11-23T18:01:00.5Z",
        "agentId": AGENT_ID,
    }
    if message_id is not None:
        data["messageId"] = message_id
    return data


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def service_account_key() -> tuple[bytes, bytes]:
    """(private key PEM, public key PEM) of a throw-away service account."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@pytest.fixture
def rbm_server(service_account_key: tuple[bytes, bytes]) -> Iterator[RbmStub]:
    with RbmStub(public_key_pem=service_account_key[1]) as stub:
        yield stub


@pytest.fixture
def service_account_file(
    tmp_path: Path, rbm_server: RbmStub, service_account_key: tuple[bytes, bytes]
) -> Path:
    """A service-account key file whose ``token_uri`` is the stand-in's token endpoint."""
    path = tmp_path / "rbm-service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "rbm-test",
                "private_key_id": "test-key-1",
                "private_key": service_account_key[0].decode(),
                "client_email": "acuerdo-rbm@rbm-test.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": f"{rbm_server.url}/token",
            }
        )
    )
    return path


@pytest.fixture
def rcs_settings(
    gateway_settings: Settings, rbm_server: RbmStub, service_account_file: Path
) -> Settings:
    """The gateway's test settings with RCS (and SMS) pointed at the stand-in."""
    return gateway_settings.model_copy(
        update={
            "rcs_agent_id": AGENT_ID,
            "rcs_client_token": CLIENT_TOKEN,
            "rcs_service_account_file": str(service_account_file),
            "rcs_api_base_url": rbm_server.rbm_url,
            "sms_api_base_url": rbm_server.sms_url,
            "sms_account_sid": SMS_SID,
            "sms_auth_token": SMS_TOKEN,
            "sms_from": SMS_FROM,
        }
    )
