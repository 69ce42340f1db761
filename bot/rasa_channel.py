"""Rasa's REST channel behind the internal token (loaded by Rasa from ``credentials.yml``).

Rasa's ``--auth-token`` guards its HTTP API but not its channels: anyone who reaches the
port could post a turn as any debtor's number. This channel is Rasa's own REST channel
(same URL, ``/webhooks/rest/webhook``, same body) that first requires
``Authorization: Bearer <ACUERDO_INTERNAL_TOKEN>``, checked in constant time.

It also spares a tapped option the NLU graph (issue 14). A reply button, a list row or a
menu number reaches Rasa as the payload we wrote (``/ask_balance``,
``/inform{"payment_method": "oxxo"}``). Rasa 3.6 runs the whole graph for it (tokenizer,
featurizers, DIET, the fallback classifier: ~13 ms of CPU) only for its last component,
``RegexMessageHandler``, to replace whatever DIET said with the payload. The channel hands
Rasa that same answer up front, through ``UserMessage.parse_data``, which Rasa's processor
uses instead of parsing; it is built by the very function ``RegexMessageHandler`` calls,
so the intent, entities and ranking are the ones the graph gives (tested for every payload
of the domain). Typed text, and a ``/`` text that names no intent of the domain, go to the
graph as before.

Imported by the engine (``.venv-rasa``): it depends on Rasa, the standard library and the
standard-library-only check of ``bot.engine.action_server``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from rasa.shared.constants import INTENT_MESSAGE_PREFIX
from rasa.shared.core.domain import Domain
from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader
from rasa.shared.nlu.constants import (
    ENTITIES,
    INTENT,
    INTENT_NAME_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message as NluMessage  # not our ledger row
from sanic import Blueprint, Sanic, response
from sanic.request import Request

from bot.engine.action_server import bearer_matches

# The name Rasa's graph gives the component that unpacks payloads (it marks the entities).
PAYLOAD_EXTRACTOR = "RegexMessageHandler"


def payload_parse(text: str, domain: Domain) -> dict[str, Any] | None:
    """Rasa's parse of a payload naming an intent of ``domain``; None for anything else."""
    if not text.strip().startswith(INTENT_MESSAGE_PREFIX):
        return None
    unpacked = YAMLStoryReader.unpack_regex_message(
        NluMessage({TEXT: text}), domain, entity_extractor_name=PAYLOAD_EXTRACTOR
    )
    if not (unpacked.get(INTENT) or {}).get(INTENT_NAME_KEY):
        return None  # not a payload of ours: the graph reads it as text
    # The shape of MessageProcessor._parse_message_with_graph's answer.
    parse_data: dict[str, Any] = {
        TEXT: "",
        INTENT: {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0},
        ENTITIES: [],
    }
    parse_data.update(unpacked.as_dict(only_output_properties=True))
    return parse_data


class InternalRestInput(RestInput):  # type: ignore[misc]
    """Rasa's REST channel that only the gateway (holder of the internal token) may use."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("ACUERDO_INTERNAL_TOKEN is not set for the Rasa server")
        self.token = token
        self._app: Sanic | None = None

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InternalRestInput:
        token = str(
            (credentials or {}).get("token") or os.environ.get("ACUERDO_INTERNAL_TOKEN", "")
        )
        return cls(token)

    def _domain(self) -> Domain | None:
        """The loaded model's domain (None before a model is loaded)."""
        agent = getattr(self._app.ctx, "agent", None) if self._app is not None else None
        processor = getattr(agent, "processor", None)
        return getattr(processor, "domain", None)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        async def with_payloads_parsed(message: UserMessage) -> None:
            domain = self._domain()
            if message.parse_data is None and domain is not None:
                message.parse_data = payload_parse(message.text or "", domain)
            await on_new_message(message)

        blueprint = super().blueprint(with_payloads_parsed)

        @blueprint.middleware("request")  # type: ignore[misc]
        async def require_token(request: Request) -> Any:
            if bearer_matches(request.headers.get("authorization"), self.token):
                self._app = request.app
                return None
            return response.json({"error": "unauthorized"}, status=401)

        return blueprint
