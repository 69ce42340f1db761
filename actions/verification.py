"""Identity before disclosure (CONTRACT 6.1): the verification form and what follows it."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.turn import last_bot_response, open_turn
from bot.config import get_settings
from bot.domain.conversations import (
    VerificationOutcome,
    VerificationResult,
    check_identity,
    is_verified,
)
from bot.nlu.dates import parse_date
from bot.policy import Policy, cached_policy

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
# Intents the form's rules handle instead of taking the text as an answer (domain.yml's
# identity_answer mapping leaves out the same ones).
NOT_AN_ANSWER = frozenset(
    {"deny", "request_agent", "opt_out", "wrong_person", "bot_challenge", "ask_how_to_pay"}
)
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


# With identity.mode birth_date_then_last4, the first answer's slot holds this prefix and the
# birth date until the last 4 digits arrive (the ledger checks both together then).
BIRTH_DATE_FIRST = "birth_date:"


def _both_needed(policy: Policy) -> bool:
    return policy.identity.mode == "birth_date_then_last4"


def read_last4(text: str) -> str | None:
    """Four digits on their own ("5678", "los últimos son 5678"), not part of a date."""
    digits_only = re.sub(r"[\s\-]", "", text)
    match = _LAST4.search(text) if len(digits_only) <= 8 else None
    return match.group(1) if match and not re.search(r"[/.-]", text) else None


def read_birth_date(text: str, today: date) -> date | None:
    born = parse_date(text, today, allow_past=True)
    return born if born is not None and born < today else None


class ActionAskIdentityAnswer(Action):
    """The verification form's question, as the policy's identity mode asks it."""

    def name(self) -> str:
        return "action_ask_identity_answer"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        policy = cached_policy(get_settings().policy_file)
        both = _both_needed(policy)
        dispatcher.utter_message(
            response="utter_ask_identity_birth_date" if both else "utter_ask_identity_answer"
        )
        return []


class ValidateVerificationForm(FormValidationAction):
    def name(self) -> str:
        return "validate_verification_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        if str(tracker.get_slot("identity_answer") or "").startswith(BIRTH_DATE_FIRST):
            return [*domain_slots, "identity_last4"]  # the second question
        return domain_slots

    async def extract_identity_last4(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """The text that answers the second question (what a from_text mapping would take,
        with the same intents left to the form's rules)."""
        if tracker.get_slot("requested_slot") != "identity_last4":
            return {}
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if intent in NOT_AN_ANSWER:
            return {}
        return {"identity_last4": tracker.latest_message.get("text")}

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
            both = _both_needed(turn.policy)
            last4 = None if both else read_last4(text)
            birth_date = read_birth_date(text, turn.clock.today()) if last4 is None else None
            if birth_date is None and last4 is None:
                dispatcher.utter_message(
                    response="utter_identity_birth_date_not_understood"
                    if both
                    else "utter_identity_not_understood"
                )
                return {"identity_answer": None}
            result = check_identity(
                turn.session,
                turn.clock,
                turn.policy,
                turn.conversation,
                birth_date=birth_date,
                last4=last4,
            )
            return self._outcome(dispatcher, result, birth_date, both)

    def validate_identity_last4(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        first = str(tracker.get_slot("identity_answer") or "")
        last4 = read_last4(str(slot_value or "").strip())
        if last4 is None:
            dispatcher.utter_message(response="utter_identity_last4_not_understood")
            return {"identity_last4": None}
        with open_turn(tracker) as turn:
            if turn.conversation is None or not first.startswith(BIRTH_DATE_FIRST):
                return {"identity_answer": "locked", "identity_last4": "-"}
            result = check_identity(
                turn.session,
                turn.clock,
                turn.policy,
                turn.conversation,
                birth_date=date.fromisoformat(first.removeprefix(BIRTH_DATE_FIRST)),
                last4=last4,
            )
            answer = self._outcome(dispatcher, result, None, True)
            # Done either way: verified, locked, or back to the first question.
            return {**answer, "identity_last4": "-" if answer["identity_answer"] else None}

    @staticmethod
    def _outcome(
        dispatcher: CollectingDispatcher,
        result: VerificationResult,
        birth_date: date | None,
        both: bool,
    ) -> dict[str, Any]:
        if result.outcome is VerificationOutcome.VERIFIED:
            return {"identity_answer": "verified"}
        if result.outcome is VerificationOutcome.LOCKED:
            return {"identity_answer": "locked"}
        if result.outcome is VerificationOutcome.NEEDS_LAST4 and birth_date is not None:
            return {"identity_answer": f"{BIRTH_DATE_FIRST}{birth_date.isoformat()}"}
        dispatcher.utter_message(
            response="utter_identity_failed_start_over" if both else "utter_identity_failed",
            tries_left=result.tries_left,
        )
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
                return [
                    SlotSet("verified", True),
                    SlotSet("identity_answer", None),
                    SlotSet("identity_last4", None),
                ]
            dispatcher.utter_message(
                response="utter_identity_locked", hours=turn.policy.identity.lockout_hours
            )
            return [
                SlotSet("verified", False),
                SlotSet("identity_answer", None),
                SlotSet("identity_last4", None),
                SlotSet("pending_request", None),
            ]
