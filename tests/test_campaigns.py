"""Reminder campaigns: the schedule by due date, promise reminders and broken-promise
follow-ups, personalised templates with quick replies, once each, through the gate."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from bot.campaigns.compose import button_payload
from bot.campaigns.runner import CampaignError, Outcome, run_campaign
from bot.db.models import (
    CampaignSend,
    ContactPoint,
    Conversation,
    ConversationState,
    PaymentCode,
    Promise,
    PromiseStatus,
)
from bot.domain.conversations import open_dispute, opt_out
from bot.domain.payments import apply_payment
from bot.domain.promises import record_promise
from bot.payments import read_payment_link_token
from bot.policy import load_policy
from tests.campaign_support import (
    LINK_SECRET,
    add_account,
    at,
    audit,
    campaign_ctx,
    company_messages,
    outcomes,
    sends,
)
from tests.conftest import REPO_ROOT

MONDAY = date(2026, 11, 23)
MONDAY_1000 = "2026-11-23T10:00:00-06:00"
MONDAY_2130 = "2026-11-23T21:30:00-06:00"
STEPS = {
    -3: ("due-3", "preventive", "recordatorio_preventivo"),
    0: ("due+0", "preventive", "recordatorio_vencimiento"),
    3: ("due+3", "early", "recordatorio_temprano"),
    7: ("due+7", "early", "recordatorio_temprano"),
    15: ("due+15", "late", "recordatorio_tardio"),
    30: ("due+30", "late", "recordatorio_tardio"),
}


def due_for(offset: int) -> date:
    """The due date whose step ``offset`` falls on Monday 2026-11-23."""
    return MONDAY - timedelta(days=offset)


def run(session, moment, policy, **kw):  # type: ignore[no-untyped-def]
    return run_campaign(session, campaign_ctx(at(moment), policy), **kw)


def template_body(message) -> dict:  # type: ignore[no-untyped-def]
    return message.payload["body"]["template"]


def test_every_step_of_the_schedule_goes_with_its_template_and_segment(session, policy) -> None:
    clock = at(MONDAY_1000)
    accounts = {offset: add_account(session, clock, due_date=due_for(offset)) for offset in STEPS}

    report = run(session, MONDAY_1000, policy)

    assert report.count(Outcome.SENT) == len(STEPS)
    by_account = {row.account_id: row for row in sends(session)}
    for offset, account in accounts.items():
        row = by_account[account.id]
        assert (row.step, row.segment, row.template) == STEPS[offset]
        assert row.scheduled_for == MONDAY
        assert row.status == "sent"
    names = sorted(template_body(m)["name"] for m in company_messages(session))
    assert names == sorted(t for _s, _g, t in STEPS.values())


def test_the_template_is_personal_and_its_link_opens_a_card_payment_page(session, policy) -> None:
    clock = at(MONDAY_1000)
    account = add_account(
        session,
        clock,
        full_name="María Fernanda López",
        due_date=due_for(-3),
        minimum_payment_cents=120_000,
    )

    run(session, MONDAY_1000, policy)

    (message,) = company_messages(session)
    template = template_body(message)
    params = [p["text"] for p in template["components"][0]["parameters"]]
    assert params[:4] == ["María", "Banco Ejemplo", "$1,200.00", "26 de noviembre de 2026"]
    assert params[4].startswith("http://testserver/pay/")
    code = session.get(
        PaymentCode, read_payment_link_token(params[4].rsplit("/", 1)[1], LINK_SECRET)
    )
    assert (code.account_id, code.method, code.amount_cents) == (account.id, "card", 120_000)
    assert template["language"]["code"] == "es_MX"
    assert "asistente automatizado" in message.text
    assert message.text.endswith("responde BAJA.")
    assert message.kind == "template"


def test_quick_replies_lead_into_the_payment_promise_and_agent_dialogues(session, policy) -> None:
    clock = at(MONDAY_1000)
    add_account(session, clock, due_date=due_for(3))

    run(session, MONDAY_1000, policy)

    (message,) = company_messages(session)
    buttons = [c for c in template_body(message)["components"] if c["type"] == "button"]
    payloads = [b["parameters"][0]["payload"] for b in buttons]
    assert payloads == ["/request_payment_code", "/promise_to_pay", "/request_agent"]
    assert [o["title"] for o in message.payload["options"]] == [
        "Pagar ahora",
        "Otra fecha",
        "Hablar con asesor",
    ]
    assert button_payload("PAGAR  ahora") == "/request_payment_code"
    assert button_payload("Quiero pagar") == "Quiero pagar"


def test_an_active_payment_code_for_the_amount_is_reused(session, policy) -> None:
    clock = at(MONDAY_1000)
    account = add_account(session, clock, due_date=due_for(0), minimum_payment_cents=100_000)
    provider = campaign_ctx(clock, policy).links.provider
    earlier = provider.issue_code(
        session,
        at("2026-11-22T18:00:00-06:00"),
        policy,
        account,
        amount_cents=100_000,
        method="card",
    )
    session.commit()

    run(session, MONDAY_1000, policy)

    (message,) = company_messages(session)
    link = [p["text"] for p in template_body(message)["components"][0]["parameters"]][4]
    assert link.endswith(earlier.token)
    assert len(session.scalars(select(PaymentCode)).all()) == 1


def test_running_twice_the_same_day_sends_nothing_twice(session, policy) -> None:
    clock = at(MONDAY_1000)
    for offset in STEPS:
        add_account(session, clock, due_date=due_for(offset))

    first = run(session, MONDAY_1000, policy)
    second = run(session, "2026-11-23T11:00:00-06:00", policy)
    third = run(session, "2026-11-23T18:45:00-06:00", policy)

    assert first.count(Outcome.SENT) == 6
    assert second.count(Outcome.SENT) == third.count(Outcome.SENT) == 0
    assert second.count(Outcome.ALREADY_SENT) == 6
    assert len(company_messages(session)) == 6
    assert len(audit(session, "company_message")) == 6


def test_a_reminder_delayed_at_night_goes_out_when_the_window_opens(session, policy) -> None:
    clock = at(MONDAY_2130)
    account = add_account(session, clock, due_date=due_for(3))

    night = run(session, MONDAY_2130, policy)
    morning = run(session, "2026-11-24T07:05:00-06:00", policy)

    assert outcomes(night)[account.external_id] == (Outcome.DELAYED, "outside_hours")
    assert night.lines[0].until is not None and night.lines[0].until.hour == 7
    assert outcomes(morning)[account.external_id] == (Outcome.SENT, None)
    (row,) = sends(session)
    assert (row.scheduled_for, row.status) == (MONDAY, "sent")
    assert len(audit(session, "delay")) == 1


def test_a_step_older_than_the_catch_up_days_is_never_sent(session, policy) -> None:
    clock = at(MONDAY_1000)
    add_account(session, clock, due_date=MONDAY - timedelta(days=20))  # D+15 was 5 days ago

    report = run(session, MONDAY_1000, policy)

    assert report.lines == []


def test_opted_out_and_disputed_accounts_are_suppressed_and_audited_once(session, policy) -> None:
    clock = at(MONDAY_1000)
    quiet = add_account(session, clock, due_date=due_for(7))
    disputed = add_account(session, clock, due_date=due_for(15))
    contact = session.scalars(
        select(ContactPoint).where(ContactPoint.debtor_id == quiet.debtor_id)
    ).one()
    opt_out(session, clock, contact.channel, contact.address)
    open_dispute(session, clock, disputed, reason="no es mía")
    session.commit()

    first = run(session, MONDAY_1000, policy)
    run(session, "2026-11-23T11:00:00-06:00", policy)

    assert outcomes(first) == {
        quiet.external_id: (Outcome.SUPPRESSED, "opted_out"),
        disputed.external_id: (Outcome.SUPPRESSED, "dispute_open"),
    }
    assert company_messages(session) == []
    reasons = sorted(e.details["reason"] for e in audit(session, "suppression"))
    assert reasons == ["dispute_open", "opted_out"]  # once each, not once per run


def test_a_dry_run_sends_and_records_nothing(session, policy) -> None:
    clock = at(MONDAY_1000)
    add_account(session, clock, due_date=due_for(0))
    disputed = add_account(session, clock, due_date=due_for(3))
    open_dispute(session, clock, disputed, reason="no")
    session.commit()
    before = len(audit(session, "dispute_opened"))

    report = run(session, MONDAY_1000, policy, dry_run=True)

    assert report.count(Outcome.WOULD_SEND) == 1
    assert report.count(Outcome.SUPPRESSED) == 1
    assert sends(session) == []
    assert company_messages(session) == []
    assert session.scalars(select(PaymentCode)).all() == []
    assert audit(session, "suppression") == [] and len(audit(session, "dispute_opened")) == before


def test_a_promise_is_reminded_the_day_before(session, policy) -> None:
    clock = at(MONDAY_1000)
    account = add_account(session, clock, due_date=date(2026, 11, 2))  # D+21: no step today
    record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 24), amount_cents=50_000
    )
    session.commit()

    report = run(session, MONDAY_1000, policy)

    assert [(line.step, line.outcome) for line in report.lines] == [
        ("promise_reminder", Outcome.SENT)
    ]
    (message,) = company_messages(session)
    params = [p["text"] for p in template_body(message)["components"][0]["parameters"]]
    assert template_body(message)["name"] == "recordatorio_promesa"
    assert params[2:4] == ["$500.00", "24 de noviembre de 2026"]


def test_a_broken_promise_gets_the_follow_up_the_day_after(session, policy) -> None:
    clock = at("2026-11-20T10:00:00-06:00")
    account = add_account(session, clock, due_date=date(2026, 11, 2))
    promise = record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 22), amount_cents=50_000
    )
    session.commit()

    report = run(session, MONDAY_1000, policy)

    assert session.get(Promise, promise.id).status == PromiseStatus.BROKEN.value
    assert report.promises_broken == 1
    assert [(line.step, line.outcome) for line in report.lines] == [
        ("broken_promise", Outcome.SENT)
    ]
    (message,) = company_messages(session)
    assert template_body(message)["name"] == "seguimiento_promesa_incumplida"
    again = run(session, "2026-11-24T10:00:00-06:00", policy)
    assert [line.outcome for line in again.lines if line.step == "broken_promise"] == [
        Outcome.ALREADY_SENT
    ]


def test_a_kept_promise_gets_no_follow_up(session, policy) -> None:
    clock = at("2026-11-20T10:00:00-06:00")
    account = add_account(session, clock, due_date=date(2026, 11, 2))
    record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 22), amount_cents=50_000
    )
    apply_payment(
        session,
        at("2026-11-22T12:00:00-06:00"),
        policy,
        account,
        amount_cents=50_000,
        paid_at=at("2026-11-22T12:00:00-06:00").now_utc(),
        reference="OXXO-1",
        source="import",
    )
    session.commit()

    report = run(session, MONDAY_1000, policy)

    assert report.lines == []
    assert company_messages(session) == []


def test_a_broken_promise_follow_up_delayed_at_night_still_goes_next_morning(
    session, policy
) -> None:
    clock = at("2026-11-20T10:00:00-06:00")
    account = add_account(session, clock, due_date=date(2026, 11, 2))
    record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 22), amount_cents=50_000
    )
    session.commit()

    night = run(session, MONDAY_2130, policy)
    morning = run(session, "2026-11-24T08:00:00-06:00", policy)

    assert outcomes(night)[account.external_id] == (Outcome.DELAYED, "outside_hours")
    assert outcomes(morning)[account.external_id] == (Outcome.SENT, None)


def test_a_pending_promise_holds_the_regular_reminders(session, policy) -> None:
    clock = at(MONDAY_1000)
    account = add_account(session, clock, due_date=due_for(7))
    record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 28), amount_cents=50_000
    )
    session.commit()

    report = run(session, MONDAY_1000, policy)

    assert outcomes(report)[account.external_id] == (Outcome.SKIPPED, "pending_promise")


def test_one_campaign_message_per_account_per_day(session, policy) -> None:
    clock = at(MONDAY_1000)
    account = add_account(session, clock, due_date=due_for(0))
    record_promise(
        session, clock, policy, account, promised_date=date(2026, 11, 24), amount_cents=50_000
    )
    session.commit()

    report = run(session, MONDAY_1000, policy)

    assert [(line.step, line.outcome, line.reason) for line in report.lines] == [
        ("promise_reminder", Outcome.SENT, None),
        ("due+0", Outcome.SKIPPED, "already_contacted_today"),
    ]


def test_a_chat_held_by_an_agent_gets_no_reminder(session, policy) -> None:
    clock = at(MONDAY_1000)
    account = add_account(session, clock, due_date=due_for(3))
    contact = session.scalars(
        select(ContactPoint).where(ContactPoint.debtor_id == account.debtor_id)
    ).one()
    session.add(
        Conversation(
            channel=contact.channel,
            address=contact.address,
            debtor_id=account.debtor_id,
            account_id=account.id,
            state=ConversationState.AGENT.value,
            verification_failures=0,
            priority=0,
            created_at=clock.now_utc(),
            updated_at=clock.now_utc(),
        )
    )
    session.commit()

    report = run(session, MONDAY_1000, policy)

    assert outcomes(report)[account.external_id] == (Outcome.SKIPPED, "with_agent")


def test_the_weekly_cap_delays_a_campaign_message(session, policy, tmp_path: Path) -> None:
    data = yaml.safe_load((REPO_ROOT / "policy.yml").read_text(encoding="utf-8"))
    data["contact"]["max_company_messages_per_7_days"] = 1
    target = tmp_path / "policy.yml"
    target.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    strict = load_policy(target)
    clock = at(MONDAY_1000)
    account = add_account(session, clock, due_date=due_for(0))
    run(session, "2026-11-20T10:00:00-06:00", strict)  # D-3 on Friday

    report = run(session, MONDAY_1000, strict)

    outcome, reason = outcomes(report)[account.external_id]
    assert (outcome, reason) == (Outcome.DELAYED, "weekly_cap")
    assert report.lines[0].until is not None
    assert report.lines[0].until.date() == date(2026, 11, 27)


def test_reg_f_refuses_to_run_with_a_template_lacking_the_opt_out_text(
    session, tmp_path: Path
) -> None:
    data = yaml.safe_load((REPO_ROOT / "policy.yml").read_text(encoding="utf-8"))
    data["contact"]["profile"] = "reg_f"
    data["templates"]["recordatorio_promesa"]["footer"] = None
    target = tmp_path / "policy.yml"
    target.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    with pytest.raises(CampaignError, match="templates.recordatorio_promesa"):
        run(session, MONDAY_1000, load_policy(target))


def test_rows_remember_why_a_step_did_not_go(session, policy) -> None:
    clock = at(MONDAY_1000)
    account = add_account(session, clock, due_date=due_for(30))
    account.debtor.deceased = True
    session.commit()

    run(session, MONDAY_1000, policy)

    row = session.scalars(select(CampaignSend)).one()
    assert (row.status, row.reason, row.step) == ("suppressed", "deceased", "due+30")


def test_two_runs_at_the_same_moment_send_each_step_once(db_url, session, policy) -> None:
    import threading

    from bot.db.engine import session_factory

    clock = at(MONDAY_1000)
    for offset in STEPS:
        add_account(session, clock, due_date=due_for(offset))
    reports, errors = [], []
    start = threading.Barrier(2)

    def one_run() -> None:
        with session_factory(db_url)() as own:
            start.wait()
            try:
                reports.append(run(own, MONDAY_1000, policy))
            except Exception as exc:  # reported below
                errors.append(exc)

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert sum(report.count(Outcome.SENT) for report in reports) == len(STEPS)
    session.expire_all()
    assert len(company_messages(session)) == len(STEPS)
    assert len(audit(session, "company_message")) == len(STEPS)
