"""Chaos under load on the scaled topology (PostgreSQL + Redis, 2 gateways, 2 Rasa servers).

Simulated debtors chat through signed webhooks while, in turn: a gateway is killed with
SIGKILL and restarted, a Rasa server is killed and restarted, the action server is killed
and restarted, and PostgreSQL is restarted as after a crash. Meanwhile the Graph stand-in
fails 20% of sends (429, 500, or a stall past the client's timeout), every webhook is
delivered twice — the copy up to 3 s later, often after newer messages — and every
payment confirmation is delivered twice to different gateways.

Afterwards: every accepted message was answered exactly once (one set of replies, each
accepted by WhatsApp once), replies arrived in order per conversation, and every payment
was applied once. The one duplicate WhatsApp can see is a send accepted by Meta just before
the gateway that made it was killed (the Cloud API has no idempotency key): the test
allows exactly that case and checks that it is that case.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import datetime, timezone

import httpx
import pytest
from sqlalchemy import func, select

from bot.clock import Clock
from bot.config import Settings
from bot.db.engine import session_factory, session_scope
from bot.db.models import Account, Message, Payment
from bot.domain.accounts import balance_breakdown
from bot.domain.phones import whatsapp_id
from bot.engine.training import latest_model
from bot.payments import get_provider
from bot.payments.local import local_webhook_body, sign_local_webhook
from bot.policy import load_policy
from tests.graph_stub import GraphStub
from tests.load import SCRIPT, LoadDriver, LoadResult, collect
from tests.topology import REPO_ROOT, TOPOLOGY_NOW, Topology, load_debtors, postgres_bin, wait_for

pytestmark = [pytest.mark.rasa, pytest.mark.chaos]

DEBTORS = 24
PAYERS = 8  # debtors whose payment confirmations arrive (twice) during the faults
PAYMENT_CENTS = 125_000


def _settled(db_url: str) -> bool:
    """No inbound message waits to be processed and no reply waits to be sent."""
    with session_factory(db_url)() as session:
        waiting = session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.status.in_(("pending", "processing", "queued", "sending")))
        )
    return waiting == 0


@pytest.fixture(scope="module")
def chaos_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed")
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    model = latest_model(REPO_ROOT, "config_ci.yml")
    if model is None:
        pytest.fail("No trained model: run 'acuerdo train' (make test does).")
    graph = GraphStub(failure_rate=0.2, stall_seconds=2.5).start()
    debtors = load_debtors(DEBTORS, prefix="+52553")
    topology = Topology(
        model=model,
        graph_url=graph.url,
        scaled=True,
        debtors=debtors,
        workdir=tmp_path_factory.mktemp("chaos"),
        extra_env={
            "ACUERDO_SEND_TIMEOUT": "1.5",  # a stalled send times out
            "ACUERDO_RASA_TIMEOUT": "20",
            "ACUERDO_LEASE_SECONDS": "30",  # a dead gateway's claims are taken over after 30 s
            "ACUERDO_RETRY_BASE_SECONDS": "0.3",
            "ACUERDO_RETRY_CAP_SECONDS": "4",
            "ACUERDO_POLL_SECONDS": "0.5",
            "ACUERDO_RATE_LIMIT_MESSAGES": "1000",  # scripted debtors type faster than people
            "TICKET_LOCK_LIFETIME": "20",  # a killed Rasa's ticket locks expire sooner
        },
    )
    topology.start()
    try:
        codes = _issue_payment_codes(topology.db_url, debtors[:PAYERS])
        driver = LoadDriver(
            topology.gateway_urls(),
            graph,
            reply_timeout=25.0,
            duplicate_rate=1.0,
            delivery_deadline=240.0,
        )
        wa_ids = [whatsapp_id(d.phone) for d in debtors]
        result_box: dict[str, LoadResult] = {}
        load = threading.Thread(
            target=lambda: result_box.setdefault("r", driver.run(wa_ids, SCRIPT * 2)),
            daemon=True,
        )
        load.start()
        total = len(wa_ids) * len(SCRIPT) * 2

        def progress(fraction: float) -> None:
            wait_for(
                lambda: _accepted(topology.db_url) >= fraction * total or not load.is_alive(),
                300,
                f"{fraction:.0%} of the messages accepted",
            )

        faults: dict[str, float] = {}
        progress(0.10)
        faults["gateway_killed"] = time.monotonic()
        topology.gateway[0].kill()
        topology.gateway[0].start().wait_ready(60)
        _pay_twice(topology.gateway_urls(), codes)
        progress(0.25)
        faults["rasa_killed"] = time.monotonic()
        topology.rasa[0].kill()
        topology.rasa[0].start()  # loads its model while the other server serves
        progress(0.40)
        faults["actions_killed"] = time.monotonic()
        assert topology.actions is not None
        topology.actions.kill()
        topology.actions.start().wait_ready(60)
        progress(0.55)
        faults["postgres_restarted"] = time.monotonic()
        assert topology.postgres is not None
        topology.postgres.restart()
        topology.rasa[0].wait_ready(400)
        load.join(timeout=900)
        assert not load.is_alive(), "the simulated debtors did not finish"
        wait_for(lambda: _settled(topology.db_url), 300, "every message answered and sent")
        topology.sample_memory()
        yield {
            "topology": topology,
            "graph": graph,
            "result": result_box["r"],
            "codes": codes,
            "faults": faults,
            "debtors": debtors,
        }
    finally:
        topology.stop()
        graph.stop()


def _accepted(db_url: str) -> int:
    try:
        with session_factory(db_url)() as session:
            return int(
                session.scalar(
                    select(func.count()).select_from(Message).where(Message.direction == "in")
                )
                or 0
            )
    except Exception:  # the database is restarting: no progress to report
        return 0


def _issue_payment_codes(db_url: str, debtors: list) -> list[tuple[int, str, int]]:  # type: ignore[type-arg]
    """``(account id, reference, amount)`` of one OXXO code per paying debtor."""
    settings = Settings(ACUERDO_DATABASE_URL=db_url, ACUERDO_SANDBOX=True)  # type: ignore[call-arg]
    clock = Clock.from_setting(TOPOLOGY_NOW, "America/Mexico_City")
    policy = load_policy(str(REPO_ROOT / "policy.yml"))
    codes = []
    with session_scope(db_url) as session:
        for data in debtors:
            account = session.scalars(
                select(Account).where(Account.external_id == data.external_id)
            ).one()
            code = get_provider(settings).issue_code(
                session, clock, policy, account, amount_cents=PAYMENT_CENTS, method="oxxo"
            )
            session.flush()
            codes.append((account.id, code.reference, code.amount_cents))
    return codes


def _pay_twice(gateway_urls: list[str], codes: list[tuple[int, str, int]]) -> None:
    """Each confirmation to both gateways (a provider retrying after a lost answer)."""
    with httpx.Client(timeout=30) as client:
        for index, (_account_id, reference, amount) in enumerate(codes):
            raw = local_webhook_body(
                event_id=f"evt-chaos-{index}",
                reference=reference,
                amount_cents=amount,
                paid_at=datetime(2026, 11, 23, 17, 0, tzinfo=timezone.utc),
            )
            headers = {
                "Content-Type": "application/json",
                "X-Acuerdo-Signature": sign_local_webhook("acuerdo-sandbox-payments-secret", raw),
            }
            for url in gateway_urls:
                response = client.post(
                    f"{url}/webhooks/payments/local", content=raw, headers=headers
                )
                assert response.status_code == 200, response.text


def test_every_webhook_was_accepted(chaos_run) -> None:  # type: ignore[no-untyped-def]
    result: LoadResult = chaos_run["result"]
    assert result.delivery_errors == []
    assert all(sent.accepted for sent in result.sent)
    assert len(result.sent) == DEBTORS * len(SCRIPT) * 2


def test_every_message_is_stored_once_and_answered(chaos_run) -> None:  # type: ignore[no-untyped-def]
    topology: Topology = chaos_run["topology"]
    result: LoadResult = chaos_run["result"]
    outcome = collect(topology.db_url, chaos_run["graph"], result.sent)
    with session_factory(topology.db_url)() as session:
        stored = session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
    assert stored == len(result.sent)  # the second copy of every webhook stored nothing
    unanswered = [
        (sent.wa_id, sent.turn, outcome.inbound[sent.wamid].status)
        for sent in result.sent
        if outcome.inbound[sent.wamid].status != "done"
        or not outcome.replies.get(outcome.inbound[sent.wamid].id)
    ]
    assert unanswered == []


def test_each_reply_reached_whatsapp_once(chaos_run) -> None:  # type: ignore[no-untyped-def]
    topology: Topology = chaos_run["topology"]
    graph: GraphStub = chaos_run["graph"]
    outcome = collect(topology.db_url, graph, chaos_run["result"].sent)
    rows = [row for replies in outcome.replies.values() for row in replies]
    rows += _thank_yous(topology.db_url)
    keys = {str(row.payload["idempotency_key"]): row for row in rows}
    assert all(row.status in ("sent", "delivered", "read") for row in rows)
    missing = [key for key in keys if key not in outcome.accepted_sends]
    assert missing == []
    phantom = [key for key in outcome.accepted_sends if key not in keys]
    assert phantom == []
    killed = chaos_run["faults"]["gateway_killed"]
    for key, sends in outcome.accepted_sends.items():
        if len(sends) == 1:
            continue
        # Only a send Meta accepted just before its gateway died may be repeated: the
        # ledger records the later one, and the first one happened before the kill.
        assert len(sends) == 2, f"{key} sent {len(sends)} times"
        assert sends[0].at <= killed <= sends[1].at
        assert keys[key].external_id == sends[1].accepted_id


def test_replies_arrive_in_order_per_conversation(chaos_run) -> None:  # type: ignore[no-untyped-def]
    topology: Topology = chaos_run["topology"]
    graph: GraphStub = chaos_run["graph"]
    result: LoadResult = chaos_run["result"]
    outcome = collect(topology.db_url, graph, result.sent)
    turn_of = {outcome.inbound[s.wamid].id: s.turn for s in result.sent}
    answers = {
        str(row.payload["idempotency_key"]): inbound_id
        for inbound_id, replies in outcome.replies.items()
        for row in replies
    }
    first_sends = [sends[0] for key, sends in outcome.accepted_sends.items() if key in answers]
    per_person: dict[str, list[int]] = defaultdict(list)
    for request in sorted(first_sends, key=lambda r: r.at):
        key = str(request.body["biz_opaque_callback_data"])
        per_person[str(request.body["to"])].append(turn_of[answers[key]])
    assert len(per_person) == DEBTORS
    for wa_id, turns in per_person.items():
        assert turns == sorted(turns), f"replies to {wa_id[-4:]} out of order: {turns}"


def test_the_rasa_servers_kept_their_trackers_in_postgresql(chaos_run) -> None:  # type: ignore[no-untyped-def]
    """Rasa falls back to an in-memory store silently when its store cannot load."""
    from sqlalchemy import create_engine, text

    topology: Topology = chaos_run["topology"]
    assert topology.postgres is not None
    engine = create_engine(topology.postgres.url("rasa"))
    with engine.connect() as connection:
        senders = connection.execute(text("SELECT count(DISTINCT sender_id) FROM events")).scalar()
    engine.dispose()
    assert senders == DEBTORS
    for service in topology.rasa:
        assert "InMemoryTrackerStore" not in service.log.read_text()


def test_payments_were_applied_once(chaos_run) -> None:  # type: ignore[no-untyped-def]
    topology: Topology = chaos_run["topology"]
    clock = Clock.from_setting(TOPOLOGY_NOW, "America/Mexico_City")
    with session_factory(topology.db_url)() as session:
        for account_id, reference, amount in chaos_run["codes"]:
            payments = list(
                session.scalars(select(Payment).where(Payment.account_id == account_id))
            )
            assert [(p.reference, p.amount_cents) for p in payments] == [(reference, amount)]
            account = session.get(Account, account_id)
            assert account is not None
            assert balance_breakdown(session, account, clock).total_cents == 1_200_000 - amount
        untouched = session.scalars(
            select(Account).where(Account.external_id == chaos_run["debtors"][-1].external_id)
        ).one()
        assert balance_breakdown(session, untouched, clock).total_cents == 1_200_000


def _thank_yous(db_url: str) -> list[Message]:
    with session_factory(db_url)() as session:
        rows = [
            row
            for row in session.scalars(select(Message).where(Message.direction == "out"))
            if "in_reply_to" not in (row.payload or {})
        ]
        session.expunge_all()
    return rows
