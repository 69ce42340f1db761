"""Attacks of issue 13, point 11 ("smaller ones"): one channel's halt stopping every channel,
``/readyz`` telling strangers why sending stopped, a Tijuana debtor messaged at dawn by
Mexico City's clock, and an import that rewrites the debtor already on a phone."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.config import Settings
from bot.db.models import Account, ContactPoint, Message
from bot.policy import Policy
from tests.conftest_gateway import PHONE
from tests.graph_stub import GraphStub, wait_until
from tests.rbm_stub import RbmStub
from tests.test_channel_fallback import fresh, remind

pytest_plugins = ["tests.conftest_gateway"]


@pytest.fixture
def rcs_gateway(start_gateway: Callable[..., TestClient], rcs_settings: Settings) -> TestClient:
    return start_gateway(rcs_settings)


def _prefer(session: Session, clock: Clock, account: Account, channel: str) -> None:
    """Make ``channel`` (on the same number) the debtor's preferred contact point."""
    for point in fresh(session).scalars(
        select(ContactPoint).where(ContactPoint.debtor_id == account.debtor_id)
    ):
        point.preferred = False
    session.add(
        ContactPoint(
            debtor_id=account.debtor_id,
            channel=channel,
            address=PHONE,
            preferred=True,
            created_at=clock.now_utc(),
        )
    )
    session.commit()


def _halt_whatsapp(
    client: TestClient,
    graph_server: GraphStub,
    session: Session,
    clock: Clock,
    policy: Policy,
    account: Account,
) -> None:
    """WhatsApp answers a reminder with 401 / 190: the access token expired."""
    graph_server.fail_next(1, status=401, code=190)
    remind(client, session, clock, policy, account)
    wait_until(lambda: len(graph_server.attempts) == 1, what="the refused send")
    wait_until(lambda: "sending_halted_until" in client.get("/readyz").json(), what="the halt")


# -- (a) halts are per channel ------------------------------------------------------------
def test_a_whatsapp_token_failure_halts_whatsapp_while_rcs_and_sms_keep_sending(
    rcs_gateway: TestClient,
    graph_server: GraphStub,
    rbm_server: RbmStub,
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: Callable[..., Account],
) -> None:
    account = make_account(phone=PHONE)
    _halt_whatsapp(rcs_gateway, graph_server, session, clock, policy, account)

    # The same debtor now prefers RCS: the reminder goes out although WhatsApp is halted.
    _prefer(session, clock, account, "rcs")
    remind(rcs_gateway, session, clock, policy, account)
    (rcs,) = rbm_server.wait_for_sends(1)
    assert rcs.body["contentMessage"]["text"].startswith("Hola")
    # …and so does SMS.
    _prefer(session, clock, account, "sms")
    remind(rcs_gateway, session, clock, policy, account)
    (sms,) = rbm_server.wait_for_sms(1)
    assert sms.body["To"] == PHONE

    assert len(graph_server.attempts) == 1 and graph_server.sends == []  # WhatsApp waits
    ready = rcs_gateway.get("/readyz").json()
    assert list(ready["sending_halted_until"]) == ["whatsapp"]
    metrics = rcs_gateway.get("/metrics").text
    assert 'acuerdo_sending_halted{channel="whatsapp"} 1.0' in metrics
    assert 'acuerdo_sending_halted{channel="rcs"} 0.0' in metrics
    assert 'acuerdo_sending_halted{channel="sms"} 0.0' in metrics
    whatsapp = fresh(session).scalars(
        select(Message).where(Message.channel == "whatsapp", Message.direction == "out")
    )
    assert [m.status for m in whatsapp] == ["queued"]  # kept for after the halt, not lost


# -- (b) /readyz says which channel is halted and until when, never why -------------------
def test_readyz_never_shows_the_channels_error_text(
    rcs_gateway: TestClient,
    graph_server: GraphStub,
    rbm_server: RbmStub,
    session: Session,
    clock: Clock,
    policy: Policy,
    make_account: Callable[..., Account],
) -> None:
    account = make_account(phone=PHONE)
    _halt_whatsapp(rcs_gateway, graph_server, session, clock, policy, account)
    answer = rcs_gateway.get("/readyz")
    ready = answer.json()
    assert set(ready) == {"status", "checks", "sending_halted_until"}
    assert set(ready["sending_halted_until"]) == {"whatsapp"}
    text = answer.text.lower()
    for leak in ("190", "401", "stub fault", "oauth", "token", "error", "reason"):
        assert leak not in text, leak
