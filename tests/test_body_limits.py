"""Every POST route refuses an oversized body with 413 before reading it all.

Real HTTP over a raw socket to the gateway served by uvicorn (``tests/live_gateway.py``), so
what is on the wire is exactly what the test writes: a ``Content-Length`` over the limit with
no body sent at all, and a chunked body (no ``Content-Length``) one byte over the limit whose
end never comes. Either way the answer must be 413 at once. The limits are those of
:class:`bot.gateway.intake.BodyLimitMiddleware`: ``Tuning.max_body_bytes`` for the channel
webhooks, :data:`bot.gateway.intake.MAX_BODY_BYTES` for everything else.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.channels.whatsapp import SIGNATURE_HEADER, sign_body
from bot.config import SANDBOX_APP_SECRET
from bot.conversation.tuning import Tuning
from bot.gateway.intake import MAX_BODY_BYTES
from tests.conftest_gateway import envelope, rows, text
from tests.graph_stub import wait_until
from tests.live_gateway import LiveGateway, live_gateway

CHANNEL_LIMIT = Tuning().max_body_bytes
# Every POST route of the sandbox gateway (the sandbox adds its own to the normal ones).
POST_ROUTES = {
    "/webhooks/whatsapp": CHANNEL_LIMIT,
    "/webhooks/rcs": CHANNEL_LIMIT,
    "/webhooks/payments/{provider_name}": MAX_BODY_BYTES,
    "/console/login": MAX_BODY_BYTES,
    "/console/logout": MAX_BODY_BYTES,
    "/console/chats/{conversation_id}/claim": MAX_BODY_BYTES,
    "/console/chats/{conversation_id}/assign": MAX_BODY_BYTES,
    "/console/chats/{conversation_id}/return": MAX_BODY_BYTES,
    "/console/chats/{conversation_id}/close": MAX_BODY_BYTES,
    "/console/chats/{conversation_id}/reply": MAX_BODY_BYTES,
    "/console/chats/{conversation_id}/template": MAX_BODY_BYTES,
    "/console/chats/{conversation_id}/code": MAX_BODY_BYTES,
    "/console/chats/{conversation_id}/settlement": MAX_BODY_BYTES,
    "/console/chats/{conversation_id}/promise": MAX_BODY_BYTES,
    "/console/chats/{conversation_id}/verify": MAX_BODY_BYTES,
    "/console/chats/{conversation_id}/end-verification": MAX_BODY_BYTES,
    "/console/chats/{conversation_id}/opt-out": MAX_BODY_BYTES,
    "/console/chats/{conversation_id}/note": MAX_BODY_BYTES,
    "/sandbox/graph/{phone_number_id}/messages": MAX_BODY_BYTES,
    "/sandbox/rbm/v1/phones/{phone}/{resource}": MAX_BODY_BYTES,
    "/sandbox/api/send": MAX_BODY_BYTES,
    "/sandbox/api/pay": MAX_BODY_BYTES,
}
CHUNK = 16 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    with live_gateway(Path(tmp_path_factory.mktemp("body-limits"))) as gateway:
        yield gateway


def concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", template)


def _read_answer(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body


def send_raw(
    gateway: LiveGateway,
    path: str,
    head: dict[str, str],
    body: Iterator[bytes] = iter(()),
) -> tuple[int, bytes]:
    """Write a POST by hand (stopping quietly if the server hangs up) and read the status."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in head.items())]
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            for piece in body:
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before we finished writing: what we want
        return _read_answer(sock)


def chunked(total: int) -> Iterator[bytes]:
    """``total`` bytes as HTTP/1.1 chunks, without the closing zero-length chunk."""
    sent = 0
    while sent < total:
        size = min(CHUNK, total - sent)
        yield f"{size:x}\r\n".encode() + b"x" * size + b"\r\n"
        sent += size


def test_every_post_route_has_a_known_limit(served: LiveGateway) -> None:
    paths = served.app.openapi()["paths"]
    assert {path for path, operations in paths.items() if "post" in operations} == set(POST_ROUTES)


@pytest.mark.parametrize("template", sorted(POST_ROUTES))
def test_a_declared_length_over_the_limit_is_refused_without_reading_a_byte(
    served: LiveGateway, template: str
) -> None:
    limit = POST_ROUTES[template]
    head = {"Content-Type": "application/json", "Content-Length": str(limit + 1)}
    status, body = send_raw(served, concrete(template), head)  # the body never comes
    assert status == 413
    assert json.loads(body) == {"detail": "body too large"}


@pytest.mark.parametrize("template", sorted(POST_ROUTES))
def test_a_chunked_body_over_the_limit_is_refused_at_the_first_byte_too_many(
    served: LiveGateway, template: str
) -> None:
    limit = POST_ROUTES[template]
    head = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    status, _ = send_raw(served, concrete(template), head, chunked(limit + 1))  # never ends
    assert status == 413


@pytest.mark.parametrize("template", ["/console/login", "/sandbox/api/send", "/webhooks/rcs"])
def test_a_chunked_body_at_the_limit_reaches_the_route(served: LiveGateway, template: str) -> None:
    limit = POST_ROUTES[template]
    head = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    body = iter([*chunked(limit), b"0\r\n\r\n"])
    status, _ = send_raw(served, concrete(template), head, body)
    assert status not in (413, 0) and status < 500


def test_a_small_chunked_webhook_arrives_whole(served: LiveGateway) -> None:
    """The middleware reads a chunked body to count it, then hands the same bytes on."""
    raw = json.dumps(envelope([text("hola por partes")])).encode()
    head = {
        "Content-Type": "application/json",
        "Transfer-Encoding": "chunked",
        SIGNATURE_HEADER: sign_body(SANDBOX_APP_SECRET, raw),
    }
    pieces = [raw[i : i + 7] for i in range(0, len(raw), 7)]
    body = iter([*(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces), b"0\r\n\r\n"])
    status, answer = send_raw(served, "/webhooks/whatsapp", head, body)
    assert status == 200, answer
    assert json.loads(answer)["stored"] == 1
    stored = wait_until(lambda: rows(served.settings.database_url, "in"), 5, "stored")
    assert stored[-1].text == "hola por partes"
