"""Identity before disclosure (CONTRACT 6.1): the verification form and what follows it."""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.turn import last_bot_response, open_turn
from bot.domain.conversations import VerificationOutcome, check_identity, is_verified
from bot.nlu.dates import parse_date

GATED_INTENTS = {
    "ask_balance",
    "ask_due_date",
    "ask_charges",
    "request_payment_code",
    "promise_to_pay",
    "ask_settlement",
    "propose_amount",
    "ask_payment_plan",
    "already_paid",
    "cannot_pay",
}
_LAST4 = re.compile(r"(?<!\d)(\d{4})(?!\d)")


class ActionRememberRequest(Action):
    """Keep the request that needs verification, to answer it right after."""

    def name(self) -> str:
        return "action_remember_request"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if intent in ("affirm", "inform") and last_bot_response(tracker) == "utter_how_to_pay":
            intent = "request_payment_code"  # "sí" or "500" to "¿te genero tu referencia?"
        return [SlotSet("pending_request", intent if intent in GATED_INTENTS else None)]


class ValidateVerificationForm(FormValidationAction):
    def name(self) -> str:
        return "validate_verification_form"

    def validate_identity_answer(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        text = str(slot_value or "").strip()
        with open_turn(tracker) as turn:
            if turn.conversation is None:
                return {"identity_answer": "locked"}
            birth_date = None
            digits_only = re.sub(r"[\s\-]", "", text)
            last4_match = _LAST4.search(text) if len(digits_only) <= 8 else None
            last4 = last4_match.group(1) if last4_match and not re.search(r"[/.-]", text) else None
            if last4 is None:
                birth_date = parse_date(text, turn.clock.today(), allow_past=True)
                if birth_date is not None and birth_date >= turn.clock.today():
                    birth_date = None
            if birth_date is None and last4 is None:
                dispatcher.utter_message(response="utter_identity_not_understood")
                return {"identity_answer": None}
            result = check_identity(
                turn.session,
                turn.clock,
                turn.policy,
                turn.conversation,
                birth_date=birth_date,
                last4=last4,
            )
            if result.outcome is VerificationOutcome.VERIFIED:
                return {"identity_answer": "verified"}
            if result.outcome is VerificationOutcome.LOCKED:
                return {"identity_answer": "locked"}
            dispatcher.utter_message(response="utter_identity_failed", tries_left=result.tries_left)
            return {"identity_answer": None}


class ActionAfterVerification(Action):
    """Set ``verified`` from the ledger; on lockout, say so and offer an agent."""

    def name(self) -> str:
        return "action_after_verification"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        with open_turn(tracker) as turn:
            ok = (
                turn.conversation is not None
                and turn.account is not None
                and is_verified(turn.conversation, turn.clock, turn.policy)
                and tracker.get_slot("identity_answer") == "verified"
            )
            if ok and turn.account is not None:
                first_name = turn.account.debtor.full_name.split()[0]
                dispatcher.utter_message(response="utter_identity_verified", first_name=first_name)
                return [SlotSet("verified", True), SlotSet("identity_answer", None)]
            dispatcher.utter_message(
                response="utter_identity_locked", hours=turn.policy.identity.lockout_hours
            )
            return [
                SlotSet("verified", False),
                SlotSet("identity_answer", None),
                SlotSet("pending_request", None),
            ]
