"""Rasa 3.6 NLU component that gives entities the values CONTRACT.md §5 promises.

Put it after ``DIETClassifier`` and ``EntitySynonymMapper`` in ``config.yml``::

    - name: bot.nlu.component.SpanishEntityNormalizer

For each message it (1) rewrites the ``value`` of ``date`` (ISO ``YYYY-MM-DD``), ``amount``
(pesos: int when whole, else float), ``installments`` (int) and ``payment_method`` (``oxxo``,
``spei``, ``card``, ``bank_deposit``) entities, dropping those it cannot read; (2) adds ``date``
and ``amount`` entities DIET missed when the text holds an unmistakable one ("$1,200", "1.5k",
"mañana"), but only for a type with no entity left after (1), and never over another entity's
characters.

"Today" comes from ``bot.clock.Clock`` built per message from ``ACUERDO_NOW`` and
``ACUERDO_TIMEZONE``, so a running server honours a pinned clock. A date resolves forward (a
promise) unless the intent is ``already_paid``, the date phrase itself is past ("ayer", "hace 3
días", "el lunes pasado"), it writes out a year ("15/03/1985": returned as written), or the
message reports a past action ("ya pagué", "nací") under an intent that is not a promise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    EXTRACTOR,
    INTENT,
    INTENT_NAME_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from bot.clock import Clock, ClockError
from bot.nlu.amounts import find_amounts, parse_amount, parse_installments, parse_payment_method
from bot.nlu.dates import (
    find_dates,
    has_explicit_year,
    parse_date,
    reports_past_action,
    speaks_of_past,
)

logger = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "America/Mexico_City"
PAST_INTENTS = frozenset({"already_paid"})
# Under these a past verb elsewhere in the message ("ya pagué la mitad") does not turn the date
# of the promise into a past one.
FUTURE_INTENTS = frozenset(
    {"promise_to_pay", "propose_amount", "ask_payment_plan", "request_payment_code"}
)

EntityValue = str | int | float


@dataclass(frozen=True)
class _MessageContext:
    today: date
    text: str
    intent: str | None

    def date_allows_past(self, phrase: str) -> bool:
        """Whether ``phrase`` (a date entity of this message) may resolve to a past date."""
        if self.intent in PAST_INTENTS or speaks_of_past(phrase) or has_explicit_year(phrase):
            return True
        return self.intent not in FUTURE_INTENTS and reports_past_action(self.text)


def _date_value(phrase: str, context: _MessageContext) -> EntityValue | None:
    found = parse_date(phrase, context.today, allow_past=context.date_allows_past(phrase))
    return found.isoformat() if found else None


def _json_number(amount: Decimal) -> int | float:
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _amount_value(phrase: str, context: _MessageContext) -> EntityValue | None:
    amount = parse_amount(phrase)
    return _json_number(amount) if amount is not None else None


def _installments_value(phrase: str, context: _MessageContext) -> EntityValue | None:
    return parse_installments(phrase)


def _payment_method_value(phrase: str, context: _MessageContext) -> EntityValue | None:
    return parse_payment_method(phrase)


NORMALISERS: dict[str, Callable[[str, _MessageContext], EntityValue | None]] = {
    "date": _date_value,
    "amount": _amount_value,
    "installments": _installments_value,
    "payment_method": _payment_method_value,
}


def today_from_environment() -> date:
    """Today per ``ACUERDO_NOW``/``ACUERDO_TIMEZONE``; the real date if they cannot be read."""
    tz_name = os.environ.get("ACUERDO_TIMEZONE") or DEFAULT_TIMEZONE
    try:
        return Clock.from_setting(os.environ.get("ACUERDO_NOW") or None, tz_name).today()
    except (ClockError, KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
        logger.warning("Ignoring the clock settings (%s); using the real date.", exc)
        return Clock.from_setting(None, DEFAULT_TIMEZONE).today()


def _overlaps(start: int, end: int, entities: list[dict[str, Any]]) -> bool:
    return any(
        start < e.get(ENTITY_ATTRIBUTE_END, -1) and e.get(ENTITY_ATTRIBUTE_START, -1) < end
        for e in entities
    )


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class SpanishEntityNormalizer(GraphComponent, EntityExtractorMixin):
    """Normalises Spanish date, amount, installment and payment-method entities."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """``add_missing_entities``: also add date/amount entities DIET missed."""
        return {"add_missing_entities": True}

    @staticmethod
    def required_packages() -> list[str]:
        """The parsing libraries this component needs besides Rasa."""
        return ["dateparser", "text_to_num", "dateutil"]

    def __init__(self, config: dict[str, Any]) -> None:
        self._add_missing = bool(config.get("add_missing_entities", True))

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SpanishEntityNormalizer:
        """Creates the component (it keeps no state between messages)."""
        return cls(config)

    def process(self, messages: list[Message]) -> list[Message]:
        """Rewrites the entity values of each message and adds the ones DIET missed."""
        for message in messages:
            text = message.get(TEXT) or ""
            intent = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
            context = _MessageContext(today=today_from_environment(), text=text, intent=intent)
            entities = self._normalised(message.get(ENTITIES, []), context)
            if self._add_missing and text:
                entities += self._missed(entities, context)
            entities.sort(key=lambda e: e.get(ENTITY_ATTRIBUTE_START, -1))
            message.set(ENTITIES, entities, add_to_output=True)
        return messages

    def _normalised(
        self, entities: list[dict[str, Any]], context: _MessageContext
    ) -> list[dict[str, Any]]:
        kept: list[dict[str, Any]] = []
        for entity in entities:
            normalise = NORMALISERS.get(entity.get(ENTITY_ATTRIBUTE_TYPE, ""))
            if normalise is None:
                kept.append(entity)
                continue
            value = self._first_readable(entity, context, normalise)
            if value is None:
                logger.debug("Dropping unreadable entity %s", entity)
                continue
            kept.append(self.add_processor_name({**entity, ENTITY_ATTRIBUTE_VALUE: value}))
        return kept

    @staticmethod
    def _first_readable(
        entity: dict[str, Any],
        context: _MessageContext,
        normalise: Callable[[str, _MessageContext], EntityValue | None],
    ) -> EntityValue | None:
        """The value read from the entity's (synonym-mapped) value, else from its text span."""
        phrases = [str(entity.get(ENTITY_ATTRIBUTE_VALUE, ""))]
        start, end = entity.get(ENTITY_ATTRIBUTE_START), entity.get(ENTITY_ATTRIBUTE_END)
        if (
            isinstance(start, int)
            and isinstance(end, int)
            and 0 <= start < end <= len(context.text)
        ):
            phrases.append(context.text[start:end])
        for phrase in phrases:
            if phrase.strip() and (value := normalise(phrase, context)) is not None:
                return value
        return None

    def _missed(
        self, entities: list[dict[str, Any]], context: _MessageContext
    ) -> list[dict[str, Any]]:
        present = {e.get(ENTITY_ATTRIBUTE_TYPE) for e in entities}
        found: list[tuple[str, int, int, EntityValue]] = []
        if "amount" not in present:
            found += [
                ("amount", m.start, m.end, _json_number(m.value))
                for m in find_amounts(context.text)
            ]
        if "date" not in present:
            for mention in find_dates(context.text, context.today, allow_past=True):
                value = _date_value(context.text[mention.start : mention.end], context)
                if value is not None:
                    found.append(("date", mention.start, mention.end, value))
        added: list[dict[str, Any]] = []
        for entity_type, start, end, value in found:
            if _overlaps(start, end, entities + added):
                continue
            added.append(
                {
                    ENTITY_ATTRIBUTE_TYPE: entity_type,
                    ENTITY_ATTRIBUTE_START: start,
                    ENTITY_ATTRIBUTE_END: end,
                    ENTITY_ATTRIBUTE_VALUE: value,
                    EXTRACTOR: self.name,
                }
            )
        return added
