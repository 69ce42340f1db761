"""The carta finiquito in the ledger: issued once, by the payment that closes the account."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.db.engine import session_factory
from bot.db.models import Account, AuditEntry, LetterKind, SettlementLetter
from bot.domain.negotiation import accept_offer, offer_settlement
from bot.domain.payments import apply_payment
from bot.domain.settlement_letters import (
    ALPHABET,
    find_letter_by_code,
    grouped_code,
    letter_facts,
    letter_of_account,
    normalize_code,
)
from bot.importers.csv_rows import open_csv
from bot.importers.payments import REQUIRED_COLUMNS, import_payments
from bot.payments.local import LocalPaymentProvider, local_webhook_body
from bot.payments.reconcile import apply_payment_event
from bot.policy import Policy

OWED = 1_200_000  # what tests/accounts.py's sample account owes


@pytest.fixture
def account(make_account: Callable[..., Account]) -> Account:
    return make_account(external_id="4152-3100-9876-5678", full_name="María José Núñez Peña")


def pay(
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    amount_cents: int,
    reference: str,
    **kw: object,
) -> SettlementLetter | None:
    applied = apply_payment(
        session,
        clock,
        policy,
        account,
        amount_cents=amount_cents,
        paid_at=clock.now_utc(),
        reference=reference,
        source="import",
        **kw,  # type: ignore[arg-type]
    )
    session.commit()
    return applied.letter


def letters(session: Session) -> list[SettlementLetter]:
    return list(session.scalars(select(SettlementLetter)))


def test_the_payment_that_pays_the_balance_off_issues_one_letter_in_full(
    session: Session, clock: Clock, policy: Policy, account: Account
) -> None:
    assert pay(session, clock, policy, account, 200_000, "DEP-1") is None  # still owes

    letter = pay(session, clock, policy, account, OWED - 200_000, "DEP-2")

    assert letter is not None and letter.kind == LetterKind.PAID_IN_FULL.value
    assert letters(session) == [letter]
    facts = letter_facts(letter)
    assert facts.debtor_name == "María José Núñez Peña"
    assert facts.account_last4 == "5678"
    assert facts.total_paid_cents == OWED
    assert [(p.amount_cents, p.reference) for p in facts.payments] == [
        (200_000, "DEP-1"),
        (OWED - 200_000, "DEP-2"),
    ]
    assert facts.paid_off_on == clock.today() == facts.issued_on
    assert "9876" not in str(letter.details)  # nothing but the last 4 digits is kept
    issued = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "settlement_letter_issued")
    ).one()
    assert issued.details["letter_id"] == letter.id


def test_a_payment_after_payoff_or_the_same_payment_again_issues_no_second_letter(
    session: Session, clock: Clock, policy: Policy, account: Account
) -> None:
    first = pay(session, clock, policy, account, OWED, "DEP-1")
    assert first is not None

    assert pay(session, clock, policy, account, OWED, "DEP-1") is None  # the same line again
    assert pay(session, clock, policy, account, 50_000, "DEP-EXTRA") is None  # money after

    assert letters(session) == [first]
    assert letter_facts(first).total_paid_cents == OWED  # what the letter says is frozen


def test_a_redelivered_provider_event_issues_no_second_letter(
    session: Session, clock: Clock, policy: Policy, account: Account
) -> None:
    provider = LocalPaymentProvider(webhook_secret="s", link_secret="l")
    code = provider.issue_code(session, clock, policy, account, amount_cents=OWED, method="spei")
    session.commit()
    body = local_webhook_body(
        event_id="evt-1", reference=code.reference, amount_cents=OWED, paid_at=clock.now_utc()
    )
    (event,) = provider.parse_webhook(body)

    first = apply_payment_event(session, clock, policy, event)
    again = apply_payment_event(session, clock, policy, event)
    session.commit()

    assert first is not None and first.letter is not None
    assert again is not None and not again.created and again.letter is None
    assert len(letters(session)) == 1
    # A SPEI payment is shown by the CLABE the debtor transferred to.
    assert letter_facts(first.letter).payments[0].reference == code.clabe


def test_completing_a_settlement_agreement_issues_a_settlement_letter(
    session: Session, clock: Clock, policy: Policy, account: Account
) -> None:
    offer = offer_settlement(session, clock, policy, account)
    agreement = accept_offer(session, clock, policy, offer)
    session.commit()
    assert agreement.total_cents < OWED  # a quita

    letter = pay(session, clock, policy, account, agreement.total_cents, "QUITA-1")

    assert letter is not None and letter.kind == LetterKind.SETTLEMENT.value
    facts = letter_facts(letter)
    assert facts.agreement_total_cents == agreement.total_cents
    assert facts.original_balance_cents == OWED
    assert facts.total_paid_cents == agreement.total_cents


def test_paying_off_through_a_csv_import_issues_the_letter_too(
    db_url: str, clock: Clock, policy: Policy, account: Account, tmp_path: Path
) -> None:
    csv = tmp_path / "pagos.csv"
    csv.write_text(
        "account_id,amount,paid_at,reference\n"
        f"{account.external_id},12000.00,{(clock.today() - timedelta(days=1)).isoformat()},R-1\n",
        encoding="utf-8",
    )

    for _ in range(2):  # the same file twice
        import_payments(session_factory(db_url), clock, policy, open_csv(csv, REQUIRED_COLUMNS))

    with session_factory(db_url)() as session:
        assert session.scalar(select(func.count()).select_from(SettlementLetter)) == 1
        letter = letter_of_account(session, account.id)
        assert letter is not None and letter.kind == LetterKind.PAID_IN_FULL.value


def test_codes_are_random_typable_and_read_the_way_people_type_them(
    session: Session, clock: Clock, policy: Policy, account: Account
) -> None:
    letter = pay(session, clock, policy, account, OWED, "DEP-1")
    assert letter is not None
    code = letter.verification_code
    assert len(code) == 16 and set(code) <= set(ALPHABET)
    shown = grouped_code(code)
    assert len(shown.split("-")) == 4

    for typed in (code, code.lower(), shown, shown.lower(), " ".join(shown.split("-"))):
        assert find_letter_by_code(session, typed) == letter
    assert normalize_code("0O1IL" + code[5:]) == "00111" + code[5:]  # O/0, I/L/1 confusions
    for wrong in ("", "abc", code[:-1], code + "X", "U" * 16, "<script>", "%" * 500):
        assert find_letter_by_code(session, wrong) is None
