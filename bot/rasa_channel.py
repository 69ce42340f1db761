"""Rasa's REST channel behind the internal token (loaded by Rasa from ``credentials.yml``).

Rasa's ``--auth-token`` guards its HTTP API but not its channels: anyone who reaches the
port could post a turn as any debtor's number. This channel is Rasa's own REST channel
(same URL, ``/webhooks/rest/webhook``, same body) that first requires
``Authorization: Bearer <ACUERDO_INTERNAL_TOKEN>``, checked in constant time.

Imported by the engine (``.venv-rasa``): it depends on Rasa, the standard library and the
standard-library-only check of ``bot.engine.action_server``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request

from bot.engine.action_server import bearer_matches


class InternalRestInput(RestInput):  # type: ignore[misc]
    """Rasa's REST channel that only the gateway (holder of the internal token) may use."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("ACUERDO_INTERNAL_TOKEN is not set for the Rasa server")
        self.token = token

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InternalRestInput:
        token = str(
            (credentials or {}).get("token") or os.environ.get("ACUERDO_INTERNAL_TOKEN", "")
        )
        return cls(token)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        blueprint = super().blueprint(on_new_message)

        @blueprint.middleware("request")  # type: ignore[misc]
        async def require_token(request: Request) -> Any:
            if bearer_matches(request.headers.get("authorization"), self.token):
                return None
            return response.json({"error": "unauthorized"}, status=401)

        return blueprint
