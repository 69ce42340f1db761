"""What the debtor owes, when it fell due and why: disclosures, each one audited."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.spanish import days_past_due_text, money, spoken_date
from actions.turn import Turn, open_turn, verified
from bot.domain.accounts import BalanceBreakdown, balance_breakdown
from bot.domain.audit import record_audit


def balance_fields(turn: Turn, breakdown: BalanceBreakdown) -> dict[str, Any]:
    """The placeholders every balance-related response uses."""
    assert turn.account is not None
    digits = "".join(ch for ch in turn.account.external_id if ch.isdigit())
    return {
        "product": turn.account.product,
        "creditor": turn.account.creditor,
        "last4": digits[-4:] or turn.account.external_id[-4:],
        "total": money(breakdown.total_cents),
        "principal": money(breakdown.principal_cents),
        "interest": money(breakdown.interest_cents),
        "fees": money(breakdown.fees_cents),
        "calculated_on": spoken_date(breakdown.calculated_on),
        "due_date": spoken_date(breakdown.due_date),
        "days_past_due_text": days_past_due_text(breakdown.days_past_due),
    }


def refuse_unverified(tracker: Tracker) -> list[EventType]:
    """Defence in depth: a disclosure reached without verification starts verification."""
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    return [SlotSet("pending_request", intent), FollowupAction("verification_form")]


def audit_disclosure(turn: Turn, what: str, breakdown: BalanceBreakdown) -> None:
    assert turn.account is not None
    record_audit(
        turn.session,
        turn.clock,
        actor="bot",
        action="disclosure",
        account_id=turn.account.id,
        conversation_id=turn.conversation_id,
        what=what,
        total_cents=breakdown.total_cents,
        calculated_on=breakdown.calculated_on.isoformat(),
    )


class ActionTellBalance(Action):
    def name(self) -> str:
        return "action_tell_balance"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        with open_turn(tracker) as turn:
            if not verified(turn, tracker):
                return refuse_unverified(tracker)
            assert turn.account is not None
            breakdown = balance_breakdown(turn.session, turn.account, turn.clock)
            fields = balance_fields(turn, breakdown)
            if breakdown.total_cents == 0:
                dispatcher.utter_message(response="utter_balance_zero", **fields)
            else:
                dispatcher.utter_message(response="utter_balance", **fields)
            audit_disclosure(turn, "balance", breakdown)
        return []


class ActionTellDueDate(Action):
    def name(self) -> str:
        return "action_tell_due_date"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        with open_turn(tracker) as turn:
            if not verified(turn, tracker):
                return refuse_unverified(tracker)
            assert turn.account is not None
            breakdown = balance_breakdown(turn.session, turn.account, turn.clock)
            fields = balance_fields(turn, breakdown)
            future = breakdown.due_date > turn.clock.today()
            dispatcher.utter_message(
                response="utter_due_date_future" if future else "utter_due_date", **fields
            )
            audit_disclosure(turn, "due_date", breakdown)
        return []


class ActionExplainCharges(Action):
    def name(self) -> str:
        return "action_explain_charges"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        with open_turn(tracker) as turn:
            if not verified(turn, tracker):
                return refuse_unverified(tracker)
            assert turn.account is not None
            breakdown = balance_breakdown(turn.session, turn.account, turn.clock)
            dispatcher.utter_message(response="utter_charges", **balance_fields(turn, breakdown))
            audit_disclosure(turn, "charges", breakdown)
        return []
