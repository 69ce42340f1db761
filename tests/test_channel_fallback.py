"""Company-started messages fall back along ``policy.contact.channel_fallback`` when a channel
cannot deliver: WhatsApp 131026 → RCS, RBM 404 or TTL expiry → SMS; every hop audited."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.base import OutboundMessage
from bot.channels.company_send import send_company_message
from bot.channels.company_template import company_template
from bot.channels.fallback import (
    CompanySend,
    contact_delay,
    enabled_channels,
    fallback_chain,
    fallback_extra,
)
from bot.clock import Clock
from bot.config import Settings
from bot.conversation.outbox import enqueue
from bot.db.models import Account, AuditEntry, ContactPoint, Debtor, EarlyStatus, Message
from bot.domain.conversations import flag_wrong_number, get_or_create_conversation, opt_out
from bot.policy import Policy
from tests.conftest_gateway import PHONE, WA_ID, envelope, signed_post, text
from tests.graph_stub import GraphStub, wait_until
from tests.rbm_stub import RbmStub, push, signed_headers

VARIABLES = ["Laura", "Banco Ejemplo", "$1,250.00", "26/11/2026", "http://testserver/pay/abc"]


@pytest.fixture
def rcs_gateway(start_gateway: Callable[..., TestClient], rcs_settings: Settings) -> TestClient:
    return start_gateway(rcs_settings)


def remind(
    client: TestClient,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
    template: str = "recordatorio_preventivo",
) -> CompanySend:
    """What the campaigns scheduler does: queue a reminder, commit, wake the outbox."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    debtor = session.get(Debtor, account.debtor_id)
    assert debtor is not None
    result = send_company_message(
        session,
        clock,
        policy,
        debtor,
        template,
        VARIABLES,
        account_id=account.id,
        channels=runtime.adapters.keys(),
    )
    session.commit()
    client.portal.call(runtime.wake_outbox)  # type: ignore[union-attr]
    return result


def fresh(session: Session) -> Session:
    """The test's session, seeing what the gateway committed since."""
    session.commit()
    session.expire_all()
    return session


def audit(session: Session, action: str) -> list[dict[str, Any]]:
    fresh(session)
    entries = session.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()
    return [dict(entry.details) for entry in entries]


def outbound(session: Session, wamid: str) -> Message | None:
    """The outbound row WhatsApp accepted as ``wamid``, once the outbox has recorded it."""
    return fresh(session).scalars(select(Message).where(Message.external_id == wamid)).first()


def undeliverable_status(wamid: str) -> dict[str, Any]:
    return {
        "id": wamid,
        "status": "failed",
        "timestamp": "1795000100",
        "recipient_id": WA_ID,
        "errors": [{"code": 131026, "title": "Message undeliverable"}],
    }


def contact(session: Session, channel: str) -> ContactPoint | None:
    return (
        fresh(session)
        .scalars(
            select(ContactPoint).where(
                ContactPoint.channel == channel, ContactPoint.address == PHONE
            )
        )
        .first()
    )


# -- the chain ----------------------------------------------------------------------------
def test_the_chain_starts_at_the_preferred_channel_then_follows_the_policy(policy: Policy) -> None:
    assert policy.contact.channel_fallback == ["whatsapp", "rcs", "sms"]
    assert fallback_chain(policy, "whatsapp", None) == ["whatsapp", "rcs", "sms"]
    assert fallback_chain(policy, "rcs", None) == ["rcs", "whatsapp", "sms"]
    assert fallback_chain(policy, "rcs", {"whatsapp", "sms"}) == ["whatsapp", "sms"]


def test_enabled_channels_follow_the_settings(
    gateway_settings: Settings, rcs_settings: Settings
) -> None:
    production = gateway_settings.model_copy(
        update={"whatsapp_app_secret": "real", "sandbox": False}
    )
    assert enabled_channels(production) == ("whatsapp",)
    assert enabled_channels(rcs_settings) == ("whatsapp", "rcs", "sms")


def test_the_template_is_filled_from_the_policy(policy: Policy) -> None:
    template = company_template(policy, "recordatorio_preventivo", VARIABLES)
    assert template.preview.startswith("Hola Laura, soy el asistente automatizado de Banco Ejemplo")
    assert "http://testserver/pay/abc" in template.preview
    assert template.button_titles == ("Pagar ahora", "Otra fecha", "Hablar con asesor")


