"""The negotiation and contact policy (``policy.yml``), validated at start-up."""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.domain.money import pesos_to_cents

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class PolicyError(SystemExit):
    """The policy file is missing or invalid; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeWindow(_Strict):
    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if self.start >= self.end:
            raise ValueError("start must be before end")
        return self

    def contains(self, moment: time) -> bool:
        return self.start <= moment < self.end


class AgentHours(TimeWindow):
    days: list[Weekday]


class ContactPolicy(_Strict):
    profile: Literal["condusef", "reg_f"] = "condusef"
    window: TimeWindow
    days: list[Weekday]
    max_company_messages_per_7_days: int = Field(ge=1)
    holidays: list[date] = []
    agent_hours: AgentHours
    channel_fallback: list[Literal["whatsapp", "rcs", "sms"]] = ["whatsapp"]
    # Company-started messages are queued only until this long before the window closes,
    # so retries and the debtor's answer still fall inside it.
    send_margin_minutes: int = Field(60, ge=0, le=240)
    # Appended to company-started free text under the reg_f profile (templates carry it as
    # their footer).
    opt_out_notice: str | None = None
    # The creditor's own stop words, besides the built-in ones (bot/compliance/stop_words.py):
    # whole messages ("no molestar") and phrases a message may contain.
    stop_words: list[str] = []
    stop_phrases: list[str] = []

    @model_validator(mode="after")
    def _notice_for_reg_f(self) -> ContactPolicy:
        if self.profile == "reg_f" and not (self.opt_out_notice or "").strip():
            raise ValueError("opt_out_notice is required by the reg_f profile")
        return self


class IdentityPolicy(_Strict):
    # What the sender must answer: either factor, or the birth date and then the last 4
    # digits of the account (stronger: a forwarded reminder or a found statement is not enough).
    mode: Literal["birth_date_or_last4", "birth_date_then_last4"] = "birth_date_or_last4"
    max_failures: int = Field(3, ge=1)
    lockout_hours: int = Field(24, ge=1)
    # A verification lasts while the person keeps writing, and never past a hard limit.
    verification_idle_minutes: int = Field(30, ge=1, le=24 * 60)
    verification_max_hours: int = Field(8, ge=1, le=72)


class PromisePolicy(_Strict):
    horizon_days: int = Field(ge=1)
    min_amount: Decimal = Field(ge=0)
    grace_days: int = Field(1, ge=0)

    @property
    def min_amount_cents(self) -> int:
        return pesos_to_cents(self.min_amount)


class SettlementBucket(_Strict):
    min_days_past_due: int = Field(ge=0)
    max_days_past_due: int = Field(ge=0)
    discount_pct: Decimal = Field(ge=0, lt=100)
    floor_pct: Decimal = Field(gt=0, le=100)

    @model_validator(mode="after")
    def _consistent(self) -> SettlementBucket:
        if self.max_days_past_due < self.min_days_past_due:
            raise ValueError("max_days_past_due is below min_days_past_due")
        if 100 - self.discount_pct < self.floor_pct:
            raise ValueError("the opening offer (100 - discount_pct) is below floor_pct")
        return self


class SettlementPolicy(_Strict):
    offer_validity_days: int = Field(ge=1)
    max_rounds: int = Field(ge=1)
    buckets: list[SettlementBucket] = Field(min_length=1)

    def bucket_for(self, days_past_due: int) -> SettlementBucket | None:
        for bucket in self.buckets:
            if bucket.min_days_past_due <= days_past_due <= bucket.max_days_past_due:
                return bucket
        return None


class PlanPolicy(_Strict):
    installments_allowed: list[int] = Field(min_length=1)
    min_installment: Decimal = Field(ge=0)
    interval_days: int = Field(30, ge=7)
    first_due_within_days: int = Field(7, ge=0)

    @field_validator("installments_allowed")
    @classmethod
    def _at_least_two(cls, values: list[int]) -> list[int]:
        if any(v < 2 for v in values):
            raise ValueError("a plan has at least 2 installments")
        return sorted(set(values))

    @property
    def min_installment_cents(self) -> int:
        return pesos_to_cents(self.min_installment)


class PaymentCodePolicy(_Strict):
    validity_hours: dict[Literal["oxxo", "spei", "bank_ref", "card"], int]
    oxxo_max_amount: Decimal = Field(Decimal("10000"), gt=0)
    bank_name: str
    clabe_prefix: str = Field(pattern=r"^\d{6}$")


class EscalationPolicy(_Strict):
    fallback_turns: int = Field(2, ge=1)
    insult_warnings: int = Field(1, ge=0)


class ReminderStep(_Strict):
    offset_days: int
    template: str
    segment: Literal["preventive", "early", "late"]


class ReminderPolicy(_Strict):
    schedule: list[ReminderStep]
    promise_reminder_template: str
    broken_promise_template: str
    # A step that could not go out on its day (hours, holidays, the cap) may still go out
    # this many days later, unless the next step is due by then.
    catch_up_days: int = Field(3, ge=0, le=14)


class Template(_Strict):
    language: str = "es_MX"
    body: str
    footer: str | None = None  # static text under the body (approved with the template)
    buttons: list[str] = []


class Policy(_Strict):
    contact: ContactPolicy
    identity: IdentityPolicy = IdentityPolicy()
    promises: PromisePolicy
    settlement: SettlementPolicy
    plans: PlanPolicy
    payment_codes: PaymentCodePolicy
    escalation: EscalationPolicy = EscalationPolicy()
    reminders: ReminderPolicy
    templates: dict[str, Template]

    @model_validator(mode="after")
    def _templates_exist(self) -> Policy:
        # Named by key path: a top-level validator's error carries no location of its own.
        named = [
            (f"reminders.schedule.{i}.template", step.template)
            for i, step in enumerate(self.reminders.schedule)
        ] + [
            ("reminders.promise_reminder_template", self.reminders.promise_reminder_template),
            ("reminders.broken_promise_template", self.reminders.broken_promise_template),
        ]
        missing = [f"{key} ('{name}')" for key, name in named if name not in self.templates]
        if missing:
            raise ValueError(f"{', '.join(missing)}: not defined under templates")
        return self


def load_policy(path: str | Path) -> Policy:
    """Read and validate the policy file, or raise :class:`PolicyError` naming the key."""
    file = Path(path)
    if not file.exists():
        raise PolicyError(f"Policy file {file} not found (set ACUERDO_POLICY_FILE)")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PolicyError(f"Policy file {file} is not valid YAML: {exc}") from None
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        where = f"{key}: " if key else ""
        raise PolicyError(f"Invalid policy {file}: {where}{message}") from None


@lru_cache(maxsize=4)
def cached_policy(path: str) -> Policy:
    return load_policy(path)
