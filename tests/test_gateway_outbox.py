"""The outbox against a misbehaving Graph API: retries, per-error handling, the 24-hour window."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from bot.clock import Clock
from bot.db.engine import session_factory
from bot.db.models import Conversation
from tests.conftest_gateway import (
    PINNED_NOW,
    WA_ID,
    envelope,
    rows,
    signed_post,
    text,
    wait_outbound_settled,
)
from tests.graph_stub import GraphStub, describe, wait_until
from tests.rasa_standin import RasaStandIn

pytest_plugins = ["tests.conftest_gateway"]


def _say(gateway: TestClient, words: str = "hola") -> None:
    assert signed_post(gateway, envelope([text(words)])).status_code == 200


def test_rate_limits_are_retried_and_the_message_is_delivered_once(
    gateway: TestClient, graph_server: GraphStub, db_url: str
) -> None:
    graph_server.fail_next(2, status=429, code=130429, retry_after=0.1)
    _say(gateway)
    graph_server.wait_for_sends(1)
    (out,) = wait_outbound_settled(db_url)
    assert out.status == "sent" and out.attempts == 3
    assert len(graph_server.attempts) == 3
    assert len(graph_server.sends) == 1


def test_server_errors_are_retried_and_delivered_once(
    gateway: TestClient, graph_server: GraphStub, db_url: str
) -> None:
    graph_server.fail_next(1, status=500)
    graph_server.fail_next(1, status=503, code=131016)
    _say(gateway)
    graph_server.wait_for_sends(1)
    wait_outbound_settled(db_url)
    assert len(graph_server.attempts) == 3
    assert len(graph_server.sends) == 1


def test_a_send_that_times_out_is_retried_and_delivered_once(
    gateway: TestClient, graph_server: GraphStub, db_url: str
) -> None:
    graph_server.fail_next(1, stall=1.5, status=500)  # longer than the 1 s client timeout
    _say(gateway)
    graph_server.wait_for_sends(1, timeout=15)
    (out,) = wait_outbound_settled(db_url)
    assert out.status == "sent" and out.attempts == 2
    assert len(graph_server.sends) == 1


def test_an_undeliverable_recipient_is_marked_failed_and_never_retried(
    gateway: TestClient, graph_server: GraphStub, db_url: str
) -> None:
    graph_server.fail_next(1, status=400, code=131026)
    _say(gateway)
    (out,) = wait_outbound_settled(db_url)
    assert out.status == "failed" and out.error_code == "131026"
    assert len(graph_server.attempts) == 1
    assert graph_server.sends == []


def test_too_many_messages_to_one_person_paces_that_person(
    gateway: TestClient, graph_server: GraphStub, db_url: str
) -> None:
    graph_server.fail_next(1, status=400, code=131056)
    _say(gateway)
    graph_server.wait_for_sends(1)
    (out,) = wait_outbound_settled(db_url)
    assert out.status == "sent" and out.attempts == 2


def test_an_account_level_block_stops_that_channels_sending_and_is_reported(
    gateway: TestClient, graph_server: GraphStub, db_url: str
) -> None:
    graph_server.fail_next(1, status=400, code=368)
    _say(gateway, "uno")
    wait_until(lambda: len(graph_server.attempts) == 1, what="the blocked send")
    _say(gateway, "dos")
    wait_until(lambda: len(rows(db_url, "out")) == 2, what="the second reply queued")
    ready = gateway.get("/readyz").json()
    assert ready["sending_halted_until"]["whatsapp"]  # which and when, for the operator's probe…
    assert "368" not in str(ready) and "halt_reason" not in ready  # …never why, to strangers
    metrics = gateway.get("/metrics").text
    assert 'acuerdo_sending_halted{channel="whatsapp"} 1.0' in metrics
    assert 'acuerdo_channel_api_errors_total{channel="whatsapp",code="368"}' in metrics
    assert len(graph_server.attempts) == 1  # nothing else went out
    assert all(r.status == "queued" for r in rows(db_url, "out"))  # kept, not lost


def test_outside_the_24_hour_window_only_the_template_goes_and_the_reply_waits(
    gateway: TestClient, graph_server: GraphStub, rasa_standin: RasaStandIn, db_url: str
) -> None:
    rasa_standin.gate.clear()  # hold the reply until the window has "expired"
    _say(gateway, "hola")
    wait_until(lambda: rasa_standin.requests, what="the message at Rasa")
    long_ago = Clock.from_setting(PINNED_NOW, "America/Mexico_City").now_utc() - timedelta(hours=25)
    with session_factory(db_url)() as session:
        session.execute(update(Conversation).values(last_inbound_at=long_ago))
        session.commit()
    rasa_standin.gate.set()
    (send,) = graph_server.wait_for_sends(1)
    assert send.body["type"] == "template"
    template = send.body["template"]
    assert template["name"] == "reanudar_conversacion"
    assert template["language"]["code"] == "es_MX"
    button = template["components"][0]
    assert button["sub_type"] == "quick_reply"
    assert button["parameters"][0]["payload"] == "acuerdo:resume"
    held, invitation = wait_outbound_settled(db_url)
    assert held.status == "held" and invitation.status == "sent"

    # The person taps "Continuar": the held reply goes out, Rasa is not asked again.
    tap = {
        "from": WA_ID,
        "id": "wamid.tap.1",
        "timestamp": "1795000100",
        "type": "button",
        "button": {"payload": "acuerdo:resume", "text": "Continuar"},
    }
    signed_post(gateway, envelope([tap]))
    graph_server.wait_for_sends(2)
    assert describe(graph_server.sends[1].body) == "eco: hola"
    assert len(rasa_standin.requests) == 1


def test_a_window_closed_error_from_whatsapp_switches_to_the_template(
    gateway: TestClient, graph_server: GraphStub, db_url: str
) -> None:
    graph_server.fail_next(1, status=400, code=131047)
    _say(gateway)
    (send,) = graph_server.wait_for_sends(1)
    assert send.body["type"] == "template"
    statuses = sorted(r.status for r in wait_outbound_settled(db_url))
    assert statuses == ["held", "sent"]


def test_delivery_receipts_update_the_outbound_message_and_never_go_backwards(
    gateway: TestClient, graph_server: GraphStub, db_url: str
) -> None:
    _say(gateway)
    (send,) = graph_server.wait_for_sends(1)
    wait_outbound_settled(db_url)
    wamid = send.accepted_id

    def receipt(status: str, **extra: object) -> dict:
        return {
            "id": wamid,
            "status": status,
            "timestamp": "1795000200",
            "recipient_id": WA_ID,
            **extra,
        }

    assert signed_post(gateway, envelope(statuses=[receipt("read")])).json()["statuses"] == 1
    assert signed_post(gateway, envelope(statuses=[receipt("delivered")])).json()["statuses"] == 0
    (out,) = rows(db_url, "out")
    assert out.status == "read"
    unknown = {"id": "wamid.unknown", "status": "delivered", "timestamp": "1"}
    assert signed_post(gateway, envelope(statuses=[unknown])).status_code == 200


def test_a_failed_receipt_records_its_error_code(
    gateway: TestClient, graph_server: GraphStub, db_url: str
) -> None:
    _say(gateway)
    (send,) = graph_server.wait_for_sends(1)
    wait_outbound_settled(db_url)
    failed = {
        "id": send.accepted_id,
        "status": "failed",
        "timestamp": "1795000300",
        "recipient_id": WA_ID,
        "errors": [{"code": 131026, "title": "Message undeliverable"}],
    }
    signed_post(gateway, envelope(statuses=[failed]))
    (out,) = rows(db_url, "out")
    assert out.status == "failed" and out.error_code == "131026"


def test_a_failed_receipt_for_a_closed_window_sends_the_template(
    gateway: TestClient, graph_server: GraphStub, db_url: str
) -> None:
    _say(gateway)
    (send,) = graph_server.wait_for_sends(1)
    wait_outbound_settled(db_url)
    failed = {
        "id": send.accepted_id,
        "status": "failed",
        "timestamp": "1795000300",
        "recipient_id": WA_ID,
        "errors": [{"code": 131047, "title": "Re-engagement message"}],
    }
    signed_post(gateway, envelope(statuses=[failed]))
    second = graph_server.wait_for_sends(2)[1]
    assert second.body["type"] == "template"
    first_row = rows(db_url, "out")[0]
    assert first_row.status == "held" and first_row.error_code == "131047"


def test_long_text_is_split_at_4096_characters_in_order(
    gateway: TestClient, graph_server: GraphStub, rasa_standin: RasaStandIn, db_url: str
) -> None:
    paragraph = ("Tu saldo se compone de capital, intereses y comisiones. " * 40).strip()
    long_text = "\n\n".join([paragraph] * 4)  # about 9,000 characters
    rasa_standin.responder = lambda body: [{"text": long_text}]
    _say(gateway)
    sent = wait_outbound_settled(db_url)
    assert len(sent) >= 3
    parts = [s.body["text"]["body"] for s in graph_server.sends]
    assert all(len(part) <= 4096 for part in parts)
    assert "\n\n".join(parts) == long_text
