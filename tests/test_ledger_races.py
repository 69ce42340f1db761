"""Two payments to one plan at the same time, on PostgreSQL: both are credited in full.

Each thread has its own session, as a payment webhook and a CSV import (or two gateway
processes) do. Both read the account and its plan, wait for each other at a barrier, then
apply their payment and commit. Without row locks the second commit overwrote the first's
credit to the installment (read-modify-write on ``paid_cents``).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.engine import session_factory
from bot.db.migrate import upgrade
from bot.db.models import (
    Account,
    Agreement,
    AgreementStatus,
    Installment,
    Payment,
    SettlementLetter,
)
from bot.domain.debtors import upsert_account
from bot.domain.negotiation import accept_offer, offer_plan
from bot.domain.payments import apply_payment
from bot.policy import Policy
from tests.accounts import account_data

PAID_AT = datetime(2026, 11, 22, 11, 0, tzinfo=ZoneInfo("America/Mexico_City"))


def _plan_on_postgres(url: str, clock: Clock, policy: Policy, installments: int) -> int:
    upgrade(url)
    with session_factory(url)() as session:
        account, _ = upsert_account(
            session,
            clock,
            account_data(external_id="ACC-RACE", full_name="Deudor Carrera", phone="+525512340001"),
        )
        accept_offer(
            session, clock, policy, offer_plan(session, clock, policy, account, installments)
        )
        session.commit()
        return account.id


def _pay_together(
    url: str, clock: Clock, policy: Policy, account_id: int, amounts: list[int]
) -> None:
    """Apply ``amounts`` from one thread each; all read the plan before any of them writes."""
    barrier = threading.Barrier(len(amounts), timeout=30)

    def pay(index: int, amount_cents: int) -> None:
        with session_factory(url)() as session:
            account = session.get_one(Account, account_id)
            # What a caller has in hand before applying: the account and its open plan.
            for agreement in account.agreements:
                assert [i.paid_cents for i in agreement.installments]
            barrier.wait()
            apply_payment(
                session,
                clock,
                policy,
                account,
                amount_cents=amount_cents,
                paid_at=PAID_AT,
                reference=f"RACE-{index}",
                source="import" if index % 2 else "provider:local",
            )
            session.commit()

    with ThreadPoolExecutor(len(amounts)) as pool:
        for future in [pool.submit(pay, n, amount) for n, amount in enumerate(amounts)]:
            future.result()


def _credited(session: Session, account_id: int) -> int:
    return int(
        session.scalar(
            select(func.sum(Installment.paid_cents))
            .join(Agreement)
            .where(Agreement.account_id == account_id)
        )
        or 0
    )


def test_concurrent_payments_to_one_installment_are_both_credited(
    postgres_url: str, clock: Clock, policy: Policy
) -> None:
    account_id = _plan_on_postgres(postgres_url, clock, policy, installments=3)

    _pay_together(postgres_url, clock, policy, account_id, [100_000, 150_000])

    with session_factory(postgres_url)() as session:
        assert session.scalar(select(func.count()).select_from(Payment)) == 2
        first = session.scalars(
            select(Installment).join(Agreement).where(Agreement.account_id == account_id)
        ).first()
        assert first is not None and first.number == 1
        assert first.paid_cents == 250_000
        assert _credited(session, account_id) == 250_000


def test_concurrent_payments_that_span_installments_complete_the_plan(
    postgres_url: str, clock: Clock, policy: Policy
) -> None:
    """$12,000.00 in two installments of $6,000.00, paid as $7,000.00 and $5,000.00 at once."""
    account_id = _plan_on_postgres(postgres_url, clock, policy, installments=2)

    _pay_together(postgres_url, clock, policy, account_id, [700_000, 500_000])

    with session_factory(postgres_url)() as session:
        assert _credited(session, account_id) == 1_200_000
        (agreement,) = session.scalars(
            select(Agreement).where(Agreement.account_id == account_id)
        ).all()
        assert agreement.status == AgreementStatus.COMPLETED.value
        assert [i.paid_cents for i in agreement.installments] == [600_000, 600_000]


def test_two_payoffs_at_the_same_time_issue_one_carta_finiquito(
    postgres_url: str, clock: Clock, policy: Policy
) -> None:
    """Both payments would pay the $12,000.00 off; the one that closes it issues the letter."""
    account_id = _plan_on_postgres(postgres_url, clock, policy, installments=2)

    _pay_together(postgres_url, clock, policy, account_id, [1_200_000, 1_200_000])

    with session_factory(postgres_url)() as session:
        assert session.scalar(select(func.count()).select_from(Payment)) == 2
        (letter,) = session.scalars(select(SettlementLetter)).all()
        assert (letter.account_id, letter.total_paid_cents) == (account_id, 1_200_000)
