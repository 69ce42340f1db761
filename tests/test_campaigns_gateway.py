"""The campaign inside the running gateway: the hourly schedule, quick replies that lead into
the dialogue, and replies to the debtor that the contact window never blocks."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient

from bot.campaigns.scheduler import interval_from_env
from bot.config import Settings, SettingsError
from bot.domain.phones import whatsapp_id
from bot.gateway.app import app_from_env, create_app
from tests.campaign_support import add_account, at
from tests.conftest_gateway import (
    FAST,
    envelope,
    message,
    signed_post,
    text,
    wait_outbound_settled,
)
from tests.graph_stub import GraphStub
from tests.rasa_standin import RasaStandIn


def test_the_gateway_runs_the_campaign_at_start_and_a_tap_leads_into_the_dialogue(
    db_url: str,
    session,
    gateway_settings: Settings,
    graph_server: GraphStub,
    rasa_standin: RasaStandIn,
) -> None:
    account = add_account(session, at("2026-11-23"), due_date=date(2026, 11, 20))  # D+3 today
    wa_id = whatsapp_id(account.debtor.contact_points[0].address)

    app = create_app(gateway_settings, tuning=FAST, campaign_interval=3600)
    with TestClient(app) as client:
        (sent,) = graph_server.wait_for_sends(1)
        assert app.state.campaign_scheduler.runs >= 1
        assert sent.body["to"] == wa_id
        assert sent.body["template"]["name"] == "recordatorio_temprano"
        quick_replies = [
            c["parameters"][0]["payload"]
            for c in sent.body["template"]["components"]
            if c["type"] == "button"
        ]

        tap = message("button", {"payload": quick_replies[0], "text": "Pagar ahora"}, wa_id=wa_id)
        assert signed_post(client, envelope([tap], wa_id=wa_id)).status_code == 200
        graph_server.wait_for_sends(2)

    assert quick_replies == ["/request_payment_code", "/promise_to_pay", "/request_agent"]
    assert rasa_standin.messages() == ["/request_payment_code"]


def test_a_reply_to_the_debtor_goes_out_at_23_30(
    db_url: str, gateway_settings: Settings, graph_server: GraphStub, start_gateway
) -> None:
    late = gateway_settings.model_copy(update={"now": "2026-11-23T23:30:00-06:00"})
    client = start_gateway(late)

    assert signed_post(client, envelope([text("hola, ¿cuánto debo?")])).status_code == 200

    graph_server.wait_for_sends(1)
    wait_outbound_settled(db_url)
    assert graph_server.texts_to() == ["eco: hola, ¿cuánto debo?"]


def test_the_interval_comes_from_acuerdo_campaign_minutes() -> None:
    assert interval_from_env({}) == 3600
    assert interval_from_env({"ACUERDO_CAMPAIGN_MINUTES": "15"}) == 900
    assert interval_from_env({"ACUERDO_CAMPAIGN_MINUTES": "0"}) is None
    with pytest.raises(ValueError, match="ACUERDO_CAMPAIGN_MINUTES"):
        interval_from_env({"ACUERDO_CAMPAIGN_MINUTES": "cada hora"})


def test_a_malformed_interval_stops_start_up_naming_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("ACUERDO_SANDBOX", "1")  # the settings themselves are fine
    monkeypatch.setenv("ACUERDO_CAMPAIGN_MINUTES", "-5")

    with pytest.raises(SettingsError, match="ACUERDO_CAMPAIGN_MINUTES"):
        app_from_env()
