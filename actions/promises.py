"""Promises to pay: amount and date inside the policy, confirmed back in writing."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.payment_codes import amount_cents_from
from actions.turn import GatedAction, Turn, open_turn
from bot.domain.accounts import balance_breakdown
from bot.domain.errors import PromiseRejected
from bot.domain.money import pesos_to_cents
from bot.domain.promises import record_promise
from bot.nlu.dates import parse_date
from bot.spanish import money, spoken_date


def date_from(value: Any, text: str, today: date, *, allow_past: bool = False) -> date | None:
    """An ISO date slot value, or a date read from the raw text."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    return parse_date(text, today, allow_past=allow_past)


class ValidatePromiseForm(FormValidationAction):
    def name(self) -> str:
        return "validate_promise_form"

    def validate_promise_amount(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        cents = amount_cents_from(slot_value, tracker.latest_message.get("text") or "")
        if cents is None:
            dispatcher.utter_message(response="utter_amount_not_understood")
            return {"promise_amount": None}
        with open_turn(tracker) as turn:
            if turn.account is None:
                return {"promise_amount": None}
            total = balance_breakdown(turn.session, turn.account, turn.clock).total_cents
            minimum = min(turn.policy.promises.min_amount_cents, total)
            if not minimum <= cents <= total:
                dispatcher.utter_message(
                    response="utter_promise_amount_out_of_range",
                    minimum=money(minimum),
                    total=money(total),
                )
                return {"promise_amount": None}
        return {"promise_amount": cents / 100}

    def validate_promise_date(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        with open_turn(tracker) as turn:
            today = turn.clock.today()
            horizon = today + timedelta(days=turn.policy.promises.horizon_days)
        when = date_from(slot_value, tracker.latest_message.get("text") or "", today)
        if when is None:
            dispatcher.utter_message(response="utter_promise_date_not_understood")
            return {"promise_date": None}
        if not today <= when <= horizon:
            dispatcher.utter_message(
                response="utter_promise_date_out_of_range", horizon=spoken_date(horizon)
            )
            return {"promise_date": None}
        return {"promise_date": when.isoformat()}


class ActionRecordPromise(GatedAction):
    action_name = "action_record_promise"

    def respond(
        self, turn: Turn, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        reset = [SlotSet("promise_amount", None), SlotSet("promise_date", None)]
        try:
            promise = record_promise(
                turn.session,
                turn.clock,
                turn.policy,
                turn.verified_account,
                promised_date=date.fromisoformat(str(tracker.get_slot("promise_date"))),
                amount_cents=pesos_to_cents(f"{float(tracker.get_slot('promise_amount')):.2f}"),
                made_by="bot",
                conversation_id=turn.conversation_id,
            )
        except (PromiseRejected, ValueError, TypeError):
            dispatcher.utter_message(response="utter_promise_date_not_understood")
            return reset
        dispatcher.utter_message(
            response="utter_promise_recorded",
            amount=money(promise.amount_cents),
            date=spoken_date(promise.promised_date),
        )
        return reset
