"""The results dashboard: numbers from a known ledger, the CSV export, and login."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.campaigns.runner import run_campaign
from bot.channels.base import Delivery, InboundKind, InboundMessage, StatusUpdate
from bot.clock import Clock
from bot.console_users import create_console_user
from bot.conversation.inbox import store_delivery
from bot.dashboard.metrics import Metrics, collections_metrics
from bot.db.models import Account, ContactPoint, Conversation, Message
from bot.domain.conversations import check_identity, open_dispute, opt_out, request_handoff
from bot.domain.negotiation import accept_offer, offer_settlement
from bot.domain.payments import apply_payment
from bot.domain.promises import record_promise
from bot.policy import Policy, load_policy
from tests.campaign_support import add_account, at, campaign_ctx, sign_in

POLICY = load_policy(Path(__file__).resolve().parents[1] / "policy.yml")
MONDAY = "2026-11-23T10:00:00-06:00"
USER, PASSWORD = "supervisora", "clave-segura-2026"
_wamids = iter(range(1, 10_000))


def contact_of(session: Session, account: Account) -> ContactPoint:
    return session.scalars(
        select(ContactPoint).where(ContactPoint.debtor_id == account.debtor_id)
    ).one()


def conversation_of(session: Session, account: Account) -> Conversation:
    contact = contact_of(session, account)
    return session.scalars(
        select(Conversation).where(Conversation.address == contact.address)
    ).one()


def sent_message(session: Session, account: Account) -> Message:
    """The reminder's outbox row, marked sent as the outbox would (with a message id)."""
    conversation = conversation_of(session, account)
    row = session.scalars(
        select(Message).where(
            Message.conversation_id == conversation.id, Message.status == "queued"
        )
    ).one()
    row.status, row.external_id = "sent", f"wamid.known.{next(_wamids)}"
    session.commit()
    return row


def receipts(session: Session, clock: Clock, row: Message, *statuses: str) -> None:
    store_delivery(
        session,
        clock,
        Delivery(statuses=[StatusUpdate("whatsapp", row.external_id or "", s) for s in statuses]),
        policy=POLICY,
    )


def writes(session: Session, clock: Clock, account: Account, words: str) -> None:
    contact = contact_of(session, account)
    inbound = InboundMessage(
        channel="whatsapp",
        external_id=f"wamid.in.{next(_wamids)}",
        sender=contact.address,
        kind=InboundKind.TEXT,
        text=words,
    )
    store_delivery(session, clock, Delivery(messages=[inbound]), policy=POLICY)


def pay(session: Session, policy: Policy, account: Account, when: str, cents: int) -> None:
    clock = at(when)
    apply_payment(
        session,
        clock,
        policy,
        account,
        amount_cents=cents,
        paid_at=clock.now_utc(),
        reference=f"REF-{next(_wamids)}",
        source="import",
    )
    session.commit()


