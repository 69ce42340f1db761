"""What the debtor owes, when it fell due and why: disclosures, each one audited."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.turn import GatedAction, Turn
from bot.domain.accounts import BalanceBreakdown, balance_breakdown
from bot.domain.audit import record_audit
from bot.spanish import days_past_due_text, money, spoken_date


def balance_fields(turn: Turn, breakdown: BalanceBreakdown) -> dict[str, Any]:
    """The placeholders every balance-related response uses."""
    account = turn.verified_account
    digits = "".join(ch for ch in account.external_id if ch.isdigit())
    return {
        "product": account.product,
        "creditor": account.creditor,
        "last4": digits[-4:] or account.external_id[-4:],
        "total": money(breakdown.total_cents),
        "principal": money(breakdown.principal_cents),
        "interest": money(breakdown.interest_cents),
        "fees": money(breakdown.fees_cents),
        "calculated_on": spoken_date(breakdown.calculated_on),
        "due_date": spoken_date(breakdown.due_date),
        "days_past_due_text": days_past_due_text(breakdown.days_past_due),
    }


def disclose(turn: Turn, what: str) -> BalanceBreakdown:
    """The balance breakdown, with the disclosure written to the audit log."""
    account = turn.verified_account
    breakdown = balance_breakdown(turn.session, account, turn.clock)
    record_audit(
        turn.session,
        turn.clock,
        actor="bot",
        action="disclosure",
        account_id=account.id,
        conversation_id=turn.conversation_id,
        what=what,
        total_cents=breakdown.total_cents,
        calculated_on=breakdown.calculated_on.isoformat(),
    )
    return breakdown


class ActionTellBalance(GatedAction):
    action_name = "action_tell_balance"

    def respond(
        self, turn: Turn, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        breakdown = disclose(turn, "balance")
        response = "utter_balance_zero" if breakdown.total_cents == 0 else "utter_balance"
        dispatcher.utter_message(response=response, **balance_fields(turn, breakdown))
        return []


class ActionTellDueDate(GatedAction):
    action_name = "action_tell_due_date"

    def respond(
        self, turn: Turn, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        breakdown = disclose(turn, "due_date")
        future = breakdown.due_date > turn.clock.today()
        dispatcher.utter_message(
            response="utter_due_date_future" if future else "utter_due_date",
            **balance_fields(turn, breakdown),
        )
        return []


class ActionExplainCharges(GatedAction):
    action_name = "action_explain_charges"

    def respond(
        self, turn: Turn, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        breakdown = disclose(turn, "charges")
        dispatcher.utter_message(response="utter_charges", **balance_fields(turn, breakdown))
        return []
