"""What is due today: reminder steps by due date, promise reminders, broken-promise follow-ups.

Everything is judged on the debtor's local date. A step is *current* from its day until the
next step's day, for at most ``reminders.catch_up_days`` days: a reminder delayed by the
hours, a holiday or the weekly cap still goes out on a later day, but a stale one never
does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.clock import Clock
from bot.compliance import Kind, debtor_zone
from bot.db.models import Account, Promise, PromiseStatus
from bot.policy import Policy, ReminderStep

PROMISE_REMINDER = "promise_reminder"
BROKEN_PROMISE = "broken_promise"
PROMISE_SEGMENT = "promise"

# Lower goes first when one account has several things due the same day.
PRIORITY = {BROKEN_PROMISE: 0, PROMISE_REMINDER: 1}
REMINDER_PRIORITY = 2


@dataclass(frozen=True)
class DueItem:
    """One message the schedule wants to send to one account today."""

    account: Account
    step: str  # due-3, due+0, due+7, promise_reminder, broken_promise
    segment: str  # preventive | early | late | promise
    template: str
    scheduled_for: date
    kind: Kind
    promise: Promise | None = None

    @property
    def priority(self) -> int:
        return PRIORITY.get(self.step, REMINDER_PRIORITY)


def step_name(offset_days: int) -> str:
    """``-3`` → ``due-3``; ``0`` → ``due+0``; ``7`` → ``due+7``."""
    return f"due{offset_days:+d}"


def local_today(clock: Clock, account: Account) -> date:
    return clock.now().astimezone(debtor_zone(account.debtor, clock)).date()


def current_step(due_date: date, today: date, policy: Policy) -> tuple[ReminderStep, date] | None:
    """The schedule step in force for ``due_date`` on ``today``, with its day."""
    steps = sorted(policy.reminders.schedule, key=lambda s: s.offset_days)
    current: tuple[ReminderStep, date] | None = None
    for step in steps:
        day = due_date + timedelta(days=step.offset_days)
        if day <= today:
            current = (step, day)
    if current is None or (today - current[1]).days > policy.reminders.catch_up_days:
        return None
    return current


def _candidate_due_dates(today: date, policy: Policy) -> set[date]:
    """Due dates that may have a step in force around ``today`` (any debtor zone)."""
    span = policy.reminders.catch_up_days
    return {
        today + timedelta(days=shift) - timedelta(days=step.offset_days + back)
        for step in policy.reminders.schedule
        for back in range(span + 1)
        for shift in (-1, 0, 1)
    }


def reminder_items(session: Session, clock: Clock, policy: Policy) -> list[DueItem]:
    """The schedule steps in force today, one per account at most."""
    accounts = session.scalars(
        select(Account)
        .where(Account.due_date.in_(sorted(_candidate_due_dates(clock.today(), policy))))
        .options(selectinload(Account.debtor))
        .order_by(Account.id)
    ).all()
    items = []
    for account in accounts:
        found = current_step(account.due_date, local_today(clock, account), policy)
        if found is None:
            continue
        step, day = found
        items.append(
            DueItem(
                account=account,
                step=step_name(step.offset_days),
                segment=step.segment,
                template=step.template,
                scheduled_for=day,
                kind="reminder",
            )
        )
    return items


def promise_items(session: Session, clock: Clock, policy: Policy) -> list[DueItem]:
    """Reminders of pending promises (the day before, or on the day if that one was missed)
    and follow-ups of broken ones (from the day they were judged, for the catch-up days)."""
    today = clock.today()
    span = policy.reminders.catch_up_days
    pending = session.scalars(
        select(Promise)
        .where(
            Promise.status == PromiseStatus.PENDING.value,
            Promise.promised_date.between(today - timedelta(days=1), today + timedelta(days=2)),
        )
        .order_by(Promise.id)
    ).all()
    items = []
    for promise in pending:
        account = promise.account
        day_before = promise.promised_date - timedelta(days=1)
        if day_before <= local_today(clock, account) <= promise.promised_date:
            items.append(
                DueItem(
                    account=account,
                    step=PROMISE_REMINDER,
                    segment=PROMISE_SEGMENT,
                    template=policy.reminders.promise_reminder_template,
                    scheduled_for=day_before,
                    kind="promise_reminder",
                    promise=promise,
                )
            )
    broken = session.scalars(
        select(Promise)
        .where(
            Promise.status == PromiseStatus.BROKEN.value,
            Promise.resolved_at >= clock.now_utc() - timedelta(days=span + 2),
        )
        .order_by(Promise.id)
    ).all()
    for promise in broken:
        account = promise.account
        judged = promise.promised_date + timedelta(days=policy.promises.grace_days)
        resolved = promise.resolved_at or clock.now_utc()
        day = max(judged, resolved.astimezone(debtor_zone(account.debtor, clock)).date())
        if 0 <= (local_today(clock, account) - day).days <= span:
            items.append(
                DueItem(
                    account=account,
                    step=BROKEN_PROMISE,
                    segment=PROMISE_SEGMENT,
                    template=policy.reminders.broken_promise_template,
                    scheduled_for=day,
                    kind="broken_promise",
                    promise=promise,
                )
            )
    return items