@pytest.fixture
def ledger(session: Session, policy: Policy) -> dict[str, Account]:
    """A known history: who got which reminder and what each debtor did after it."""
    # Nov 10: the only account then gets its due-date reminder; it pays 10 days later.
    late = add_account(session, at("2026-11-09"), due_date=date(2026, 11, 10))
    run_campaign(session, campaign_ctx(at("2026-11-10T10:00:00-06:00"), policy))
    sent_message(session, late)
    pay(session, policy, late, "2026-11-20T12:00:00-06:00", 30_000)

    clock = at("2026-11-22")
    people = {
        "promise": add_account(session, clock, due_date=date(2026, 11, 20)),  # D+3
        "agent": add_account(session, clock, due_date=date(2026, 11, 26)),  # D-3
        "deal": add_account(session, clock, due_date=date(2026, 11, 16)),  # D+7
        "baja": add_account(session, clock, due_date=date(2026, 11, 8)),  # D+15
        "quiet": add_account(session, clock, due_date=date(2026, 11, 23)),  # opted out
        "dispute": add_account(session, clock, due_date=date(2026, 11, 20)),  # disputed
        "organic": add_account(session, clock, due_date=date(2026, 1, 15)),  # no step
        "late": late,
    }
    quiet = contact_of(session, people["quiet"])
    opt_out(session, clock, quiet.channel, quiet.address)
    open_dispute(session, clock, people["dispute"], reason="no es mía")
    create_console_user(session, clock, USER, PASSWORD, "supervisor")
    session.commit()

    run_campaign(session, campaign_ctx(at(MONDAY), policy))
    rows = {
        name: sent_message(session, people[name]) for name in ("promise", "agent", "deal", "baja")
    }

    noon = at("2026-11-23T12:00:00-06:00")
    receipts(session, noon, rows["promise"], "delivered", "read")
    receipts(session, noon, rows["agent"], "delivered")
    receipts(session, noon, rows["deal"], "delivered", "read")
    receipts(session, noon, rows["baja"], "delivered", "read")

    after = at("2026-11-23T13:00:00-06:00")
    writes(session, after, people["promise"], "te pago el miércoles")
    check_identity(
        session,
        after,
        policy,
        conversation_of(session, people["promise"]),
        birth_date=people["promise"].debtor.birth_date,
    )
    record_promise(
        session,
        after,
        policy,
        people["promise"],
        promised_date=date(2026, 11, 25),
        amount_cents=50_000,
    )
    writes(session, after, people["agent"], "quiero hablar con alguien")
    request_handoff(
        session, after, conversation_of(session, people["agent"]), reason="debtor_request"
    )
    offer = offer_settlement(session, after, policy, people["deal"])
    accept_offer(session, after, policy, offer)
    writes(session, after, people["baja"], "BAJA")
    baja = contact_of(session, people["baja"])
    opt_out(session, after, baja.channel, baja.address)
    session.commit()

    pay(session, policy, people["organic"], "2026-11-23T16:00:00-06:00", 100_000)
    pay(session, policy, people["promise"], "2026-11-24T12:00:00-06:00", 50_000)
    return people


def by_key(metrics: Metrics) -> dict[tuple[str, str, str], object]:
    return {(r.day.isoformat(), r.step, r.segment): r for r in metrics.rows}


def test_the_numbers_of_a_known_ledger(session: Session, ledger) -> None:
    metrics = collections_metrics(
        session, at("2026-11-24T13:00:00-06:00"), date(2026, 11, 10), date(2026, 11, 24)
    )
    rows = by_key(metrics)

    promise = rows[("2026-11-23", "due+3", "early")]
    assert (promise.sent, promise.delivered, promise.read, promise.replied) == (1, 1, 1, 1)
    assert (promise.verified, promise.promises_made, promise.promises_kept) == (1, 1, 1)
    assert (promise.recovered_cents, promise.contained, promise.handoffs) == (50_000, 1, 0)

    agent = rows[("2026-11-23", "due-3", "preventive")]
    assert (agent.sent, agent.delivered, agent.read, agent.replied) == (1, 1, 0, 1)
    assert (agent.handoffs, dict(agent.handoffs_by_reason), agent.contained) == (
        1,
        {"debtor_request": 1},
        0,
    )
    assert agent.containment == 0

    deal = rows[("2026-11-23", "due+7", "early")]
    assert (deal.sent, deal.agreements, deal.replied) == (1, 1, 0)

    baja = rows[("2026-11-23", "due+15", "late")]
    assert (baja.sent, baja.replied, baja.opt_outs) == (1, 1, 1)

    organic = rows[("2026-11-23", "none", "none")]
    assert organic.recovered_cents == 100_000 and organic.sent == 0

    # Ten days after its reminder, a payment is no longer the reminder's.
    assert rows[("2026-11-10", "due+0", "preventive")].recovered_cents == 0
    assert rows[("2026-11-20", "none", "none")].recovered_cents == 30_000

    suppressed = {
        key: dict(row.suppressed_by_reason) for key, row in rows.items() if row.suppressed
    }
    assert suppressed == {
        ("2026-11-23", "due+0", "preventive"): {"opted_out": 1},
        ("2026-11-23", "due+3", "early"): {"dispute_open": 1},
    }
    total = metrics.total
    assert (total.sent, total.delivered, total.read, total.replied) == (5, 4, 3, 3)
    assert (total.promises_made, total.promises_kept, total.agreements) == (1, 1, 1)
    assert total.recovered_cents == 180_000
    assert (total.handoffs, total.suppressed) == (1, 2)
    assert total.opt_outs == 2  # the reminded BAJA, and the opt-out of Nov 22 with no reminder
    assert rows[("2026-11-22", "none", "none")].opt_outs == 1
    assert total.containment == pytest.approx(2 / 3)


