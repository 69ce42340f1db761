"""OAuth2 access tokens for the RBM API, from a Google service-account key (``google-auth``).

The token endpoint is the ``token_uri`` of the key file, so a test (or a proxy) can point it
at a local server. Tokens are cached and refreshed shortly before they expire; the refresh
runs in a worker thread because ``google-auth`` speaks ``requests``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Protocol

import google.auth.exceptions
import google.auth.transport.requests
from google.oauth2 import service_account

from bot.channels.base import SendError, SendOutcome

RBM_SCOPE = "https://www.googleapis.com/auth/rcsbusinessmessaging"


class TokenProvider(Protocol):
    """Bearer tokens for the RBM API."""

    async def token(self) -> str:
        """A valid access token, or :class:`SendError` when none can be had."""
        ...

    def invalidate(self) -> None:
        """Forget the cached token (the API refused it)."""
        ...


class StaticToken:
    """A fixed token (the sandbox's built-in RBM sink)."""

    def __init__(self, value: str) -> None:
        self._value = value

    async def token(self) -> str:
        return self._value

    def invalidate(self) -> None:
        pass


class _TimedRequest(google.auth.transport.requests.Request):
    """``google-auth``'s requests transport with our timeout instead of its 120 s."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def __call__(  # type: ignore[override]
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        return super().__call__(url, method, body, headers, timeout=self._timeout, **kwargs)


class ServiceAccountTokens:
    """Tokens of an RBM service account (scope ``rcsbusinessmessaging``)."""

    def __init__(self, key_file: str, *, timeout: float = 10.0) -> None:
        # Raises OSError / ValueError for a missing or malformed key file: a start-up error.
        self._credentials: Any = service_account.Credentials.from_service_account_file(
            key_file, scopes=[RBM_SCOPE]
        )
        self._request = _TimedRequest(timeout)
        self._lock = threading.Lock()

    def _refresh_if_needed(self) -> str:
        with self._lock:  # one refresh at a time; the others reuse its token
            if not self._credentials.valid:
                self._credentials.refresh(self._request)
            return str(self._credentials.token)

    async def token(self) -> str:
        try:
            return await asyncio.to_thread(self._refresh_if_needed)
        except google.auth.exceptions.RefreshError as exc:
            if getattr(exc, "retryable", False):
                raise SendError(SendOutcome.RETRY, "token_unavailable", str(exc)[:200]) from None
            # The token endpoint refuses our key: no RBM send can succeed.
            raise SendError(SendOutcome.HALT, "token_refused", str(exc)[:200]) from None
        except google.auth.exceptions.TransportError as exc:
            raise SendError(SendOutcome.RETRY, "token_unavailable", type(exc).__name__) from None

    def invalidate(self) -> None:
        with self._lock:
            self._credentials.token = None
