"""Outbound HTTP for the gateway's hot path: httpx's API over aiohttp's connection pool.

Every message costs the gateway about four outbound requests (the Rasa turn, the read
receipt, a send per bubble). httpx's own pool (httpcore) spent 1.3-2.4 ms of CPU on each
against a keep-alive server: it walks every pooled connection, polling its socket, on each
request. aiohttp's pool spends about 0.35 ms; httpx's client over it about 0.7 ms
(``docs/performance.md``, "Outbound HTTP"). So the adapters keep httpx's client, its
timeouts, its responses and its exceptions, and :class:`PooledTransport` carries the bytes.

aiohttp errors come out as the httpx exceptions the callers tell apart: a timeout (the
request may have run: do not repeat it elsewhere) from a refused or cut connection (it did
not, or died with its server).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping

import aiohttp
import httpx
from multidict import CIMultiDict

# Idle keep-alive connections are closed after this many seconds (httpx's default is 5;
# Graph and Rasa keep theirs longer, and a reused connection is the cheap path).
KEEPALIVE_SECONDS = 30.0
MAX_CONNECTIONS = 100
STREAM_CHUNK = 64 * 1024


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except (aiohttp.SocketTimeoutError, asyncio.TimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:  # refused, no route, DNS
        raise httpx.ConnectError(str(exc), request=request) from exc
    except aiohttp.ServerDisconnectedError as exc:  # closed without (all of) an answer
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except (aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:  # cut, reset
        raise httpx.ReadError(str(exc), request=request) from exc
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        raise httpx.UnsupportedProtocol(str(exc), request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx.TransportError(str(exc), request=request) from exc


class _Body(httpx.AsyncByteStream):
    """The response body as aiohttp reads it, released when httpx closes the response."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            async for chunk in self._response.content.iter_chunked(STREAM_CHUNK):
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


class PooledTransport(httpx.AsyncBaseTransport):
    """An httpx transport on one aiohttp session per event loop (each made on first use).

    The gateway's routes and its workers run on two loops (``bot/gateway/background_loop.py``)
    and share the adapters' clients; a socket belongs to the loop that opened it.
    """

    def __init__(self, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self._max_connections = max_connections
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._lock = threading.Lock()

    def _session_for_this_loop(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is not None and not session.closed:
            return session
        with self._lock:
            for other in [other for other in self._sessions if other.is_closed()]:
                # Its loop is gone (tests drive one app from several in turn): nothing can
                # close its sockets any more; let them go with it.
                self._sessions.pop(other).detach()
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=KEEPALIVE_SECONDS
            )
            # httpx decodes Content-Encoding itself. Proxies come from the environment, as
            # with httpx; aiohttp then reads it (and ~/.netrc) on every request, which
            # doubled the cost of one (measured), so only when a proxy is set at all.
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                trust_env=bool(urllib.request.getproxies()),
            )
            self._sessions[loop] = session
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: Mapping[str, float | None] = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("pool"),
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        headers = CIMultiDict(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw
        )
        body = await request.aread()
        with _as_httpx_errors(request):
            response = await self._session_for_this_loop().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            )
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        """Close every loop's pool: this loop's here, a running loop's on that loop."""
        with self._lock:
            sessions, self._sessions = self._sessions, {}
        current = asyncio.get_running_loop()
        for loop, session in sessions.items():
            if session.closed:
                continue
            if loop is current:
                await session.close()
            elif loop.is_running():
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(session.close(), loop))
            else:
                session.detach()


def async_client(
    *,
    timeout: httpx.Timeout,
    headers: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> httpx.AsyncClient:
    """An httpx client on :class:`PooledTransport` (what every outbound call uses)."""
    return httpx.AsyncClient(
        timeout=timeout, headers=headers, auth=auth, transport=PooledTransport()
    )
