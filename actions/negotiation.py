"""Settlements and payment plans inside the policy; accepting or declining an offer."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.care import hand_off
from actions.payment_codes import amount_cents_from, issue_and_send, say_code_refused
from actions.turn import GatedAction, Turn, open_turn, verified
from bot.db.models import Offer, OfferKind, OfferStatus
from bot.domain.accounts import balance_breakdown
from bot.domain.errors import OfferRejected
from bot.domain.negotiation import (
    CounterOutcome,
    accept_offer,
    counter_settlement,
    max_plan_installments,
    next_installment,
    offer_plan,
    offer_settlement,
    plan_schedule,
)
from bot.nlu.amounts import parse_installments
from bot.payments.provider import PaymentCodeError
from bot.spanish import money, spoken_date


def _plan_options(turn: Turn) -> list[int]:
    assert turn.account is not None
    top = max_plan_installments(turn.session, turn.clock, turn.policy, turn.account) or 0
    return [n for n in turn.policy.plans.installments_allowed if n <= top]


def _options_text(options: list[int]) -> str:
    words = [str(n) for n in options]
    return ", ".join(words[:-1]) + f" o {words[-1]}" if len(words) > 1 else "".join(words)


class ActionOfferSettlement(GatedAction):
    action_name = "action_offer_settlement"

    def respond(
        self, turn: Turn, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        try:
            offer = offer_settlement(
                turn.session,
                turn.clock,
                turn.policy,
                turn.verified_account,
                conversation_id=turn.conversation_id,
            )
        except OfferRejected:
            dispatcher.utter_message(response="utter_no_settlement")
            return [SlotSet("offer_id", None)]
        total = balance_breakdown(turn.session, turn.verified_account, turn.clock).total_cents
        dispatcher.utter_message(
            response="utter_settlement_offer",
            creditor=turn.verified_account.creditor,
            amount=money(offer.total_cents),
            total=money(total),
            savings=money(total - offer.total_cents),
            valid_until=spoken_date(offer.valid_until),
        )
        return [SlotSet("offer_id", float(offer.id))]


class ActionCounterOffer(GatedAction):
    """The debtor names an amount: accept at/above the floor, counter, or pass to an agent."""

    action_name = "action_counter_offer"

    def respond(
        self, turn: Turn, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        entity = next(tracker.get_latest_entity_values("amount"), None)
        proposed = amount_cents_from(
            entity if entity is not None else tracker.get_slot("proposed_amount"),
            tracker.latest_message.get("text") or "",
        )
        if proposed is None:
            dispatcher.utter_message(response="utter_amount_not_understood")
            return [SlotSet("proposed_amount", None)]
        try:
            result = counter_settlement(
                turn.session,
                turn.clock,
                turn.policy,
                turn.verified_account,
                proposed,
                conversation_id=turn.conversation_id,
            )
        except OfferRejected:
            dispatcher.utter_message(response="utter_no_settlement")
            return [SlotSet("proposed_amount", None), SlotSet("offer_id", None)]
        events: list[EventType] = [SlotSet("proposed_amount", None)]
        if result.outcome is CounterOutcome.ESCALATE or result.offer is None:
            dispatcher.utter_message(response="utter_counter_escalate", proposed=money(proposed))
            hand_off(turn, dispatcher, reason="offer_beyond_limit", announce=False)
            return [*events, SlotSet("offer_id", None)]
        offer = result.offer
        fields = {
            "amount": money(offer.total_cents),
            "proposed": money(proposed),
            "valid_until": spoken_date(offer.valid_until),
        }
        response = (
            "utter_counter_acceptable"
            if result.outcome is CounterOutcome.ACCEPTABLE
            else "utter_counter_offer"
        )
        dispatcher.utter_message(response=response, **fields)
        return [*events, SlotSet("offer_id", float(offer.id))]


class ValidatePlanForm(FormValidationAction):
    def name(self) -> str:
        return "validate_plan_form"

    def validate_installments(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        count = (
            int(slot_value)
            if isinstance(slot_value, (int, float))
            else parse_installments(tracker.latest_message.get("text") or "")
        )
        with open_turn(tracker) as turn:
            if turn.account is None:
                return {"installments": None}
            options = _plan_options(turn)
            if count in options:
                return {"installments": float(count)}
            if options:
                dispatcher.utter_message(
                    response="utter_installments_not_allowed",
                    options=_options_text(options),
                    minimum=money(turn.policy.plans.min_installment_cents),
                )
            return {"installments": None}


class ActionAskInstallments(Action):
    def name(self) -> str:
        return "action_ask_installments"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        with open_turn(tracker) as turn:
            options = _plan_options(turn) if turn.account is not None else []
        if not options:
            dispatcher.utter_message(response="utter_no_plan")
            return []
        buttons = [
            {"title": f"{n} pagos", "payload": f'/inform{{"installments": {n}}}'} for n in options
        ]
        dispatcher.utter_message(
            response="utter_ask_installments", options=_options_text(options), buttons=buttons
        )
        return []


class ActionOfferPlan(GatedAction):
    action_name = "action_offer_plan"

    def respond(
        self, turn: Turn, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        try:
            offer = offer_plan(
                turn.session,
                turn.clock,
                turn.policy,
                turn.verified_account,
                int(tracker.get_slot("installments") or 0),
                conversation_id=turn.conversation_id,
            )
        except OfferRejected:
            dispatcher.utter_message(response="utter_no_plan")
            return [SlotSet("installments", None), SlotSet("offer_id", None)]
        rows = plan_schedule(offer, turn.policy, turn.clock.today())
        schedule = "\n".join(f"{n}. {spoken_date(due)}: {money(amount)}" for n, due, amount in rows)
        dispatcher.utter_message(
            response="utter_plan_offer",
            installments=offer.installments,
            total=money(offer.total_cents),
            schedule=schedule,
            valid_until=spoken_date(offer.valid_until),
        )
        return [SlotSet("installments", None), SlotSet("offer_id", float(offer.id))]


def _open_offer(turn: Turn, tracker: Tracker) -> Offer | None:
    offer_id = tracker.get_slot("offer_id")
    if offer_id is None or turn.account is None:
        return None
    offer = turn.session.get(Offer, int(offer_id))
    if offer is None or offer.account_id != turn.account.id:
        return None
    return offer if offer.status == OfferStatus.OFFERED.value else None


class ActionHandleAffirm(Action):
    """ "Sí": accepts the open offer (agreement + payment code), else asks what else."""

    def name(self) -> str:
        return "action_handle_affirm"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        with open_turn(tracker) as turn:
            offer = _open_offer(turn, tracker) if verified(turn, tracker) else None
            if offer is None:
                dispatcher.utter_message(response="utter_anything_else")
                return []
            try:
                agreement = accept_offer(
                    turn.session,
                    turn.clock,
                    turn.policy,
                    offer,
                    conversation_id=turn.conversation_id,
                )
            except OfferRejected:
                dispatcher.utter_message(response="utter_offer_expired")
                return [SlotSet("offer_id", None)]
            first = next_installment(agreement)
            assert first is not None
            if agreement.kind == OfferKind.PLAN.value:
                summary = (
                    f"plan de {len(agreement.installments)} pagos por "
                    f"{money(agreement.total_cents)}, el último el "
                    f"{spoken_date(agreement.deadline)}"
                )
            else:
                summary = (
                    f"liquidación por {money(agreement.total_cents)} a pagar a más "
                    f"tardar el {spoken_date(agreement.deadline)}"
                )
            dispatcher.utter_message(
                response="utter_agreement_confirmed",
                summary=summary,
                amount=money(first.amount_cents),
            )
            try:
                issue_and_send(
                    turn,
                    dispatcher,
                    amount_cents=first.amount_cents,
                    method="spei",
                    agreement=agreement,
                )
            except PaymentCodeError as error:  # the agreement stands; the code can come later
                say_code_refused(turn, dispatcher, error)
            return [SlotSet("offer_id", None)]


class ActionHandleDeny(Action):
    """ "No": declines the open offer and shows the alternatives, else asks what else."""

    def name(self) -> str:
        return "action_handle_deny"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        with open_turn(tracker) as turn:
            offer = _open_offer(turn, tracker) if verified(turn, tracker) else None
            if offer is None:
                dispatcher.utter_message(response="utter_anything_else")
                return []
            offer.status = OfferStatus.REJECTED.value
            dispatcher.utter_message(response="utter_offer_declined")
            return [SlotSet("offer_id", None)]
