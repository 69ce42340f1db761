"""Handoff, disputes, opt-outs, wrong numbers, hardship, insults and misunderstandings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.payment_codes import amount_cents_from
from actions.promises import date_from
from actions.turn import GatedAction, Turn, TurnAction, open_turn
from bot.domain.accounts import balance_breakdown
from bot.domain.agent_hours import agents_available, next_agent_opening
from bot.domain.audit import record_audit
from bot.domain.conversations import (
    flag_wrong_number,
    open_dispute,
    opt_out,
    request_handoff,
)
from bot.domain.negotiation import max_plan_installments
from bot.domain.payments import find_payment_near
from bot.spanish import money, spoken_date, spoken_datetime


def handoff_priority(turn: Turn) -> int:
    """Bigger and older debts first: 0-100."""
    if turn.account is None:
        return 0
    breakdown = balance_breakdown(turn.session, turn.account, turn.clock)
    return min(100, breakdown.days_past_due // 30 * 10 + breakdown.total_cents // 1_000_000)


def hand_off(
    turn: Turn, dispatcher: CollectingDispatcher, *, reason: str, announce: bool = True
) -> None:
    """Queue the chat for an agent; tell the debtor when someone will answer."""
    if turn.conversation is None:
        return
    request_handoff(
        turn.session, turn.clock, turn.conversation, reason=reason, priority=handoff_priority(turn)
    )
    if not announce:
        return
    now = turn.clock.now()
    if agents_available(turn.policy, now):
        dispatcher.utter_message(response="utter_handoff")
    else:
        hours = turn.policy.contact.agent_hours
        dispatcher.utter_message(
            response="utter_handoff_after_hours",
            start=f"{hours.start:%H:%M}",
            end=f"{hours.end:%H:%M}",
            next_open=spoken_datetime(next_agent_opening(turn.policy, now)),
        )


class ActionHandoff(TurnAction):
    action_name = "action_handoff"

    def respond(
        self, turn: Turn, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        hand_off(turn, dispatcher, reason="debtor_request")
        return []


class ActionOpenDispute(TurnAction):
    """Record the dispute, stop collection messages and hand to an agent (no disclosure)."""

    action_name = "action_open_dispute"

    def respond(
        self, turn: Turn, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        if turn.account is not None:
            open_dispute(
                turn.session,
                turn.clock,
                turn.account,
                reason=tracker.latest_message.get("text") or "",
                conversation_id=turn.conversation_id,
            )
        dispatcher.utter_message(response="utter_dispute_recorded")
        hand_off(turn, dispatcher, reason="dispute")
        return []


class ActionOptOut(TurnAction):
    action_name = "action_opt_out"

    def respond(
        self, turn: Turn, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        if turn.conversation is not None:  # the sender's channel and E.164 number
            opt_out(
                turn.session,
                turn.clock,
                turn.conversation.channel,
                turn.conversation.address,
                conversation_id=turn.conversation_id,
            )
        dispatcher.utter_message(response="utter_opt_out_confirmed")
        return []


class ActionWrongPerson(TurnAction):
    action_name = "action_wrong_person"

    def respond(
        self, turn: Turn, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        if turn.conversation is not None:
            flag_wrong_number(
                turn.session,
                turn.clock,
                turn.conversation.channel,
                turn.conversation.address,
                conversation_id=turn.conversation_id,
            )
        dispatcher.utter_message(response="utter_wrong_person")
        return [SlotSet("verified", False)]


class ActionHardshipOptions(GatedAction):
    action_name = "action_hardship_options"

    def respond(
        self, turn: Turn, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        if tracker.get_slot("pending_request") != "cannot_pay":
            dispatcher.utter_message(response="utter_hardship_empathy")
        top = max_plan_installments(turn.session, turn.clock, turn.policy, turn.verified_account)
        record_audit(
            turn.session,
            turn.clock,
            actor="bot",
            action="hardship_reported",
            account_id=turn.verified_account.id,
            conversation_id=turn.conversation_id,
        )
        if top is None:
            dispatcher.utter_message(response="utter_no_plan")
        else:
            dispatcher.utter_message(response="utter_hardship_options", max_installments=top)
        return [SlotSet("pending_request", None)]


class ValidateAlreadyPaidForm(FormValidationAction):
    def name(self) -> str:
        return "validate_already_paid_form"

    def validate_paid_date(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        with open_turn(tracker) as turn:
            today = turn.clock.today()
        text = tracker.latest_message.get("text") or ""
        when = date_from(slot_value, text, today, allow_past=True)
        if when is not None and when > today:
            when = date_from(None, text, today, allow_past=True)
        if when is None or when > today or when < today - timedelta(days=365):
            dispatcher.utter_message(response="utter_promise_date_not_understood")
            return {"paid_date": None}
        return {"paid_date": when.isoformat()}

    def validate_paid_amount(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        cents = amount_cents_from(slot_value, tracker.latest_message.get("text") or "")
        if cents is None:
            dispatcher.utter_message(response="utter_amount_not_understood")
            return {"paid_amount": None}
        return {"paid_amount": cents / 100}


class ActionCheckReportedPayment(GatedAction):
    """Look for the payment the debtor reports; if it isn't there, invite the receipt."""

    action_name = "action_check_reported_payment"

    def respond(
        self, turn: Turn, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        from datetime import date

        reset = [SlotSet("paid_date", None), SlotSet("paid_amount", None)]
        when = date.fromisoformat(str(tracker.get_slot("paid_date")))
        cents = int(round(float(tracker.get_slot("paid_amount")) * 100))
        found = find_payment_near(turn.session, turn.verified_account.id, cents, when, turn.clock)
        record_audit(
            turn.session,
            turn.clock,
            actor="debtor",
            action="payment_reported",
            account_id=turn.verified_account.id,
            conversation_id=turn.conversation_id,
            paid_on=when.isoformat(),
            amount_cents=cents,
            found=found is not None,
        )
        fields = {"amount": money(cents), "date": spoken_date(when)}
        if found is not None:
            total = balance_breakdown(turn.session, turn.verified_account, turn.clock).total_cents
            dispatcher.utter_message(response="utter_payment_found", total=money(total), **fields)
        else:
            dispatcher.utter_message(response="utter_payment_not_found", **fields)
        return reset


class ActionHandleInsult(Action):
    """Stay calm: one warning, then a human takes over."""

    def name(self) -> str:
        return "action_handle_insult"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        count = int(tracker.get_slot("insult_count") or 0) + 1
        with open_turn(tracker) as turn:
            if count <= turn.policy.escalation.insult_warnings:
                dispatcher.utter_message(response="utter_insult_warning")
            else:
                dispatcher.utter_message(response="utter_insult_handoff")
                hand_off(turn, dispatcher, reason="insults", announce=False)
        return [SlotSet("insult_count", float(count))]


def consecutive_fallbacks(tracker: Tracker) -> int:
    """How many of the debtor's latest messages in a row were not understood."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent != "nlu_fallback":
            break
        count += 1
    return count


class ActionFallback(Action):
    """Two stages: ask to rephrase, then offer an agent."""

    def name(self) -> str:
        return "action_fallback"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        with open_turn(tracker) as turn:
            limit = turn.policy.escalation.fallback_turns
            if consecutive_fallbacks(tracker) >= limit:
                dispatcher.utter_message(response="utter_offer_agent")
            else:
                dispatcher.utter_message(response="utter_rephrase")
        return []
