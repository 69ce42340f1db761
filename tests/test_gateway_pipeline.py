"""From stored message to Rasa to the Graph API: replies, ordering, duplicates, outages."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.db.engine import session_factory
from bot.db.models import AuditEntry
from tests.conftest_gateway import (
    PHONE,
    WA_ID,
    envelope,
    hand_to_agent,
    message,
    rows,
    signed_post,
    text,
    wait_inbound_settled,
    wait_outbound_settled,
)
from tests.graph_stub import GraphStub, describe, wait_until
from tests.rasa_standin import RasaStandIn

pytest_plugins = ["tests.conftest_gateway"]


def test_a_text_reaches_rasa_with_sender_and_metadata_and_the_reply_reaches_whatsapp(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub, db_url: str
) -> None:
    incoming = text("hola")
    assert signed_post(gateway, envelope([incoming])).status_code == 200
    (send,) = graph_server.wait_for_sends(1)
    (request,) = rasa_standin.answered
    assert request["sender"] == PHONE
    assert request["message"] == "hola"
    metadata = request["metadata"]
    assert metadata["channel"] == "whatsapp"
    assert metadata["phone"] == PHONE
    assert metadata["profile_name"] == "Laura Méndez"
    assert isinstance(metadata["conversation_id"], int)
    assert send.body["to"] == WA_ID
    assert send.body["messaging_product"] == "whatsapp"
    assert send.body["text"]["body"] == "eco: hola"
    assert send.path.endswith("/100000000000001/messages")
    assert send.headers["Authorization"] == "Bearer acuerdo-sandbox-access-token"
    (out,) = wait_outbound_settled(db_url)
    assert out.status == "sent" and out.external_id == send.accepted_id
    wait_until(lambda: graph_server.reads, what="mark as read")
    assert graph_server.reads[0].body["message_id"] == incoming["id"]


def test_button_list_and_template_replies_reach_rasa_as_their_payloads(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub
) -> None:
    taps = [
        message(
            "interactive",
            {"type": "button_reply", "button_reply": {"id": "/affirm", "title": "Sí"}},
        ),
        message(
            "interactive",
            {
                "type": "list_reply",
                "list_reply": {"id": '/inform{"installments": 3}', "title": "3 pagos"},
            },
        ),
        message("button", {"payload": "/request_agent", "text": "Hablar con asesor"}),
        message("button", {"text": "Otra fecha"}),  # a template without a payload: its label
    ]
    for tap in taps:
        signed_post(gateway, envelope([tap]))
    graph_server.wait_for_sends(4)
    assert rasa_standin.messages() == [
        "/affirm",
        '/inform{"installments": 3}',
        "/request_agent",
        "Otra fecha",
    ]


def test_a_redelivered_message_is_answered_once(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub, db_url: str
) -> None:
    body = envelope([text("cuanto debo")])
    first = signed_post(gateway, body)
    assert first.json()["stored"] == 1
    graph_server.wait_for_sends(1)
    again = [signed_post(gateway, body) for _ in range(3)]
    assert all(r.status_code == 200 and r.json()["duplicates"] == 1 for r in again)
    wait_outbound_settled(db_url)
    assert len(rasa_standin.requests) == 1
    assert len(graph_server.sends) == 1
    assert len(rows(db_url, "in")) == 1


def test_concurrent_redeliveries_are_stored_once(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub, db_url: str
) -> None:
    body = envelope([text("hola")])
    results: list[int] = []

    def post() -> None:
        results.append(signed_post(gateway, body).status_code)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 4
    graph_server.wait_for_sends(1)
    wait_outbound_settled(db_url)
    assert len(rows(db_url, "in")) == 1
    assert len(rasa_standin.requests) == 1
    assert len(graph_server.sends) == 1


def test_one_conversation_is_processed_in_arrival_order_one_message_at_a_time(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub, db_url: str
) -> None:
    in_flight: list[int] = []
    peak: list[int] = []
    lock = threading.Lock()
    release = threading.Event()

    def slow_echo(body: dict[str, Any]) -> list[dict[str, Any]]:
        with lock:
            in_flight.append(1)
            peak.append(len(in_flight))
        release.wait(5)
        with lock:
            in_flight.pop()
        return [{"text": f"eco: {body['message']}"}]

    rasa_standin.responder = slow_echo
    for word in ("uno", "dos", "tres", "cuatro"):
        assert signed_post(gateway, envelope([text(word)])).status_code == 200
    wait_until(lambda: len(rasa_standin.requests) == 1, what="first message at Rasa")
    # Another person is not held up by the first conversation.
    signed_post(gateway, envelope([text("otra persona", wa_id="5215512340002")], name="Otro"))
    wait_until(lambda: len(rasa_standin.requests) == 2, what="the other conversation at Rasa")
    release.set()
    graph_server.wait_for_sends(5)
    wait_inbound_settled(db_url)
    mine = [describe(s.body) for s in graph_server.sends if s.body["to"] == WA_ID]
    assert mine == ["eco: uno", "eco: dos", "eco: tres", "eco: cuatro"]
    first_person = [r["message"] for r in rasa_standin.answered if r["sender"] == PHONE]
    assert first_person == ["uno", "dos", "tres", "cuatro"]
    assert max(peak) <= 2  # one per conversation, two conversations


def test_a_rasa_outage_keeps_the_message_and_retries_until_rasa_answers(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub, db_url: str
) -> None:
    rasa_standin.rasa_down = True
    signed_post(gateway, envelope([text("hola")]))
    wait_until(lambda: len(rasa_standin.requests) >= 3, what="retries while Rasa is down")
    (pending,) = rows(db_url, "in")
    assert pending.status in ("pending", "processing")
    assert graph_server.sends == []
    rasa_standin.rasa_down = False
    graph_server.wait_for_sends(1)
    (done,) = wait_inbound_settled(db_url)
    assert done.status == "done"
    wait_outbound_settled(db_url)
    assert len(rasa_standin.answered) == 1
    assert len(graph_server.sends) == 1


def test_an_action_server_outage_holds_the_message_before_it_reaches_rasa(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub, db_url: str
) -> None:
    rasa_standin.actions_down = True
    signed_post(gateway, envelope([text("hola")]))
    wait_until(lambda: (r := rows(db_url, "in")) and r[0].attempts >= 2, what="retries")
    assert rasa_standin.requests == []  # Rasa never saw it: its tracker is not touched
    rasa_standin.actions_down = False
    graph_server.wait_for_sends(1)
    assert len(rasa_standin.requests) == 1


def test_a_turn_during_which_the_action_server_went_away_is_run_again(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub, db_url: str
) -> None:
    # Rasa answers 200 even when an action could not run: the answer cannot be trusted.
    rasa_standin.gate.clear()
    signed_post(gateway, envelope([text("hola")]))
    assert rasa_standin.arrived.wait(10)
    rasa_standin.actions_down = True  # goes away while the turn runs
    rasa_standin.gate.set()
    wait_until(lambda: (r := rows(db_url, "in")) and r[0].attempts >= 2, what="a retry")
    assert graph_server.sends == []  # the doubtful answer was not sent
    rasa_standin.actions_down = False
    graph_server.wait_for_sends(1)
    wait_outbound_settled(db_url)
    assert len(graph_server.sends) == 1
    assert [r["message"] for r in rasa_standin.answered] == ["hola", "hola"]


def test_concurrent_turns_share_the_action_server_checks(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub, db_url: str
) -> None:
    senders = [f"52155500000{n:02d}" for n in range(6)]
    rasa_standin.gate.clear()
    for sender in senders:
        signed_post(gateway, envelope([text("hola", wa_id=sender)], wa_id=sender))
    wait_until(lambda: len(rasa_standin.requests) == 6, what="six turns at Rasa at once")
    rasa_standin.gate.set()
    graph_server.wait_for_sends(6)
    # Two checks per turn (before and after) would be 12; every turn still had both.
    assert 2 <= rasa_standin.health_checks <= 6


def test_messages_accepted_before_a_restart_are_answered_by_the_next_process(
    start_gateway: Callable[..., TestClient],
    rasa_standin: RasaStandIn,
    graph_server: GraphStub,
    db_url: str,
) -> None:
    rasa_standin.rasa_down = True
    first = start_gateway()
    signed_post(first, envelope([text("uno")]))
    signed_post(first, envelope([text("dos")]))
    wait_until(lambda: rasa_standin.requests, what="a try while Rasa is down")
    first.__exit__(None, None, None)  # the process goes away with both unanswered
    assert graph_server.sends == []
    assert all(r.status in ("pending", "processing") for r in rows(db_url, "in"))

    rasa_standin.rasa_down = False
    start_gateway()
    graph_server.wait_for_sends(2)
    assert [describe(s.body) for s in graph_server.sends] == ["eco: uno", "eco: dos"]


def test_a_claim_left_by_a_dead_process_is_taken_over_at_start(
    start_gateway: Callable[..., TestClient],
    rasa_standin: RasaStandIn,
    graph_server: GraphStub,
    db_url: str,
) -> None:
    rasa_standin.gate.clear()  # Rasa holds the request: the message stays "processing"
    first = start_gateway()
    signed_post(first, envelope([text("hola")]))
    wait_until(lambda: rasa_standin.requests, what="the message at Rasa")
    assert rows(db_url, "in")[0].status == "processing"
    # A second process starts while the first is stuck (as after a crash, on SQLite).
    rasa_standin.gate.set()
    second = start_gateway()
    graph_server.wait_for_sends(1)
    wait_inbound_settled(db_url)
    wait_outbound_settled(db_url)
    del first, second
    # The loser of the race could not commit replies: one reply row. (The first process is
    # alive here, which a crashed one is not: the second's start-up recovery can take over
    # its claim on that row's send too, so the one row may reach Graph twice, always under
    # its one idempotency key. SQLite runs one gateway process by design.)
    replies = rows(db_url, "out")
    assert len(replies) == 1
    keys = {s.body.get("biz_opaque_callback_data") for s in graph_server.sends}
    assert keys == {replies[0].payload["idempotency_key"]}


def test_rasa_buttons_become_whatsapp_buttons_lists_or_numbered_menus(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub
) -> None:
    def options(count: int) -> list[dict[str, Any]]:
        return [
            {"title": f"Opción {n}", "payload": f'/inform{{"n": {n}}}'} for n in range(1, count + 1)
        ]

    answers = {
        "dos": [{"text": "¿Confirmas?", "buttons": options(2)}],
        "cinco": [{"text": "Elige un plan", "buttons": options(5)}],
        "doce": [{"text": "Elige un día", "buttons": options(12)}],
    }
    rasa_standin.responder = lambda body: answers.get(body["message"], [{"text": "ok"}])
    for word in ("dos", "cinco", "doce"):
        signed_post(gateway, envelope([text(word)]))
    sends = graph_server.wait_for_sends(3)
    assert sends[0].body["interactive"]["type"] == "button"
    assert [b["reply"]["id"] for b in sends[0].body["interactive"]["action"]["buttons"]] == [
        '/inform{"n": 1}',
        '/inform{"n": 2}',
    ]
    assert sends[1].body["interactive"]["type"] == "list"
    assert len(sends[1].body["interactive"]["action"]["sections"][0]["rows"]) == 5
    assert sends[2].body["type"] == "text"
    assert "12. Opción 12" in sends[2].body["text"]["body"]
    # Answering the numbered menu with a number sends that option's payload to Rasa.
    signed_post(gateway, envelope([text("7")]))
    graph_server.wait_for_sends(4)
    assert rasa_standin.messages()[-1] == '/inform{"n": 7}'


def test_a_payment_code_payload_goes_out_as_a_qr_image_after_its_text(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub
) -> None:
    rasa_standin.responder = lambda body: [
        {
            "text": "Listo, aquí está tu referencia para pagar en OXXO.",
            "custom": {
                "type": "payment_code",
                "method": "oxxo",
                "reference": "93000000000123",
                "clabe": None,
                "amount": 1250.5,
                "expires_at": "2026-11-26T18:00:00+00:00",
                "pay_url": "http://testserver/pay/abc",
                "qr_png_url": "http://testserver/pay/abc/qr.png",
            },
        }
    ]
    signed_post(gateway, envelope([text("quiero pagar en oxxo")]))
    first, second = graph_server.wait_for_sends(2)
    assert first.body["text"]["body"].startswith("Listo")
    assert second.body["type"] == "image"
    assert second.body["image"]["link"] == "http://testserver/pay/abc/qr.png"
    caption = second.body["image"]["caption"]
    assert "93000000000123" in caption and "$1,250.50" in caption
    assert "26/11/2026 a las 12:00" in caption  # Mexico City time
    assert "http://testserver/pay/abc" in caption


def test_an_image_is_kept_as_evidence_and_acknowledged_without_rasa(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub, db_url: str
) -> None:
    receipt = message("image", {"id": "MEDIA-77", "mime_type": "image/jpeg", "caption": "ya pagué"})
    signed_post(gateway, envelope([receipt]))
    (send,) = graph_server.wait_for_sends(1)
    assert "revisar" in send.body["text"]["body"]
    assert "automatizado" in send.body["text"]["body"]
    assert rasa_standin.requests == []
    (stored,) = wait_inbound_settled(db_url)
    assert stored.kind == "image" and stored.payload["media_id"] == "MEDIA-77"
    assert stored.payload["evidence"] is True and stored.text == "ya pagué"
    with session_factory(db_url)() as session:
        audit = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "evidence_received")
        ).one()
        assert audit.details["message_id"] == stored.id


def test_what_the_bot_cannot_read_gets_a_polite_note_and_silence_where_nothing_is_said(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub, db_url: str
) -> None:
    polite = [
        message("audio", {"id": "A1", "mime_type": "audio/ogg", "voice": True}),
        message("sticker", {"id": "S1", "mime_type": "image/webp"}),
        message("location", {"latitude": 19.4, "longitude": -99.1}),
        message("reaction", {"message_id": "wamid.x", "emoji": "👍"}),
        message("unsupported", {"type": "poll_update"}),
    ]
    silent = [
        message("reaction", {"message_id": "wamid.x"}),  # a reaction removed
        message("system", {"body": "x", "type": "user_changed_number"}),
    ]
    for item in polite + silent:
        signed_post(gateway, envelope([item]))
    wait_inbound_settled(db_url)
    sends = graph_server.wait_for_sends(len(polite))
    wait_outbound_settled(db_url)
    assert len(graph_server.sends) == len(polite)
    assert all("solo entiendo mensajes de texto" in describe(s.body) for s in sends)
    assert rasa_standin.requests == []


def test_while_an_agent_holds_the_conversation_the_bot_stays_silent(
    gateway: TestClient, rasa_standin: RasaStandIn, graph_server: GraphStub, db_url: str
) -> None:
    hand_to_agent(gateway, graph_server, db_url)
    signed_post(gateway, envelope([text("¿sigues ahí?")]))
    wait_until(lambda: rows(db_url, "in")[-1].status == "skipped", what="skipped")
    assert len(rasa_standin.requests) == 1
    assert len(graph_server.sends) == 1
