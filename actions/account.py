"""What the debtor owes, when it fell due and why: disclosures, each one audited."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.turn import GatedAction, Turn
from bot.documents.letters import pdf_filename, pdf_url, verification_url
from bot.domain.accounts import BalanceBreakdown, balance_breakdown
from bot.domain.audit import record_audit
from bot.domain.settlement_letters import letter_of_account
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
        fields = balance_fields(turn, breakdown)
        dispatcher.utter_message(response=response, **fields)
        if breakdown.total_cents == 0:
            send_letter(turn, dispatcher, fields)
        return []


def send_letter(turn: Turn, dispatcher: CollectingDispatcher, fields: dict[str, Any]) -> None:
    """The carta finiquito of a paid-off account, to a verified sender (the gateway draws it
    as a document: ``bot/conversation/responses.py``)."""
    account = turn.verified_account
    letter = letter_of_account(turn.session, account.id)
    if letter is None:
        return
    public_url = turn.settings.public_url
    dispatcher.utter_message(
        json_message={
            "type": "settlement_letter",
            "pdf_url": pdf_url(public_url, letter.verification_code),
            "verify_url": verification_url(public_url, letter.verification_code),
            "file_name": pdf_filename(letter),
            "product": fields["product"],
            "last4": fields["last4"],
            "creditor": fields["creditor"],
        }
    )
    record_audit(
        turn.session,
        turn.clock,
        actor="bot",
        action="disclosure",
        account_id=account.id,
        conversation_id=turn.conversation_id,
        what="settlement_letter",
        letter_id=letter.id,
    )


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
