"""A reminder as an approved WhatsApp template: variables, quick replies and payment link.

Variables, as the templates in ``policy.yml`` use them:

- ``{{1}}`` the debtor's first name,
- ``{{2}}`` the creditor,
- ``{{3}}`` the amount (the minimum payment when there is one, else the balance; for a
  promise, the promised amount),
- ``{{4}}`` the date (the due date; for a promise, the promised date),
- ``{{5}}`` the payment link (a ``card`` payment code, reused while one is active).

Quick-reply buttons carry Rasa payloads, so a tap lands in the right dialogue: "Pagar ahora"
→ ``/request_payment_code``, "Otra fecha" → ``/promise_to_pay``, "Hablar con asesor" →
``/request_agent``. A button whose title is not known here carries its title, which Rasa's
NLU reads like typed text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from bot.channels.base import TemplateMessage
from bot.clock import Clock
from bot.db.models import Account
from bot.domain.accounts import balance_breakdown
from bot.domain.money import format_money
from bot.payments import PaymentProvider, active_code_for, payment_url
from bot.policy import Policy
from bot.spanish import written_date

PAYMENT_METHOD = "card"  # the link opens the hosted page, which shows every way to pay
QUICK_REPLY_PAYLOADS = {
    "pagar ahora": "/request_payment_code",
    "otra fecha": "/promise_to_pay",
    "hablar con asesor": "/request_agent",
}
_PLACEHOLDER = re.compile(r"\{\{(\d+)\}\}")


class TemplateNotUsable(ValueError):
    """The template cannot be filled (unknown name, or a placeholder with no value)."""


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def button_payload(title: str) -> str:
    """The Rasa payload of a quick-reply title."""
    return QUICK_REPLY_PAYLOADS.get(_plain(title), title)


def first_name(full_name: str) -> str:
    parts = full_name.split()
    return parts[0] if parts else full_name


@dataclass(frozen=True)
class Variables:
    name: str
    creditor: str
    amount_cents: int
    on: date
    link: str

    def values(self) -> dict[int, str]:
        return {
            1: self.name,
            2: self.creditor,
            3: format_money(self.amount_cents),
            4: written_date(self.on),
            5: self.link,
        }


def template_message(policy: Policy, name: str, variables: Variables) -> TemplateMessage:
    """The filled template ``name`` (parameters 1..the highest placeholder of its body)."""
    template = policy.templates.get(name)
    if template is None:
        raise TemplateNotUsable(f"template '{name}' is not defined under templates")
    values = variables.values()
    used = [int(n) for n in _PLACEHOLDER.findall(template.body)]
    highest = max(used, default=0)
    missing = [n for n in range(1, highest + 1) if n not in values]
    if missing:
        raise TemplateNotUsable(f"template '{name}' uses {{{{{missing[0]}}}}}, which has no value")
    preview = _PLACEHOLDER.sub(lambda m: values.get(int(m.group(1)), m.group(0)), template.body)
    if template.footer:
        preview = f"{preview}\n\n{template.footer}"
    return TemplateMessage(
        name=name,
        language=template.language,
        params=tuple(values[n] for n in range(1, highest + 1)),
        button_payloads=tuple(button_payload(title) for title in template.buttons),
        preview=preview,
        button_titles=tuple(template.buttons),
    )


def reminder_amount(session: Session, clock: Clock, account: Account) -> int:
    """What a reminder asks for: the minimum payment when set and smaller, else the balance."""
    balance = balance_breakdown(session, account, clock).total_cents
    minimum = account.minimum_payment_cents
    if minimum is not None and 0 < minimum < balance:
        return minimum
    return balance


@dataclass(frozen=True)
class PaymentLinks:
    """Issues (or reuses) the payment code behind a reminder's link."""

    provider: PaymentProvider
    public_url: str

    def link_for(
        self, session: Session, clock: Clock, policy: Policy, account: Account, amount_cents: int
    ) -> str:
        """The link to an active ``card`` code for this amount (a new one if none is active).

        Raises :class:`~bot.payments.PaymentCodeError` when the rules refuse a code.
        """
        code = active_code_for(
            session, clock, account, PAYMENT_METHOD, amount_cents, provider=self.provider.name
        )
        if code is None:
            code = self.provider.issue_code(
                session,
                clock,
                policy,
                account,
                amount_cents=amount_cents,
                method=PAYMENT_METHOD,
                actor="campaign",
            )
        return payment_url(self.public_url, code.token)