def test_a_closed_contact_window_delays_a_hop_to_its_opening(
    policy: Policy, session: Session, make_account: Callable[..., Account]
) -> None:
    debtor = session.get(Debtor, make_account().debtor_id)
    assert debtor is not None
    tz = "America/Mexico_City"
    assert contact_delay(policy, Clock.from_setting("2026-11-23", tz), debtor) == timedelta(0)
    night = Clock.from_setting("2026-11-23T23:00:00-06:00", tz)
    assert contact_delay(policy, night, debtor) == timedelta(hours=8)
    saturday_night = Clock.from_setting("2026-11-28T22:30:00-06:00", tz)  # Sunday is closed
    assert contact_delay(policy, saturday_night, debtor) == timedelta(hours=32, minutes=30)


# -- through the real gateway -----------------------------------------------------------------
def test_a_reminder_goes_to_the_preferred_channel_when_it_delivers(
    rcs_gateway: TestClient,
    graph_server: GraphStub,
    rbm_server: RbmStub,
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: Callable[..., Account],
) -> None:
    result = remind(rcs_gateway, session, clock, policy, make_account())
    assert result.channel == "whatsapp" and result.skipped == []
    (sent,) = graph_server.wait_for_sends(1)
    assert sent.body["type"] == "template"
    assert sent.body["template"]["name"] == "recordatorio_preventivo"
    assert rbm_server.sends == [] and rbm_server.sms == []


def test_whatsapp_131026_on_a_reminder_produces_the_rcs_send(
    rcs_gateway: TestClient,
    graph_server: GraphStub,
    rbm_server: RbmStub,
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: Callable[..., Account],
) -> None:
    graph_server.fail_next(1, status=400, code=131026)
    account = make_account()
    remind(rcs_gateway, session, clock, policy, account)
    (sent,) = rbm_server.wait_for_sends(1)
    assert sent.path == f"/v1/phones/{PHONE}/agentMessages"
    content = sent.body["contentMessage"]
    assert content["text"].startswith("Hola Laura, soy el asistente automatizado de Banco Ejemplo")
    assert [c["reply"]["text"] for c in content["suggestions"]] == [
        "Pagar ahora",
        "Otra fecha",
        "Hablar con asesor",
    ]
    assert sent.body["ttl"] == "86400s"
    assert graph_server.sends == [] and len(graph_server.attempts) == 1
    (hop,) = wait_until(lambda: audit(session, "channel_fallback"), what="the hop's audit")
    assert hop["from_channel"] == "whatsapp" and hop["to_channel"] == "rcs"
    assert hop["reason"] == "131026" and hop["hop"] == 1
    queued = audit(session, "company_message_queued")
    assert [(q["channel"], q["hop"]) for q in queued] == [("whatsapp", 0), ("rcs", 1)]
    whatsapp = contact(session, "whatsapp")
    assert whatsapp is not None and whatsapp.unreachable_reason == "131026"


def test_a_later_131026_status_also_falls_back(
    rcs_gateway: TestClient,
    graph_server: GraphStub,
    rbm_server: RbmStub,
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: Callable[..., Account],
) -> None:
    remind(rcs_gateway, session, clock, policy, make_account())
    (sent,) = graph_server.wait_for_sends(1)
    wait_until(lambda: outbound(session, sent.accepted_id), what="the send's record")
    failed = undeliverable_status(sent.accepted_id)
    assert signed_post(rcs_gateway, envelope(statuses=[failed])).json()["statuses"] == 1
    rbm_server.wait_for_sends(1)
    # A redelivered failure makes no second hop.
    assert signed_post(rcs_gateway, envelope(statuses=[failed])).json()["statuses"] == 0
    assert len(audit(session, "channel_fallback")) == 1


def test_a_131026_status_that_beats_the_record_of_its_send_still_falls_back(
    rcs_gateway: TestClient,
    graph_server: GraphStub,
    rbm_server: RbmStub,
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: Callable[..., Account],
) -> None:
    # Meta posts the failure while its answer to the send is still on the way: the
    # gateway has not recorded the wamid yet when the status arrives.
    accepted: list[str] = []
    answered = threading.Event()

    def hold_the_answer(request: Any) -> None:
        accepted.append(request.accepted_id)
        answered.wait(10)

    graph_server.on_accept = hold_the_answer
    remind(rcs_gateway, session, clock, policy, make_account())
    wait_until(lambda: accepted, what="WhatsApp accepting the reminder")
    failed = undeliverable_status(accepted[0])
    early = signed_post(rcs_gateway, envelope(statuses=[failed]))
    assert early.status_code == 200 and early.json()["parked"] == 1
    assert early.json()["statuses"] == 0 and rbm_server.sends == []
    answered.set()
    (hop,) = rbm_server.wait_for_sends(1)
    assert hop.body["contentMessage"]["text"].startswith("Hola Laura")
    row = outbound(session, accepted[0])
    assert row is not None and row.status == "failed" and row.error_code == "131026"
    # The redelivered failure now meets the recorded row: no second hop.
    late = signed_post(rcs_gateway, envelope(statuses=[failed])).json()
    assert late["statuses"] == 0 and late["parked"] == 0
    assert len(audit(session, "channel_fallback")) == 1
    assert fresh(session).scalars(select(EarlyStatus)).all() == []