def test_the_csv_export_has_one_row_per_day_step_and_segment(
    session: Session, ledger, start_gateway
) -> None:
    client = start_gateway()
    sign_in(client, USER, PASSWORD)

    answer = client.get("/dashboard/export.csv?start=2026-11-10&end=2026-11-24")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "acuerdo-resultados-2026-11-10-2026-11-24.csv" in answer.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(answer.text)))
    keys = [(r["day"], r["step"], r["segment"]) for r in table]
    assert len(keys) == len(set(keys))
    row = next(r for r in table if (r["day"], r["step"]) == ("2026-11-23", "due+3"))
    assert row["sent"] == "1" and row["promises_kept"] == "1" and row["recovered"] == "500.00"
    assert row["suppressed_dispute_open"] == "1"
    agent = next(r for r in table if (r["day"], r["step"]) == ("2026-11-23", "due-3"))
    assert agent["handoffs_debtor_request"] == "1" and agent["containment_pct"] == "0.0"
    assert sum(float(r["recovered"]) for r in table) == 1_800.00


def test_the_page_shows_the_totals_and_carries_the_chart_data(
    session: Session, ledger, start_gateway
) -> None:
    client = start_gateway()
    sign_in(client, USER, PASSWORD)

    page = client.get("/dashboard?start=2026-11-10&end=2026-11-24")

    assert page.status_code == 200
    assert "$1,800.00" in page.text  # recovered
    assert 'id="dashboard-data"' in page.text and "/static/chart.umd.js" in page.text
    assert "Pidió hablar con un asesor" in page.text
    assert client.get("/static/chart.umd.js").status_code == 200
    assert client.get("/dashboard/static/dashboard.js").status_code == 200


def test_the_dashboard_and_its_export_need_a_login(session: Session, ledger, start_gateway) -> None:
    client = start_gateway()

    page = client.get("/dashboard", headers={"Accept": "text/html"}, follow_redirects=False)
    export = client.get("/dashboard/export.csv", follow_redirects=False)

    assert page.status_code == 303
    assert page.headers["location"].startswith("/console/login")
    assert export.status_code == 401
    client.cookies.set("acuerdo_console", "forged.cookie.value")
    assert client.get("/dashboard/export.csv").status_code == 401


def test_a_range_that_makes_no_sense_is_refused(session: Session, ledger, start_gateway) -> None:
    client = start_gateway()
    sign_in(client, USER, PASSWORD)

    assert client.get("/dashboard?start=2026-11-24&end=2026-11-01").status_code == 422
    assert client.get("/dashboard?days=0").status_code == 422
    assert client.get("/dashboard?days=400").status_code == 422


def test_an_agent_may_look_too(session: Session, start_gateway) -> None:
    create_console_user(session, at("2026-11-23"), "agente", "clave-del-agente", "agent")
    session.commit()
    client = start_gateway()
    sign_in(client, "agente", "clave-del-agente")

    page = client.get("/dashboard")

    assert page.status_code == 200
    assert "Todavía no hay actividad" in page.text
