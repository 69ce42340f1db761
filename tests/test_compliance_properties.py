"""Properties of the compliance gate, for any clock and any portfolio (hypothesis).

- nothing is sent outside the contact window of the debtor's own time zone, on a day
  without contact or on a holiday;
- nothing is sent to a number after it opted out (or to a disputed, deceased… account);
- no account ever gets more company-started messages than the cap in any 7 days;
- no reminder step is sent twice.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.campaigns.runner import run_campaign
from bot.clock import Clock
from bot.compliance import (
    COMPANY_MESSAGE,
    ContactRules,
    Verdict,
    closed_reason,
    company_messages_since,
    contact_rules,
    decide,
    record_company_message,
)
from bot.db.engine import session_factory
from bot.db.models import AuditEntry, CampaignSend, ContactPoint, Debtor
from bot.domain.conversations import open_dispute, opt_out
from bot.policy import Policy
from tests.campaign_support import add_account, campaign_ctx, company_messages

ZONES = [None, "America/Tijuana", "America/Cancun", "America/Hermosillo", "America/Mexico_City"]
START = datetime(2026, 11, 1, 0, 0, tzinfo=timezone.utc)
SLOW = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

instants = st.integers(min_value=0, max_value=60 * 24 * 75).map(
    lambda minutes: START + timedelta(minutes=minutes)
)
sometimes = st.integers(min_value=0, max_value=3).map(lambda n: n == 3)  # true about 1 in 4
# Minutes after the start: any moment, or (2 times in 3) office hours, so things get sent.
office_hours = st.tuples(st.integers(0, 20), st.integers(60 * 14, 60 * 26)).map(
    lambda t: t[0] * 1440 + t[1]
)
run_minutes = st.one_of(
    st.integers(min_value=0, max_value=60 * 24 * 21), office_hours, office_hours
)


def clock_at(moment: datetime) -> Clock:
    return Clock(tz=ZoneInfo("America/Mexico_City"), pinned=moment)


def local(moment: datetime, debtor: Debtor) -> datetime:
    return moment.astimezone(ZoneInfo(debtor.timezone or "America/Mexico_City"))


def inside_window(moment: datetime, debtor: Debtor, rules: ContactRules) -> bool:
    return closed_reason(local(moment, debtor), rules) is None


def contact_of(session: Session, debtor_id: int) -> ContactPoint:
    return session.scalars(select(ContactPoint).where(ContactPoint.debtor_id == debtor_id)).one()


# -- the gate alone ----------------------------------------------------------------------
@SLOW
@given(
    now=instants,
    zone=st.sampled_from(ZONES),
    opted_out=sometimes,
    disputed=sometimes,
    earlier=st.one_of(
        st.lists(st.integers(min_value=1, max_value=60 * 24 * 8), max_size=3),
        st.lists(st.integers(min_value=1, max_value=60 * 24 * 8), min_size=6, max_size=12),
    ),
)
def test_the_gate_never_lets_a_message_through_that_breaks_a_rule(
    session, policy, now, zone, opted_out, disputed, earlier
) -> None:
    clock = clock_at(now)
    account = add_account(session, clock, timezone=zone)
    contact = contact_of(session, account.debtor_id)
    for minutes in earlier:
        before = clock_at(now - timedelta(minutes=minutes))
        record_company_message(session, before, account, contact, "reminder", message_id=None)
    if opted_out:
        opt_out(session, clock, contact.channel, contact.address)
    if disputed:
        open_dispute(session, clock, account, reason="no es mía")
    rules = contact_rules(policy)

    decision = decide(session, clock, policy, account, contact, "reminder")

    recent = company_messages_since(session, account.id, now - timedelta(days=7))
    if decision.verdict == Verdict.SEND:
        assert inside_window(now, account.debtor, rules)
        assert not opted_out and not disputed
        assert len(recent) < rules.max_per_7_days
    elif decision.verdict == Verdict.DELAY:
        assert decision.until is not None and decision.until >= now
        assert inside_window(decision.until, account.debtor, rules)
        event(f"delayed: {decision.reason}")
        if decision.reason == "weekly_cap":
            until_utc = decision.until.astimezone(timezone.utc)
            later = company_messages_since(session, account.id, until_utc - timedelta(days=7))
            assert len(later) < rules.max_per_7_days
    else:
        assert opted_out or disputed
    event(f"verdict: {decision.verdict.value}")
    session.rollback()


# -- whole campaigns over weeks -------------------------------------------------------------
@dataclass(frozen=True)
class Debt:
    due_in_days: int
    zone: str | None
    disputed: bool
    opt_out_at_run: int | None
    agent_messages: tuple[int, ...]  # minutes after the start: agents' own templates


debts = st.builds(
    Debt,
    due_in_days=st.integers(min_value=-20, max_value=12),
    zone=st.sampled_from(ZONES),
    disputed=sometimes,
    opt_out_at_run=st.none() | st.integers(min_value=0, max_value=11),
    agent_messages=st.one_of(
        st.just(()),
        st.lists(st.integers(min_value=0, max_value=60 * 24 * 20), min_size=4, max_size=12).map(
            tuple
        ),
    ),
)


@SLOW
@given(
    portfolio=st.lists(debts, min_size=1, max_size=5),
    runs=st.lists(run_minutes, min_size=1, max_size=12),
)
def test_campaigns_respect_window_opt_out_cap_and_run_once(
    db_url, policy: Policy, portfolio, runs
) -> None:
    template = Path(db_url.removeprefix("sqlite:///"))
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "acuerdo.db"
        shutil.copy(template, copy)
        with session_factory(f"sqlite:///{copy}")() as session:
            _simulate(session, policy, portfolio, sorted(set(runs)))


def _simulate(session: Session, policy: Policy, portfolio: list[Debt], runs: list[int]) -> None:
    rules = contact_rules(policy)
    base = START + timedelta(days=2)
    setup = clock_at(base)
    opt_outs: dict[int, datetime] = {}
    accounts = []
    for debt in portfolio:
        account = add_account(
            session,
            setup,
            timezone=debt.zone,
            due_date=base.date() + timedelta(days=debt.due_in_days),
        )
        if debt.disputed:
            open_dispute(session, setup, account, reason="no es mía")
        contact = contact_of(session, account.debtor_id)
        for minutes in debt.agent_messages:
            at_ = clock_at(base + timedelta(minutes=minutes, seconds=30))
            record_company_message(
                session, at_, account, contact, "agent_template", message_id=None
            )
        accounts.append((account, contact, debt))
    session.commit()

    for index, minutes in enumerate(runs):
        clock = clock_at(base + timedelta(minutes=minutes))
        for _account, contact, debt in accounts:
            if debt.opt_out_at_run == index and contact.id not in opt_outs:
                opt_out(session, clock, contact.channel, contact.address)
                opt_outs[contact.id] = clock.now_utc()
        session.commit()
        run_campaign(session, campaign_ctx(clock, policy))

    by_account = {account.id: (account, contact, debt) for account, contact, debt in accounts}
    messages = company_messages(session)
    event(f"messages sent: {min(len(messages), 3)}{'+' if len(messages) >= 3 else ''}")
    for message in messages:
        account, contact, debt = by_account[message.payload["account_id"]]
        assert inside_window(message.created_at, account.debtor, rules), message.created_at
        assert not debt.disputed
        if contact.id in opt_outs:
            assert message.created_at < opt_outs[contact.id]

    entries = session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == COMPANY_MESSAGE, AuditEntry.actor == "campaign"
        )
    ).all()
    for entry in entries:
        earlier = company_messages_since(session, entry.account_id, entry.at - timedelta(days=7))
        others = [at_ for at_ in earlier if at_ <= entry.at]
        assert len(others) - 1 < rules.max_per_7_days  # itself excluded

    sent = session.scalars(select(CampaignSend).where(CampaignSend.status == "sent")).all()
    keys = Counter((s.account_id, s.step, s.scheduled_for) for s in sent)
    assert all(count == 1 for count in keys.values())
    assert len(sent) == len(company_messages(session))
    assert all(isinstance(s.scheduled_for, date) for s in sent)