def test_an_rbm_404_after_whatsapp_falls_back_to_sms_with_the_opt_out_text(
    rcs_gateway: TestClient,
    graph_server: GraphStub,
    rbm_server: RbmStub,
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: Callable[..., Account],
) -> None:
    graph_server.fail_next(1, status=400, code=131026)
    rbm_server.not_rcs_capable.add(PHONE)
    remind(rcs_gateway, session, clock, policy, make_account())
    (sms,) = rbm_server.wait_for_sms(1)
    assert sms.body["To"] == PHONE and sms.body["From"] == "+15005550006"
    assert sms.body["Body"].startswith("Hola Laura")
    assert sms.body["Body"].endswith("Responde BAJA para no recibir más mensajes.")
    assert sms.body["Body"].count("BAJA") == 1  # the template's footer gave way
    hops = wait_until(lambda: (found := audit(session, "channel_fallback"))[1:] and found)
    assert [(h["from_channel"], h["to_channel"], h["reason"]) for h in hops] == [
        ("whatsapp", "rcs", "131026"),
        ("rcs", "sms", "404"),
    ]
    rcs = contact(session, "rcs")
    assert rcs is not None and rcs.unreachable_reason == "404"  # not RCS-capable


def test_an_rcs_preferred_debtor_gets_sms_after_a_404(
    rcs_gateway: TestClient,
    graph_server: GraphStub,
    rbm_server: RbmStub,
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: Callable[..., Account],
) -> None:
    account = make_account()
    whatsapp = contact(session, "whatsapp")
    assert whatsapp is not None
    whatsapp.preferred = False
    session.add(
        ContactPoint(
            debtor_id=account.debtor_id,
            channel="rcs",
            address=PHONE,
            preferred=True,
            created_at=clock.now_utc(),
        )
    )
    session.commit()
    rbm_server.not_rcs_capable.add(PHONE)
    graph_server.fail_next(1, status=400, code=131026)
    result = remind(rcs_gateway, session, clock, policy, account)
    assert result.channel == "rcs"
    (sms,) = rbm_server.wait_for_sms(1)  # rcs 404 → whatsapp 131026 → sms
    assert "Responde BAJA" in sms.body["Body"]


def test_an_rcs_reminder_revoked_by_ttl_goes_out_by_sms(
    rcs_gateway: TestClient,
    graph_server: GraphStub,
    rbm_server: RbmStub,
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: Callable[..., Account],
) -> None:
    graph_server.fail_next(1, status=400, code=131026)
    remind(rcs_gateway, session, clock, policy, make_account())
    (sent,) = rbm_server.wait_for_sends(1)
    message_id = sent.query["messageId"]
    wait_until(
        lambda: (
            fresh(session).scalars(select(Message).where(Message.external_id == message_id)).first()
        ),
        what="the RCS row to be recorded as sent",
    )
    revoked = push(
        {
            "phoneNumber": PHONE,
            "messageId": message_id,
            "agentId": "acuerdo-test@rbm.goog",
            "eventType": "TTL_EXPIRATION_REVOKED",
            "eventId": "ev-ttl-1",
            "sendTime": "2026-11-24T18:00:00Z",
        }
    )
    answer = rcs_gateway.post("/webhooks/rcs", content=revoked, headers=signed_headers(revoked))
    assert answer.status_code == 200 and answer.json()["statuses"] == 1
    (sms,) = rbm_server.wait_for_sms(1)
    assert sms.body["Body"].endswith("Responde BAJA para no recibir más mensajes.")
    last = audit(session, "channel_fallback")[-1]
    assert (last["from_channel"], last["to_channel"], last["reason"]) == (
        "rcs",
        "sms",
        "ttl_expired",
    )


def test_opted_out_channels_are_skipped_and_a_wrong_number_gets_nothing(
    rcs_gateway: TestClient,
    graph_server: GraphStub,
    rbm_server: RbmStub,
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: Callable[..., Account],
) -> None:
    account = make_account()
    opt_out(session, clock, "whatsapp", PHONE)
    session.commit()
    result = remind(rcs_gateway, session, clock, policy, account)
    assert result.channel == "rcs" and result.skipped == [("whatsapp", "opted_out")]
    rbm_server.wait_for_sends(1)
    assert graph_server.attempts == []

    flag_wrong_number(session, clock, "rcs", PHONE)
    session.commit()
    nothing = remind(rcs_gateway, session, clock, policy, account)
    assert nothing.message is None and nothing.skipped == [("*", "wrong_number")]


