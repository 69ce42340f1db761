"""Legal contact profiles and the effective contact rules of a policy.

The policy file may be stricter than the law, never looser: the effective window is the
policy's window cut to the profile's legal window, and the weekly cap is the smaller of the
two. ``condusef`` is the Mexican rule for collection agencies (07:00–22:00 debtor local
time); ``reg_f`` is the US Regulation F (08:00–21:00, at most 7 attempts in 7 days, an
opt-out notice in every electronic message).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from bot.policy import WEEKDAYS, Policy, Template


class ComplianceConfigError(ValueError):
    """The policy cannot be applied as written; the message names the key to fix."""


@dataclass(frozen=True)
class LegalProfile:
    name: str
    start: time
    end: time
    max_per_7_days: int | None  # None: the policy's own cap only
    opt_out_notice_required: bool


PROFILES: dict[str, LegalProfile] = {
    "condusef": LegalProfile("condusef", time(7, 0), time(22, 0), None, False),
    "reg_f": LegalProfile("reg_f", time(8, 0), time(21, 0), 7, True),
}


@dataclass(frozen=True)
class ContactRules:
    """What the gate applies, already resolved from the policy and its profile."""

    profile: str
    start: time  # first moment a company-started message may be queued (debtor local)
    last_start: time  # queueing stops here: the window's end less the send margin
    end: time  # the window's end
    weekdays: frozenset[int]  # Monday = 0
    holidays: frozenset[date]
    max_per_7_days: int
    opt_out_notice: str | None  # required in every company-started message, when set


def _minus(moment: time, minutes: int) -> time:
    shifted = datetime.combine(date(2000, 1, 1), moment) - timedelta(minutes=minutes)
    return shifted.time() if shifted.date() == date(2000, 1, 1) else time(0, 0)


def contact_rules(policy: Policy) -> ContactRules:
    """The effective rules of ``policy`` (or :class:`ComplianceConfigError`)."""
    contact = policy.contact
    profile = PROFILES[contact.profile]
    start = max(contact.window.start, profile.start)
    end = min(contact.window.end, profile.end)
    last_start = _minus(end, contact.send_margin_minutes)
    if last_start <= start:
        raise ComplianceConfigError(
            f"contact.window {contact.window.start:%H:%M}-{contact.window.end:%H:%M} within the "
            f"{profile.name} hours {profile.start:%H:%M}-{profile.end:%H:%M}, less "
            f"contact.send_margin_minutes={contact.send_margin_minutes}, leaves no time to send"
        )
    if not contact.days:
        raise ComplianceConfigError("contact.days: no day of the week allows contact")
    cap = contact.max_company_messages_per_7_days
    if profile.max_per_7_days is not None:
        cap = min(cap, profile.max_per_7_days)
    notice = (contact.opt_out_notice or "").strip() or None
    return ContactRules(
        profile=profile.name,
        start=start,
        last_start=last_start,
        end=end,
        weekdays=frozenset(WEEKDAYS.index(day) for day in contact.days),
        holidays=frozenset(contact.holidays),
        max_per_7_days=cap,
        opt_out_notice=notice if profile.opt_out_notice_required else None,
    )


def template_carries_notice(template: Template, notice: str | None) -> bool:
    """True when no notice is required or the template's footer or body includes it."""
    if notice is None:
        return True
    wanted = " ".join(notice.split()).casefold()
    return any(
        wanted in " ".join((text or "").split()).casefold()
        for text in (template.footer, template.body)
    )


def with_opt_out_notice(rules: ContactRules, text: str) -> str:
    """Free text of a company-started message, with the profile's opt-out notice appended."""
    if rules.opt_out_notice is None or rules.opt_out_notice in text:
        return text
    return f"{text.rstrip()}\n\n{rules.opt_out_notice}"


def profile_problems(policy: Policy, template_names: list[str]) -> list[str]:
    """Why ``policy`` cannot start messages with these templates under its profile (empty: ok)."""
    try:
        rules = contact_rules(policy)
    except ComplianceConfigError as exc:
        return [str(exc)]
    problems = []
    for name in template_names:
        template = policy.templates.get(name)
        if template is not None and not template_carries_notice(template, rules.opt_out_notice):
            problems.append(
                f"templates.{name}: the {rules.profile} profile needs the opt-out notice "
                f"(contact.opt_out_notice) in its footer or body"
            )
    return problems
