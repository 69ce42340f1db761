"""The action server (rasa-sdk) behind a shared secret, on loopback unless told otherwise.

``python -m rasa_sdk`` listens on every interface and runs any tracker it is sent: whoever
reaches its port can ask for a debtor's balance as that debtor. This entry point serves the
same actions, but every call except ``GET /health`` must carry
``Authorization: Bearer <ACUERDO_INTERNAL_TOKEN>`` (Rasa sends it from ``endpoints.yml``),
checked in constant time; anything else gets a 401 before an action runs.

    python -m bot.engine.action_server --port 5055 [--host 0.0.0.0]
"""

from __future__ import annotations

import argparse
import hmac
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

OPEN_PATHS = frozenset({"/health"})  # says only "ok": the gateway's readiness probe


def bearer_matches(header: str | None, token: str) -> bool:
    """True when ``header`` is ``Bearer <token>`` (constant-time comparison)."""
    if not header or not token:
        return False
    scheme, _, provided = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(provided.strip().encode(), token.encode())


def token_guard(token: str) -> Callable[[Any], Awaitable[Any]]:
    """A Sanic request middleware that answers 401 to calls without the shared secret."""
    from sanic import response

    async def require_token(request: Any) -> Any:
        if request.path in OPEN_PATHS:
            return None
        if bearer_matches(request.headers.get("authorization"), token):
            return None
        return response.json({"error": "unauthorized"}, status=401)

    return require_token


def create_app(token: str, actions_package: str = "actions") -> Any:
    """The rasa-sdk app serving ``actions_package``, guarded by ``token``."""
    from rasa_sdk.endpoint import create_app as create_sdk_app

    if not token:
        raise ValueError("the action server needs ACUERDO_INTERNAL_TOKEN")
    app = create_sdk_app(actions_package, cors_origins=None)
    app.register_middleware(token_guard(token), "request")
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: loopback)")
    parser.add_argument("--actions", default="actions")
    args = parser.parse_args(argv)

    from rasa_sdk import utils

    from bot.config import SettingsError, load_settings

    try:
        token = load_settings().resolved_internal_token()
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    utils.configure_colored_logging("INFO")
    logging.getLogger("matplotlib").setLevel(logging.WARN)
    utils.update_sanic_log_level()
    app = create_app(token, args.actions)
    logging.getLogger(__name__).info(
        "Action server on http://%s:%s (internal token required)", args.host, args.port
    )
    app.run(args.host, args.port, workers=utils.number_of_sanic_workers())
    return 0


def command(python: str, port: int, host: str = "127.0.0.1") -> list[str]:
    """The command line that starts the guarded action server."""
    return [python, "-m", "bot.engine.action_server", "--port", str(port), "--host", host]


if __name__ == "__main__":
    raise SystemExit(main())
