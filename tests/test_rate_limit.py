"""A flood from one number is throttled with one polite notice; other people are unaffected.

The limit is decided from the ``messages`` table (arrivals per conversation in a window of
real time), so it holds across gateway processes sharing one database. Here the window is
a few seconds and every flood is posted well inside it; nothing waits on a guess, only on
conditions (replies sent, rows settled, the window's end on the wall clock).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.conversation.rate_limit import arrival
from bot.conversation.replies import load_replies
from bot.conversation.tuning import Tuning
from bot.db.engine import session_factory
from bot.db.migrate import upgrade
from bot.db.models import AuditEntry, Message
from bot.domain.phones import whatsapp_id
from tests.conftest_gateway import (
    FAST,
    PHONE,
    PINNED_NOW,
    WA_ID,
    envelope,
    rows,
    signed_post,
    text,
    wait_inbound_settled,
    wait_outbound_settled,
)
from tests.graph_stub import GraphStub, wait_until
from tests.rasa_standin import RasaStandIn
from tests.test_gateway_processes import GatewayProcess, free_port, post_signed

pytest_plugins = ["tests.conftest_gateway"]

LIMIT = 5
WINDOW = 4.0  # seconds; each flood below is posted in a fraction of it
OTHER_PHONE = "+525512340002"
OTHER_WA_ID = whatsapp_id(OTHER_PHONE)
NOTICE = load_replies().rate_limited
LIMITED = dataclasses.replace(FAST, rate_limit_messages=LIMIT, rate_limit_seconds=WINDOW)


def _flood(words: str, count: int, wa_id: str = WA_ID) -> dict:
    """One webhook delivery with ``count`` texts from ``wa_id``."""
    return envelope([text(f"{words} {n}", wa_id=wa_id) for n in range(1, count + 1)], wa_id=wa_id)


def _rasa_heard(standin: RasaStandIn, phone: str) -> list[str]:
    return [str(r["message"]) for r in standin.requests if r["sender"] == phone]


def _sent_to(graph: GraphStub, wa_id: str) -> list[str]:
    return graph.texts_to(wa_id)


def _arrivals(messages: list[Message]) -> list[datetime]:
    times = [arrival(r.payload) for r in messages]
    assert all(times), "every inbound row records its arrival"
    return [t for t in times if t is not None]


def _wait_window_after(messages: list[Message]) -> None:
    """Wait until the window of the latest of ``messages`` is over on the wall clock."""
    end = max(_arrivals(messages)) + timedelta(seconds=WINDOW)
    wait_until(lambda: datetime.now(timezone.utc) > end, WINDOW + 5, "the window to pass")


def _inbound_by_conversation(db_url: str) -> dict[int, list[Message]]:
    found: dict[int, list[Message]] = {}
    for row in rows(db_url, "in"):
        found.setdefault(row.conversation_id, []).append(row)
    return found


def _assert_flood_premise(flood: list[Message]) -> None:
    """The test means something only if the whole flood arrived inside one window."""
    times = _arrivals(flood)
    spread = (max(times) - min(times)).total_seconds()
    assert spread < WINDOW / 2, f"the flood took {spread:.2f}s to post; the machine is too slow"


def test_a_flood_gets_one_notice_and_rasa_reads_only_the_first_messages_of_the_window(
    start_gateway: Callable[..., TestClient],
    rasa_standin: RasaStandIn,
    graph_server: GraphStub,
    db_url: str,
) -> None:
    gateway = start_gateway(tuning=LIMITED)
    assert signed_post(gateway, _flood("uno", 8)).status_code == 200
    assert signed_post(gateway, _flood("dos", 6)).status_code == 200
    inbound = wait_inbound_settled(db_url)
    assert len(inbound) == 14, "every message of the flood is stored"
    _assert_flood_premise(inbound)
    wait_outbound_settled(db_url)

    assert _rasa_heard(rasa_standin, PHONE) == [f"uno {n}" for n in range(1, LIMIT + 1)]
    assert _sent_to(graph_server, WA_ID) == [f"eco: uno {n}" for n in range(1, LIMIT + 1)] + [
        NOTICE
    ]
    statuses = [(r.status, r.error_code) for r in inbound]
    assert statuses == [("done", None)] * LIMIT + [("skipped", "rate_limited")] * 9
    with session_factory(db_url)() as session:
        audits = session.scalars(select(AuditEntry).where(AuditEntry.action == "rate_limited"))
        (audit,) = audits.all()
    assert audit.details["message_id"] == inbound[LIMIT].id
    assert audit.details == {
        "message_id": inbound[LIMIT].id,
        "limit": LIMIT,
        "window_seconds": WINDOW,
    }


def test_the_notice_says_it_is_the_automated_assistant_and_asks_to_write_again() -> None:
    assert "asistente automatizado" in NOTICE
    assert "muchos mensajes seguidos" in NOTICE
    assert "escribirme" in NOTICE


def test_another_person_writing_during_a_flood_is_answered_normally(
    start_gateway: Callable[..., TestClient],
    rasa_standin: RasaStandIn,
    graph_server: GraphStub,
    db_url: str,
) -> None:
    gateway = start_gateway(tuning=LIMITED)
    other = [f"otra persona {n}" for n in range(1, 4)]
    assert signed_post(gateway, _flood("ráfaga", 9)).status_code == 200
    for words in other:
        body = envelope([text(words, wa_id=OTHER_WA_ID)], wa_id=OTHER_WA_ID, name="Rosa")
        assert signed_post(gateway, body).status_code == 200
        assert signed_post(gateway, _flood("más", 2)).status_code == 200
    inbound = wait_inbound_settled(db_url)
    wait_outbound_settled(db_url)
    flood_rows, other_rows = sorted(_inbound_by_conversation(db_url).values(), key=len)[::-1]
    _assert_flood_premise(flood_rows)

    assert len(inbound) == 9 + 3 * 2 + 3
    assert _rasa_heard(rasa_standin, OTHER_PHONE) == other
    assert _sent_to(graph_server, OTHER_WA_ID) == [f"eco: {words}" for words in other]
    assert {(r.status, r.error_code) for r in other_rows} == {("done", None)}
    assert len(_rasa_heard(rasa_standin, PHONE)) == LIMIT
    assert _sent_to(graph_server, WA_ID).count(NOTICE) == 1


def test_after_the_window_the_flooded_person_is_answered_again(
    start_gateway: Callable[..., TestClient],
    rasa_standin: RasaStandIn,
    graph_server: GraphStub,
    db_url: str,
) -> None:
    gateway = start_gateway(tuning=LIMITED)
    assert signed_post(gateway, _flood("ráfaga", 10)).status_code == 200
    flood = wait_inbound_settled(db_url)
    _assert_flood_premise(flood)
    graph_server.wait_for_sends(LIMIT + 1)
    _wait_window_after(flood)

    assert signed_post(gateway, envelope([text("ya volví, ¿cuánto debo?")])).status_code == 200
    wait_until(lambda: len(graph_server.sends) == LIMIT + 2, what="the answer after the window")
    assert _rasa_heard(rasa_standin, PHONE)[-1] == "ya volví, ¿cuánto debo?"
    assert _sent_to(graph_server, WA_ID)[-2:] == [NOTICE, "eco: ya volví, ¿cuánto debo?"]
    assert wait_inbound_settled(db_url)[-1].status == "done"


def test_a_second_flood_after_a_calm_window_gets_its_own_notice(
    start_gateway: Callable[..., TestClient],
    rasa_standin: RasaStandIn,
    graph_server: GraphStub,
    db_url: str,
) -> None:
    gateway = start_gateway(tuning=LIMITED)
    assert signed_post(gateway, _flood("primera", LIMIT + 3)).status_code == 200
    first = wait_inbound_settled(db_url)
    _wait_window_after(first)
    assert signed_post(gateway, _flood("segunda", LIMIT + 3)).status_code == 200
    wait_until(lambda: len(rows(db_url, "in")) == 2 * (LIMIT + 3), what="the second flood stored")
    wait_inbound_settled(db_url)
    wait_outbound_settled(db_url)

    assert len(_rasa_heard(rasa_standin, PHONE)) == 2 * LIMIT
    assert _sent_to(graph_server, WA_ID).count(NOTICE) == 2


def test_a_notice_is_not_repeated_while_the_flood_goes_on(
    start_gateway: Callable[..., TestClient],
    rasa_standin: RasaStandIn,
    graph_server: GraphStub,
    db_url: str,
) -> None:
    """Throttled messages count: a flood that never pauses for a window stays throttled."""
    gateway = start_gateway(tuning=LIMITED)
    assert signed_post(gateway, _flood("a", LIMIT + 2)).status_code == 200
    graph_server.wait_for_sends(LIMIT + 1)
    # Keep writing: each delivery is inside the window of the one before it.
    for round_ in range(3):
        assert signed_post(gateway, _flood(f"r{round_}", 2)).status_code == 200
    inbound = wait_until(
        lambda: len(found := rows(db_url, "in")) == LIMIT + 8 and found, what="stored"
    )
    _assert_flood_premise(inbound)
    wait_inbound_settled(db_url)
    wait_outbound_settled(db_url)
    assert len(_rasa_heard(rasa_standin, PHONE)) == LIMIT
    assert _sent_to(graph_server, WA_ID).count(NOTICE) == 1


def test_the_limit_and_window_come_from_the_environment() -> None:
    tuning = Tuning.from_env(
        {"ACUERDO_RATE_LIMIT_MESSAGES": "30", "ACUERDO_RATE_LIMIT_SECONDS": "90"}
    )
    assert (tuning.rate_limit_messages, tuning.rate_limit_seconds) == (30, 90.0)
    assert isinstance(tuning.rate_limit_messages, int)
    assert (Tuning().rate_limit_messages, Tuning().rate_limit_seconds) == (20, 60.0)
    with pytest.raises(ValueError, match="ACUERDO_RATE_LIMIT_MESSAGES"):
        Tuning.from_env({"ACUERDO_RATE_LIMIT_MESSAGES": "2.5"})
    with pytest.raises(ValueError, match="ACUERDO_RATE_LIMIT_SECONDS"):
        Tuning.from_env({"ACUERDO_RATE_LIMIT_SECONDS": "0"})


def test_the_console_and_metrics_name_the_throttled_messages(
    start_gateway: Callable[..., TestClient], graph_server: GraphStub, db_url: str
) -> None:
    from bot.console.texts import console_texts

    gateway = start_gateway(tuning=LIMITED)
    assert signed_post(gateway, _flood("x", LIMIT + 2)).status_code == 200
    wait_inbound_settled(db_url)
    assert "ráfaga" in console_texts().label("inbound_notes", "rate_limited")
    metrics = gateway.get("/metrics").text
    assert "acuerdo_messages_rate_limited_total" in metrics
    assert 'acuerdo_processing_seconds_count{outcome="rate_limited"}' in metrics


# -- several gateway processes on one PostgreSQL ------------------------------------------
def test_two_gateway_processes_on_one_postgres_share_the_limit(
    postgres_url: str,
    graph_server: GraphStub,
    rasa_standin: RasaStandIn,
    gateway_policy_file: Path,
    tmp_path: Path,
) -> None:
    """The flood lands on both processes alternately: still one notice, still LIMIT to Rasa."""
    import os

    upgrade(postgres_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACUERDO_", "WHATSAPP_"))}
    env.update(
        {
            "ACUERDO_DATABASE_URL": postgres_url,
            "ACUERDO_SANDBOX": "1",  # the sandbox's built-in secrets
            "ACUERDO_NOW": PINNED_NOW,
            "WHATSAPP_API_BASE_URL": graph_server.url,
            "RASA_PORT": str(rasa_standin.port),
            "ACTION_PORT": str(rasa_standin.port),
            "ACUERDO_POLICY_FILE": str(gateway_policy_file),
            "ACUERDO_VAR_DIR": str(tmp_path / "var"),
            "ACUERDO_SECRET_KEY": "test-secret-key",
            "ACUERDO_LOG_LEVEL": "WARNING",
            "ACUERDO_POLL_SECONDS": "0.2",
            "ACUERDO_RATE_LIMIT_MESSAGES": str(LIMIT),
            "ACUERDO_RATE_LIMIT_SECONDS": "30",  # processes start slowly; the flood is quick
        }
    )
    gateways = [GatewayProcess(env, free_port()), GatewayProcess(env, free_port())]
    try:
        total = 3 * LIMIT
        for n in range(total):
            body = envelope([text(f"p{n}")])
            assert post_signed(gateways[n % 2].url, body).status_code == 200
        other = envelope([text("hola", wa_id=OTHER_WA_ID)], wa_id=OTHER_WA_ID)
        assert post_signed(gateways[1].url, other).status_code == 200
        wait_inbound_settled(postgres_url, 30)
        wait_outbound_settled(postgres_url, 30)
    finally:
        for gateway in gateways:
            gateway.terminate()
    assert _rasa_heard(rasa_standin, PHONE) == [f"p{n}" for n in range(LIMIT)]
    assert _sent_to(graph_server, WA_ID).count(NOTICE) == 1
    assert _sent_to(graph_server, OTHER_WA_ID) == ["eco: hola"]
