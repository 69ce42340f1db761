"""httpx's client over aiohttp's pool (bot/outbound_http.py), against real local servers.

The callers tell a timeout (the request may have run: not repeated elsewhere) from a refused
or cut connection (it did not, or died with its server); those must come out as the httpx
exceptions they catch.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from bot.gateway.background_loop import BackgroundLoop
from bot.outbound_http import PooledTransport, async_client
from tests.graph_stub import GraphStub

TIMEOUT = httpx.Timeout(5.0, connect=2.0)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0
    stall = threading.Event()  # set: stall every request (never answer)

    def get_request(self) -> tuple[socket.socket, Any]:
        self.connections += 1
        return super().get_request()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *_args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/stall":
            self.server.stall.wait(10)
            return
        if self.path == "/cut":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"partial":')
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        echo = {
            "path": self.path,
            "body": json.loads(body or b"null"),
            "auth": self.headers["Authorization"],
        }
        raw = json.dumps(echo).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Retry-After", "3")
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture()
def server() -> Iterator[_Server]:
    instance = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=instance.serve_forever, daemon=True)
    thread.start()
    yield instance
    instance.stall.set()
    instance.shutdown()
    instance.server_close()


def _url(server: _Server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


async def test_requests_and_answers_travel_whole_on_one_kept_alive_connection(
    server: _Server,
) -> None:
    client = async_client(timeout=TIMEOUT, headers={"Authorization": "Bearer token-1"})
    try:
        for n in range(20):
            response = await client.post(_url(server, f"/v1/{n}"), json={"n": n, "text": "ñ"})
            assert response.status_code == 201
            assert response.json() == {
                "path": f"/v1/{n}",
                "body": {"n": n, "text": "ñ"},
                "auth": "Bearer token-1",
            }
            assert response.headers["retry-after"] == "3"
    finally:
        await client.aclose()
    assert server.connections == 1


async def test_a_refused_connection_is_a_connect_error_not_a_timeout() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    client = async_client(timeout=TIMEOUT)
    try:
        with pytest.raises(httpx.ConnectError) as raised:
            await client.post(f"http://127.0.0.1:{port}/", json={})
        assert not isinstance(raised.value, httpx.TimeoutException)
    finally:
        await client.aclose()


async def test_a_server_that_does_not_answer_is_a_read_timeout(server: _Server) -> None:
    client = async_client(timeout=httpx.Timeout(0.5, connect=2.0))
    try:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(_url(server, "/stall"), json={})
    finally:
        server.stall.set()
        await client.aclose()


async def test_an_answer_cut_short_is_a_transport_error_not_a_timeout(server: _Server) -> None:
    client = async_client(timeout=TIMEOUT)
    try:
        with pytest.raises(httpx.TransportError) as raised:
            await client.post(_url(server, "/cut"), json={})
        assert not isinstance(raised.value, httpx.TimeoutException)
    finally:
        await client.aclose()


def test_one_client_serves_one_event_loop_after_another() -> None:
    graph = GraphStub(keep_alive=True).start()
    client = async_client(
        timeout=TIMEOUT, headers={"Authorization": f"Bearer {graph.access_token}"}
    )

    async def send(n: int) -> str:
        response = await client.post(
            f"{graph.url}/123/messages", json={"to": "5215512345678", "type": "text", "n": n}
        )
        return str(response.json()["messages"][0]["id"])

    try:
        first = asyncio.run(send(1))  # (tests drive one app from several loops)
        second = asyncio.run(send(2))
        asyncio.run(client.aclose())
    finally:
        graph.stop()
    assert first != second
    assert [r.body["n"] for r in graph.sends] == [1, 2]


async def test_two_loops_at_once_keep_one_connection_each_and_close_together(
    server: _Server,
) -> None:
    """The gateway's routes and workers share clients from two loops (two threads)."""
    client = async_client(timeout=TIMEOUT, headers={"Authorization": "Bearer token-1"})
    workers = BackgroundLoop("test-workers", threads=1)
    workers.start()

    async def post(n: int) -> int:
        response = await client.post(_url(server, f"/v1/{n}"), json={"n": n})
        return int(response.json()["body"]["n"])

    try:
        answered = []
        for n in range(10):  # alternating: each loop reuses its own kept-alive connection
            answered.append(await post(n))
            answered.append(await workers.run(post(100 + n)))
        assert answered == [x for n in range(10) for x in (n, 100 + n)]
        assert server.connections == 2
    finally:
        await client.aclose()  # closes the workers' loop's pool on that loop too
        await workers.stop()
    with pytest.raises(RuntimeError, match="closed"):
        await post(1)


async def test_a_streamed_body_arrives_in_pieces_and_whole() -> None:
    graph = GraphStub(keep_alive=True).start()
    payload = bytes(range(256)) * 2048  # half a megabyte
    graph.add_media("media-1", payload, "application/pdf")
    client = httpx.AsyncClient(
        timeout=TIMEOUT,
        headers={"Authorization": f"Bearer {graph.access_token}"},
        transport=PooledTransport(),
    )
    try:
        async with client.stream("GET", f"{graph.url}/media-bytes/media-1") as response:
            pieces = [piece async for piece in response.aiter_bytes()]
    finally:
        await client.aclose()
        graph.stop()
    assert len(pieces) > 1
    assert b"".join(pieces) == payload