def test_an_unreachable_whatsapp_is_skipped_until_the_person_writes_there(
    rcs_gateway: TestClient,
    graph_server: GraphStub,
    rbm_server: RbmStub,
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: Callable[..., Account],
) -> None:
    account = make_account()
    graph_server.fail_next(1, status=400, code=131026)
    remind(rcs_gateway, session, clock, policy, account)
    rbm_server.wait_for_sends(1)
    second = remind(rcs_gateway, session, clock, policy, account)
    assert second.channel == "rcs" and second.skipped == [("whatsapp", "unreachable")]
    rbm_server.wait_for_sends(2)
    assert signed_post(rcs_gateway, envelope([text("hola")])).status_code == 200
    graph_server.wait_for_sends(1)  # the echo reply
    assert get_or_create_conversation(fresh(session), clock, "whatsapp", PHONE).last_inbound_at
    third = remind(rcs_gateway, session, clock, policy, account)
    assert third.channel == "whatsapp"


def test_when_every_channel_fails_the_reminder_is_recorded_as_undeliverable(
    rcs_gateway: TestClient,
    graph_server: GraphStub,
    rbm_server: RbmStub,
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: Callable[..., Account],
) -> None:
    graph_server.fail_next(1, status=400, code=131026)
    rbm_server.not_rcs_capable.add(PHONE)
    rbm_server.fail_next_sms(400, 21614)  # not a mobile number
    remind(rcs_gateway, session, clock, policy, make_account())
    (entry,) = wait_until(
        lambda: audit(session, "company_message_undeliverable"), what="the final audit entry"
    )
    assert entry["from_channel"] == "sms" and entry["reason"] == "21614"
    assert rbm_server.sms == [] and len(rbm_server.sms_attempts) == 1


def test_a_disabled_channel_in_the_chain_is_skipped_by_the_sending_process(
    start_gateway: Callable[..., TestClient],
    live_gateway_settings: Settings,
    graph_server: GraphStub,
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: Callable[..., Account],
) -> None:
    client = start_gateway(live_gateway_settings)
    graph_server.fail_next(1, status=400, code=131026)
    account = make_account()
    debtor = session.get(Debtor, account.debtor_id)
    assert debtor is not None
    # Queued without telling which channels exist (a CLI run): the gateway's hook knows.
    send_company_message(session, clock, policy, debtor, "recordatorio_preventivo", VARIABLES)
    session.commit()
    client.portal.call(client.app.state.runtime.wake_outbox)  # type: ignore[attr-defined,union-attr]
    (entry,) = wait_until(lambda: audit(session, "company_message_undeliverable"))
    assert entry["from_channel"] == "whatsapp"


def test_a_template_queued_by_other_code_with_the_fallback_extra_falls_back_too(
    rcs_gateway: TestClient,
    graph_server: GraphStub,
    rbm_server: RbmStub,
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: Callable[..., Account],
) -> None:
    account = make_account()
    template = company_template(policy, "recordatorio_vencimiento", VARIABLES)
    runtime = rcs_gateway.app.state.runtime  # type: ignore[attr-defined]
    conversation = get_or_create_conversation(session, clock, "whatsapp", PHONE)
    (rendered,) = runtime.adapters["whatsapp"].render(OutboundMessage(template=template))
    extra = {
        "company_started": True,
        "kind": "reminder",
        **fallback_extra(
            policy,
            template,
            channel="whatsapp",
            debtor_id=account.debtor_id,
            account_id=account.id,
            channels=runtime.adapters.keys(),
        ),
    }
    enqueue(
        session,
        clock,
        conversation_id=conversation.id,
        channel="whatsapp",
        rendered=rendered,
        author="system",
        extra=extra,
    )
    session.commit()
    graph_server.fail_next(1, status=400, code=131026)
    rcs_gateway.portal.call(runtime.wake_outbox)  # type: ignore[union-attr]
    (sent,) = rbm_server.wait_for_sends(1)
    assert sent.body["contentMessage"]["text"].startswith("Hola Laura")
    rcs_row = wait_until(
        lambda: (
            fresh(session)
            .scalars(select(Message).where(Message.channel == "rcs", Message.status == "sent"))
            .first()
        )
    )
    assert rcs_row.payload["company_started"] is True and rcs_row.payload["kind"] == "reminder"
    assert rcs_row.payload["company"]["hop"] == 1
