"""Promises to pay: recorded within policy, judged kept or broken from payments."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.models import Account, Payment, Promise, PromiseStatus
from bot.domain.accounts import balance_breakdown
from bot.domain.audit import record_audit
from bot.domain.errors import PromiseRejected
from bot.domain.money import format_money
from bot.policy import Policy


def record_promise(
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    *,
    promised_date: date,
    amount_cents: int,
    made_by: str = "bot",
    conversation_id: int | None = None,
) -> Promise:
    """Record a promise to pay, or raise :class:`PromiseRejected` with the policy reason.

    A new promise replaces the account's pending ones (they are cancelled).
    """
    today = clock.today()
    horizon = today + timedelta(days=policy.promises.horizon_days)
    owed = balance_breakdown(session, account, clock).total_cents
    if owed <= 0:
        raise PromiseRejected("nothing_owed", "the account has no balance")
    if promised_date < today:
        raise PromiseRejected("date_in_past", f"{promised_date} is already past")
    if promised_date > horizon:
        raise PromiseRejected(
            "date_beyond_horizon", f"{promised_date} is after the horizon {horizon}"
        )
    minimum = min(policy.promises.min_amount_cents, owed)
    if amount_cents < minimum:
        raise PromiseRejected(
            "amount_below_minimum", f"{format_money(amount_cents)} < {format_money(minimum)}"
        )
    if amount_cents > owed:
        raise PromiseRejected("amount_above_balance", f"the balance is {format_money(owed)}")
    for pending in pending_promises(session, account.id):
        pending.status = PromiseStatus.CANCELLED.value
        pending.resolved_at = clock.now_utc()
    promise = Promise(
        account_id=account.id,
        promised_date=promised_date,
        amount_cents=amount_cents,
        status=PromiseStatus.PENDING.value,
        made_by=made_by,
        conversation_id=conversation_id,
        created_at=clock.now_utc(),
    )
    session.add(promise)
    session.flush()
    record_audit(
        session,
        clock,
        actor=made_by,
        action="promise",
        account_id=account.id,
        conversation_id=conversation_id,
        promise_id=promise.id,
        promised_date=promised_date.isoformat(),
        amount_cents=amount_cents,
    )
    return promise


def pending_promises(session: Session, account_id: int) -> list[Promise]:
    return list(
        session.scalars(
            select(Promise)
            .where(Promise.account_id == account_id, Promise.status == PromiseStatus.PENDING.value)
            .order_by(Promise.promised_date)
        )
    )


def _paid_towards(session: Session, promise: Promise, until: date, tz_clock: Clock) -> int:
    end = datetime.combine(until + timedelta(days=1), time(0), tzinfo=tz_clock.tz)
    paid = session.scalar(
        select(func.coalesce(func.sum(Payment.amount_cents), 0)).where(
            Payment.account_id == promise.account_id,
            Payment.paid_at >= promise.created_at - timedelta(days=1),
            Payment.paid_at < end,
        )
    )
    return int(paid or 0)


def mark_kept_promises(
    session: Session, clock: Clock, policy: Policy, account_id: int
) -> list[Promise]:
    """Mark pending promises of an account that its payments now cover as kept."""
    kept = []
    for promise in pending_promises(session, account_id):
        until = promise.promised_date + timedelta(days=policy.promises.grace_days)
        if _paid_towards(session, promise, until, clock) >= promise.amount_cents:
            promise.status = PromiseStatus.KEPT.value
            promise.resolved_at = clock.now_utc()
            kept.append(promise)
            record_audit(
                session,
                clock,
                actor="system",
                action="promise_kept",
                account_id=account_id,
                promise_id=promise.id,
            )
    return kept


def settle_due_promises(session: Session, clock: Clock, policy: Policy) -> list[Promise]:
    """Judge every pending promise ``grace_days`` after its date; return the broken ones.

    With the default grace of 1 day a promise is judged the day after its date
    (CONTRACT 6.5: "the day after, it is marked kept or broken").
    """
    cutoff = clock.today() - timedelta(days=policy.promises.grace_days)
    due = session.scalars(
        select(Promise).where(
            Promise.status == PromiseStatus.PENDING.value, Promise.promised_date <= cutoff
        )
    ).all()
    broken = []
    for promise in due:
        until = promise.promised_date + timedelta(days=policy.promises.grace_days)
        if _paid_towards(session, promise, until, clock) >= promise.amount_cents:
            promise.status = PromiseStatus.KEPT.value
            action = "promise_kept"
        else:
            promise.status = PromiseStatus.BROKEN.value
            broken.append(promise)
            action = "promise_broken"
        promise.resolved_at = clock.now_utc()
        record_audit(
            session,
            clock,
            actor="system",
            action=action,
            account_id=promise.account_id,
            promise_id=promise.id,
        )
    return broken
