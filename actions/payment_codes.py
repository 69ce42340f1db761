"""Payment codes on request: method and amount, then the reference, link and QR."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.turn import GatedAction, Turn, last_bot_response, open_turn, verified
from bot.db.models import Agreement, PaymentCode
from bot.domain.accounts import balance_breakdown
from bot.domain.money import pesos_to_cents
from bot.domain.payment_references import shown_reference
from bot.nlu.amounts import parse_amount, parse_payment_method
from bot.payments.links import payment_url
from bot.payments.provider import (
    PaymentCodeError,
    get_provider,
    shown_concept,
)
from bot.payments.reconcile import active_code_for
from bot.spanish import METHOD_NAMES, money, spoken_datetime

# The NLU's payment_method values → the provider's code methods.
NLU_TO_CODE_METHOD = {"oxxo": "oxxo", "spei": "spei", "card": "card", "bank_deposit": "bank_ref"}
MINIMUM_CODE_CENTS = 1_000  # $10: the smallest amount OXXO and banks take
# Refusals that are not about the amount: the processor failed or cannot issue this code.
PROCESSOR_REFUSALS = {"processor_unavailable", "email_required", "method_not_offered"}


def say_code_refused(turn: Turn, dispatcher: CollectingDispatcher, error: PaymentCodeError) -> None:
    """Tell the debtor why no code came: the processor, or the amount asked."""
    if error.reason in PROCESSOR_REFUSALS:
        dispatcher.utter_message(response="utter_payment_code_unavailable")
        return
    total = balance_breakdown(turn.session, turn.verified_account, turn.clock).total_cents
    dispatcher.utter_message(
        response="utter_amount_not_valid", minimum=money(MINIMUM_CODE_CENTS), total=money(total)
    )


def amount_cents_from(value: Any, text: str) -> int | None:
    """Centavos from a slot value (a number) or, failing that, the raw text."""
    if isinstance(value, (int, float)) and value > 0:
        return pesos_to_cents(f"{value:.2f}")
    parsed = parse_amount(text)
    return pesos_to_cents(parsed) if parsed and parsed > 0 else None


def issue_and_send(
    turn: Turn,
    dispatcher: CollectingDispatcher,
    *,
    amount_cents: int,
    method: str,
    agreement: Agreement | None = None,
) -> PaymentCode:
    """Issue (or reuse) a code and send it as text plus a payment_code payload with the QR."""
    assert turn.account is not None
    code = active_code_for(
        turn.session, turn.clock, turn.account, method, amount_cents, agreement=agreement
    ) or get_provider(turn.settings).issue_code(
        turn.session,
        turn.clock,
        turn.policy,
        turn.account,
        amount_cents=amount_cents,
        method=method,
        agreement=agreement,
    )
    url = payment_url(turn.settings.public_url, code.token)
    reference = shown_reference(code)
    # A processor's CLABE is at its bank, not the creditor's collection account.
    bank = f" ({turn.policy.payment_codes.bank_name})" if code.provider == "local" else ""
    lines = []
    if code.method == "spei":
        lines.append(f"CLABE: {reference}{bank}")
        if code.voucher_number:
            lines.append(f"Referencia de la transferencia: {code.voucher_number}")
    elif code.method == "oxxo":
        lines.append(f"Referencia OXXO: {reference}")
    else:
        lines.append(f"Referencia: {reference}{bank}")
    if code.hosted_url:
        lines.append(f"Tu ficha para imprimir: {code.hosted_url}")
    expires = spoken_datetime(code.expires_at.astimezone(turn.clock.tz))
    dispatcher.utter_message(
        response="utter_payment_code",
        amount=money(code.amount_cents),
        method_name=METHOD_NAMES.get(code.method, code.method),
        code_lines="\n".join(lines),
        concept=shown_concept(code.concept, turn.account),
        expires=expires,
        pay_url=url,
    )
    dispatcher.utter_message(
        json_message={
            "type": "payment_code",
            "method": code.method,
            "reference": reference,
            "clabe": code.clabe,
            "hosted_url": code.hosted_url,
            "amount": money(code.amount_cents),
            "amount_cents": code.amount_cents,
            "expires_at": code.expires_at.isoformat(),
            "concept": shown_concept(code.concept, turn.account),
            "pay_url": url,
            "qr_png_url": f"{url}/qr.png",
        }
    )
    return code


class ValidatePaymentCodeForm(FormValidationAction):
    def name(self) -> str:
        return "validate_payment_code_form"

    async def extract_code_amount(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """A bare "500" answering "¿te genero tu referencia?" is the amount already."""
        if tracker.get_slot("code_amount") is not None:
            return {}
        if last_bot_response(tracker) != "utter_how_to_pay":
            return {}
        cents = amount_cents_from(None, tracker.latest_message.get("text") or "")
        return {"code_amount": cents / 100} if cents else {}

    def validate_payment_method(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        method = (
            slot_value
            if slot_value in NLU_TO_CODE_METHOD
            else parse_payment_method(tracker.latest_message.get("text") or "")
        )
        if method not in NLU_TO_CODE_METHOD:
            dispatcher.utter_message(response="utter_payment_method_not_understood")
            return {"payment_method": None}
        return {"payment_method": method}

    def validate_code_amount(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        cents = amount_cents_from(slot_value, tracker.latest_message.get("text") or "")
        if cents is None:
            dispatcher.utter_message(response="utter_amount_not_understood")
            return {"code_amount": None}
        with open_turn(tracker) as turn:
            if turn.account is None:
                return {"code_amount": None}
            total = balance_breakdown(turn.session, turn.account, turn.clock).total_cents
            if not MINIMUM_CODE_CENTS <= cents <= total:
                dispatcher.utter_message(
                    response="utter_amount_not_valid",
                    minimum=money(MINIMUM_CODE_CENTS),
                    total=money(total),
                )
                return {"code_amount": None}
            oxxo_max = pesos_to_cents(turn.policy.payment_codes.oxxo_max_amount)
            if tracker.get_slot("payment_method") == "oxxo" and cents > oxxo_max:
                dispatcher.utter_message(response="utter_oxxo_limit", maximum=money(oxxo_max))
                return {"code_amount": None}
        return {"code_amount": cents / 100}


class ActionAskCodeAmount(Action):
    """Ask the amount with the balance (and the minimum payment) as one-tap options."""

    def name(self) -> str:
        return "action_ask_code_amount"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        with open_turn(tracker) as turn:
            buttons = []
            if turn.account is not None and verified(turn, tracker):
                total = balance_breakdown(turn.session, turn.account, turn.clock).total_cents
                options = [("Total", total)]
                minimum = turn.account.minimum_payment_cents
                if minimum and MINIMUM_CODE_CENTS <= minimum < total:
                    options.append(("Mínimo", minimum))
                buttons = [
                    {
                        "title": f"{label} {money(cents)}"[:20],
                        "payload": f'/inform{{"amount": {cents / 100:.2f}}}',
                    }
                    for label, cents in options
                ]
        dispatcher.utter_message(response="utter_ask_code_amount", buttons=buttons)
        return []


class ActionIssuePaymentCode(GatedAction):
    action_name = "action_issue_payment_code"

    def respond(
        self, turn: Turn, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> list[EventType]:
        reset = [SlotSet("payment_method", None), SlotSet("code_amount", None)]
        method = NLU_TO_CODE_METHOD.get(str(tracker.get_slot("payment_method")), "spei")
        amount = tracker.get_slot("code_amount")
        try:
            issue_and_send(
                turn,
                dispatcher,
                amount_cents=pesos_to_cents(f"{float(amount):.2f}"),
                method=method,
            )
        except PaymentCodeError as error:
            say_code_refused(turn, dispatcher, error)
        return reset
