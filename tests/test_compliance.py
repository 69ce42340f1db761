"""The compliance gate: every company-started message is sent, delayed until a moment, or
suppressed with a reason written to the audit log."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.compliance import (
    ComplianceConfigError,
    Verdict,
    contact_rules,
    decide,
    profile_problems,
    record_company_message,
    with_opt_out_notice,
)
from bot.db.models import AccountStatus, ContactPoint
from bot.domain.conversations import flag_wrong_number, open_dispute, opt_out
from bot.domain.payments import apply_payment
from bot.policy import Policy, PolicyError, load_policy
from tests.campaign_support import add_account, at, audit
from tests.conftest import REPO_ROOT

MX = ZoneInfo("America/Mexico_City")
MONDAY_2130 = "2026-11-23T21:30:00-06:00"
MONDAY_1000 = "2026-11-23T10:00:00-06:00"


def contact_of(session: Session, account) -> ContactPoint:  # type: ignore[no-untyped-def]
    return session.query(ContactPoint).filter_by(debtor_id=account.debtor_id).one()


def gate(session: Session, clock: Clock, policy: Policy, account, **kw):  # type: ignore[no-untyped-def]
    return decide(session, clock, policy, account, contact_of(session, account), "reminder", **kw)


def policy_with(tmp_path: Path, **contact: object) -> Policy:
    data = yaml.safe_load((REPO_ROOT / "policy.yml").read_text(encoding="utf-8"))
    data["contact"].update(contact)
    target = tmp_path / "policy.yml"
    target.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_policy(target)


# -- the window ------------------------------------------------------------------------
def test_a_reminder_at_ten_on_a_monday_goes(session, policy) -> None:
    clock = at(MONDAY_1000)
    account = add_account(session, clock)

    decision = gate(session, clock, policy, account)

    assert decision.verdict == Verdict.SEND


def test_at_21_30_a_reminder_waits_for_seven_the_next_morning(session, policy) -> None:
    clock = at(MONDAY_2130)
    account = add_account(session, clock)

    decision = gate(session, clock, policy, account)

    assert decision.verdict == Verdict.DELAY
    assert decision.reason == "outside_hours"
    assert decision.until == datetime(2026, 11, 24, 7, 0, tzinfo=MX)


def test_before_seven_it_waits_until_seven_the_same_day(session, policy) -> None:
    clock = at("2026-11-24T06:15:00-06:00")
    account = add_account(session, clock)

    decision = gate(session, clock, policy, account)

    assert decision.until == datetime(2026, 11, 24, 7, 0, tzinfo=MX)


def test_sunday_is_not_a_contact_day(session, policy) -> None:
    clock = at("2026-11-29T11:00:00-06:00")  # a Sunday; the policy allows mon-sat
    account = add_account(session, clock)

    decision = gate(session, clock, policy, account)

    assert (decision.reason, decision.until) == (
        "not_a_contact_day",
        datetime(2026, 11, 30, 7, 0, tzinfo=MX),
    )


def test_a_holiday_waits_for_the_next_working_day(session, policy) -> None:
    clock = at("2026-12-25T11:00:00-06:00")  # Christmas, a Friday
    account = add_account(session, clock)

    decision = gate(session, clock, policy, account)

    assert (decision.reason, decision.until) == ("holiday", datetime(2026, 12, 26, 7, 0, tzinfo=MX))


def test_the_debtors_own_time_zone_decides(session, policy) -> None:
    clock = at(MONDAY_2130)  # 19:30 in Tijuana, 22:30 in Cancún
    tijuana = add_account(session, clock, timezone="America/Tijuana")
    cancun = add_account(session, clock, timezone="America/Cancun")

    assert gate(session, clock, policy, tijuana).verdict == Verdict.SEND
    late = gate(session, clock, policy, cancun)
    assert late.verdict == Verdict.DELAY
    assert late.until == datetime(2026, 11, 24, 7, 0, tzinfo=ZoneInfo("America/Cancun"))


def test_an_unknown_time_zone_falls_back_to_the_default(session, policy) -> None:
    clock = at(MONDAY_2130)
    account = add_account(session, clock)
    account.debtor.timezone = "Mars/Olympus_Mons"

    assert gate(session, clock, policy, account).until == datetime(2026, 11, 24, 7, 0, tzinfo=MX)


# -- suppression -----------------------------------------------------------------------
def test_an_opted_out_number_is_suppressed_and_audited(session, policy) -> None:
    clock = at(MONDAY_1000)
    account = add_account(session, clock)
    contact = contact_of(session, account)
    opt_out(session, clock, contact.channel, contact.address)

    decision = gate(session, clock, policy, account)

    assert (decision.verdict, decision.reason) == (Verdict.SUPPRESS, "opted_out")
    entry = audit(session, "suppression")[-1]
    assert entry.account_id == account.id
    assert entry.details["reason"] == "opted_out"
    assert entry.details["kind"] == "reminder"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s, c, a, cp: flag_wrong_number(s, c, cp.channel, cp.address), "wrong_number"),
        (lambda s, c, a, cp: open_dispute(s, c, a, reason="no es mía"), "dispute_open"),
        (lambda s, c, a, cp: setattr(a, "do_not_contact_reason", "cese"), "do_not_contact"),
        (lambda s, c, a, cp: setattr(cp, "do_not_contact_reason", "abogado"), "do_not_contact"),
        (lambda s, c, a, cp: setattr(a.debtor, "deceased", True), "deceased"),
        (lambda s, c, a, cp: setattr(a.debtor, "bankrupt", True), "bankrupt"),
        (lambda s, c, a, cp: setattr(a, "status", AccountStatus.SETTLED.value), "account_settled"),
    ],
)
def test_each_do_not_contact_rule_suppresses_with_its_reason(
    session, policy, change, reason
) -> None:
    clock = at(MONDAY_1000)
    account = add_account(session, clock)
    change(session, clock, account, contact_of(session, account))

    decision = gate(session, clock, policy, account)

    assert (decision.verdict, decision.reason) == (Verdict.SUPPRESS, reason)


def test_a_paid_account_is_suppressed(session, policy) -> None:
    clock = at(MONDAY_1000)
    account = add_account(session, clock)
    apply_payment(
        session,
        clock,
        policy,
        account,
        amount_cents=1_200_000,
        paid_at=clock.now_utc(),
        reference="SPEI-1",
        source="import",
    )

    assert gate(session, clock, policy, account).reason == "account_paid"


def test_suppression_outranks_the_window(session, policy) -> None:
    clock = at(MONDAY_2130)
    account = add_account(session, clock)
    open_dispute(session, clock, account, reason="no reconozco")

    assert gate(session, clock, policy, account).verdict == Verdict.SUPPRESS


def test_no_contact_point_is_suppressed(session, policy) -> None:
    clock = at(MONDAY_1000)
    account = add_account(session, clock)

    decision = decide(session, clock, policy, account, None, "reminder")

    assert decision.reason == "no_contact_point"


def test_someone_elses_number_is_never_used(session, policy) -> None:
    clock = at(MONDAY_1000)
    mine = add_account(session, clock)
    theirs = add_account(session, clock)

    decision = decide(session, clock, policy, mine, contact_of(session, theirs), "reminder")

    assert decision.reason == "not_the_debtors_contact"


# -- the weekly cap ----------------------------------------------------------------------
def test_above_the_weekly_cap_it_waits_until_the_oldest_message_is_a_week_old(
    session, policy
) -> None:
    account = add_account(session, at(MONDAY_1000))
    contact = contact_of(session, account)
    first = datetime(2026, 11, 17, 9, 30, tzinfo=MX)
    for n in range(policy.contact.max_company_messages_per_7_days):
        sent_at = Clock(tz=MX, pinned=first + timedelta(days=n % 6, minutes=n))
        record_company_message(session, sent_at, account, contact, "reminder", message_id=None)
    session.flush()

    decision = gate(session, at(MONDAY_1000), policy, account)

    assert decision.reason == "weekly_cap"
    assert decision.until == datetime(2026, 11, 24, 9, 30, tzinfo=MX)


def test_a_message_older_than_seven_days_no_longer_counts(session, policy) -> None:
    account = add_account(session, at(MONDAY_1000))
    contact = contact_of(session, account)
    for n in range(7):
        old = Clock(tz=MX, pinned=datetime(2026, 11, 10, 9, n, tzinfo=MX))
        record_company_message(session, old, account, contact, "reminder", message_id=None)

    assert gate(session, at(MONDAY_1000), policy, account).verdict == Verdict.SEND


def test_a_delay_is_audited_with_its_moment(session, policy) -> None:
    clock = at(MONDAY_2130)
    account = add_account(session, clock)

    gate(session, clock, policy, account, step="due+3")

    entry = audit(session, "delay")[-1]
    assert entry.details["reason"] == "outside_hours"
    assert entry.details["until"] == "2026-11-24T07:00:00-06:00"
    assert entry.details["step"] == "due+3"


def test_audit_false_records_nothing(session, policy) -> None:
    clock = at(MONDAY_2130)
    account = add_account(session, clock)

    gate(session, clock, policy, account, audit=False)

    assert audit(session, "delay") == []


# -- profiles ------------------------------------------------------------------------------
def test_reg_f_allows_eight_to_nine_only(session, tmp_path) -> None:
    reg_f = policy_with(tmp_path, profile="reg_f")
    account = add_account(session, at("2026-11-24T07:30:00-06:00"))

    early = gate(session, at("2026-11-24T07:30:00-06:00"), reg_f, account)

    assert early.until == datetime(2026, 11, 24, 8, 0, tzinfo=MX)
    rules = contact_rules(reg_f)
    assert (rules.start.hour, rules.end.hour) == (8, 21)


def test_reg_f_caps_at_seven_in_seven_days_even_if_the_policy_allows_more(tmp_path) -> None:
    reg_f = policy_with(tmp_path, profile="reg_f", max_company_messages_per_7_days=12)

    assert contact_rules(reg_f).max_per_7_days == 7


def test_reg_f_carries_the_opt_out_notice(session, tmp_path) -> None:
    reg_f = policy_with(tmp_path, profile="reg_f")
    account = add_account(session, at(MONDAY_1000))

    decision = gate(session, at(MONDAY_1000), reg_f, account)

    notice = reg_f.contact.opt_out_notice
    assert decision.opt_out_notice == notice
    assert with_opt_out_notice(contact_rules(reg_f), "Hola").endswith(str(notice))


def test_condusef_adds_no_notice_to_free_text(policy) -> None:
    assert with_opt_out_notice(contact_rules(policy), "Hola") == "Hola"


def test_reg_f_refuses_templates_without_the_opt_out_text(tmp_path) -> None:
    data = yaml.safe_load((REPO_ROOT / "policy.yml").read_text(encoding="utf-8"))
    data["contact"]["profile"] = "reg_f"
    data["templates"]["recordatorio_tardio"].pop("footer")
    target = tmp_path / "policy.yml"
    target.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    problems = profile_problems(load_policy(target), ["recordatorio_tardio"])

    assert problems and "templates.recordatorio_tardio" in problems[0]


def test_reg_f_without_an_opt_out_notice_is_a_policy_error(tmp_path) -> None:
    with pytest.raises(PolicyError, match="contact: opt_out_notice is required"):
        policy_with(tmp_path, profile="reg_f", opt_out_notice=None)


def test_a_policy_window_wider_than_the_law_is_cut_to_the_law(tmp_path) -> None:
    wide = policy_with(tmp_path, window={"start": "06:00", "end": "23:30"})

    rules = contact_rules(wide)

    assert (rules.start.hour, rules.end.hour) == (7, 22)


def test_a_margin_that_leaves_no_time_is_refused(tmp_path) -> None:
    narrow = policy_with(tmp_path, window={"start": "09:00", "end": "09:30"})

    with pytest.raises(ComplianceConfigError, match="send_margin_minutes"):
        contact_rules(narrow)


def test_the_margin_is_configurable(session, tmp_path) -> None:
    no_margin = policy_with(tmp_path, send_margin_minutes=0)
    account = add_account(session, at(MONDAY_2130))

    assert gate(session, at(MONDAY_2130), no_margin, account).verdict == Verdict.SEND


def test_the_days_come_from_the_policy(session, tmp_path) -> None:
    weekdays = policy_with(tmp_path, days=["mon", "tue", "wed", "thu", "fri"])
    saturday = at("2026-11-28T11:00:00-06:00")
    account = add_account(session, saturday)

    assert gate(session, saturday, weekdays, account).until == datetime(
        2026, 11, 30, 7, 0, tzinfo=MX
    )


def test_unknown_kind_is_refused(session, policy) -> None:
    clock = at(MONDAY_1000)
    account = add_account(session, clock)

    with pytest.raises(ValueError, match="unknown kind"):
        decide(session, clock, policy, account, contact_of(session, account), "spam")  # type: ignore[arg-type]


def test_holidays_are_dates(policy) -> None:
    assert date(2026, 12, 25) in contact_rules(policy).holidays
