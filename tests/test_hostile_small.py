"""Attacks of issue 13, point 11 ("smaller ones"): one channel's halt stopping every channel,
``/readyz`` telling strangers why sending stopped, a Tijuana debtor messaged at dawn by
Mexico City's clock, and an import that rewrites the debtor already on a phone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.base import ChannelAdapter, RenderedMessage
from bot.channels.fallback import contact_delay
from bot.clock import Clock
from bot.compliance import Verdict, decide
from bot.compliance.outreach import window_end_utc
from bot.config import Settings
from bot.conversation.outbox import Outbox, enqueue
from bot.db.engine import session_factory
from bot.db.models import Account, ContactPoint, Debtor, Message
from bot.domain.accounts import get_account
from bot.domain.conversations import get_or_create_conversation
from bot.importers.csv_rows import open_csv
from bot.importers.portfolio import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, import_portfolio
from bot.importers.report import ImportReport
from bot.policy import Policy
from tests.conftest_gateway import FAST, PHONE
from tests.graph_stub import GraphStub, wait_until
from tests.rbm_stub import RbmStub
from tests.test_channel_fallback import fresh, remind
from tests.test_cli_import import Cli
from tests.test_import_portfolio import portfolio_row, write_csv

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


def test_a_halt_holds_back_only_its_channels_rows_and_ends_on_time(
    db_url: str, session: Session, clock: Clock, policy: Policy
) -> None:
    outbox = Outbox(
        db_url=db_url,
        clock=clock,
        policy=policy,
        adapters=cast(dict[str, ChannelAdapter], {"whatsapp": None, "rcs": None}),
        tuning=FAST,
    )
    ids = {}
    for channel in ("whatsapp", "rcs"):
        conversation = get_or_create_conversation(session, clock, channel, PHONE)
        session.flush()
        row = enqueue(
            session,
            clock,
            conversation_id=conversation.id,
            channel=channel,
            rendered=RenderedMessage(kind="text", text="hola", body={"type": "text"}),
        )
        session.flush()
        ids[channel] = row.id
    session.commit()

    until = outbox.halts.halt("whatsapp", 60, "error 190: token expired")
    assert [c.message_id for c in outbox.claim(10)] == [ids["rcs"]]
    assert outbox.claim(10) == []  # the WhatsApp row waits…
    assert outbox.next_due() is not None and outbox.next_due() <= until  # …and is woken for
    assert outbox.halts.reason("whatsapp") == "error 190: token expired"  # (for the log)

    outbox.halts.halt("whatsapp", 0, "error 190: token expired")  # the hour is over
    assert outbox.halts.active() == {}
    assert [c.message_id for c in outbox.claim(10)] == [ids["whatsapp"]]


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


# -- (c) the time zone comes from the number when the portfolio gives none ----------------
TIJUANA_PHONE = "+526641234567"  # Baja California: UTC-8 in November (Mexico City: UTC-6)
TIJUANA = ZoneInfo("America/Tijuana")


def _eight_to_ten(policy: Policy) -> Policy:
    """The policy with contact hours starting at 08:00 debtor local time."""
    window = policy.contact.window.model_copy(update={"start": time(8, 0)})
    return policy.model_copy(
        update={"contact": policy.contact.model_copy(update={"window": window})}
    )


def _at(local: str) -> Clock:
    """The business clock pinned at ``local`` Mexico City time on Monday 2026-11-23."""
    return Clock.from_setting(f"2026-11-23T{local}:00-06:00", "America/Mexico_City")


def test_a_tijuana_debtor_without_a_zone_is_not_messaged_at_dawn_by_mexico_citys_clock(
    session: Session, policy: Policy, make_account: Callable[..., Account]
) -> None:
    policy = _eight_to_ten(policy)
    account = make_account(phone=TIJUANA_PHONE, timezone=None)
    (point,) = account.debtor.contact_points
    dawn = _at("08:00")  # 06:00 in Tijuana
    decision = decide(session, dawn, policy, account, point, "reminder")
    assert decision.verdict == Verdict.DELAY and decision.reason == "outside_hours"
    assert decision.until == datetime(2026, 11, 23, 8, 0, tzinfo=TIJUANA)  # 10:00 in CDMX
    assert contact_delay(policy, dawn, account.debtor).total_seconds() == 2 * 3600

    inside_both = _at("10:30")  # 08:30 in Tijuana
    assert decide(session, inside_both, policy, account, point, "reminder").sends
    # The reminder may not leave after Tijuana's window closes (22:00 there, 00:00 in CDMX).
    assert window_end_utc(inside_both, policy, account) == datetime(
        2026, 11, 23, 22, 0, tzinfo=TIJUANA
    )


def test_the_portfolios_zone_wins_over_the_numbers(
    session: Session, policy: Policy, make_account: Callable[..., Account]
) -> None:
    policy = _eight_to_ten(policy)
    account = make_account(phone=TIJUANA_PHONE, timezone="America/Mexico_City")
    (point,) = account.debtor.contact_points
    assert decide(session, _at("08:00"), policy, account, point, "reminder").sends


def test_a_number_with_several_zones_must_be_inside_the_hours_in_every_one(
    session: Session, policy: Policy, make_account: Callable[..., Account]
) -> None:
    from bot.compliance.window import debtor_zones  # (new with issue 13, point 11c)

    policy = _eight_to_ten(policy)
    # Idaho's 208 is Boise (UTC-7) and Los Angeles (UTC-8) time.
    account = make_account(phone="+12085551234", timezone=None)
    (point,) = account.debtor.contact_points
    boise, pacific = ZoneInfo("America/Boise"), ZoneInfo("America/Los_Angeles")
    assert set(debtor_zones(account.debtor, _at("12:00"))) == {boise, pacific}
    early = _at("09:30")  # 08:30 in Boise, 07:30 in Los Angeles
    decision = decide(session, early, policy, account, point, "reminder")
    assert decision.verdict == Verdict.DELAY
    assert decision.until == datetime(2026, 11, 23, 8, 0, tzinfo=pacific)
    assert decide(session, _at("10:30"), policy, account, point, "reminder").sends
    # The window closes with Boise's (22:00 there), the first of the two.
    assert window_end_utc(_at("10:30"), policy, account) == datetime(
        2026, 11, 23, 22, 0, tzinfo=boise
    )


def test_numbers_whose_zones_share_no_hours_are_never_messaged(
    session: Session, clock: Clock, policy: Policy, make_account: Callable[..., Account]
) -> None:
    # Contact hours 08:00-10:00 less the 60-minute margin: 08:00-09:00 in Tijuana (UTC-8)
    # and in Cancún (UTC-5) never meet; a debtor on numbers of both is never messaged.
    window = policy.contact.window.model_copy(update={"start": time(8, 0), "end": time(10, 0)})
    policy = policy.model_copy(
        update={"contact": policy.contact.model_copy(update={"window": window})}
    )
    account = make_account(phone=TIJUANA_PHONE, timezone=None)
    session.add(
        ContactPoint(
            debtor_id=account.debtor_id,
            channel="sms",
            address="+529981234567",  # Cancún
            preferred=False,
            created_at=clock.now_utc(),
        )
    )
    session.commit()
    point = next(p for p in account.debtor.contact_points if p.channel == "whatsapp")
    decision = decide(session, _at("12:00"), policy, account, point, "reminder")
    assert decision.verdict == Verdict.SUPPRESS
    assert decision.reason == "no_common_contact_hours"


# -- (d) an import may not rewrite the debtor already on a phone --------------------------
LAURA = {"full_name": "Laura Méndez", "phone": "55 1000 0001", "birth_date": "1985-03-15"}


def _import(db_url: str, clock: Clock, path: Path, rows: list[dict[str, str]]) -> ImportReport:
    table = open_csv(write_csv(path, rows), REQUIRED_COLUMNS, OPTIONAL_COLUMNS)
    return import_portfolio(session_factory(db_url), clock, table)


def test_an_import_on_a_known_phone_with_another_name_or_birth_date_is_rejected(
    db_url: str, clock: Clock, session: Session, tmp_path: Path
) -> None:
    first = _import(db_url, clock, tmp_path / "a.csv", [portfolio_row(1, **LAURA, email="l@x.mx")])
    assert first.created == 1
    report = _import(
        db_url,
        clock,
        tmp_path / "b.csv",
        [
            portfolio_row(2),  # line 2: someone else, loads
            portfolio_row(3, **{**LAURA, "full_name": "Otra Persona"}),  # line 3
            portfolio_row(4, **{**LAURA, "birth_date": "1990-01-01"}),  # line 4
            portfolio_row(1, **{**LAURA, "full_name": "X", "birth_date": "1990-01-01"}),  # 5
        ],
    )
    assert (report.created, report.updated, report.rejected) == (1, 0, 3)
    assert report.error_lines() == [
        "line 3, column phone: this phone already belongs to a debtor with a different "
        "full_name; the row was not loaded and that debtor was not changed",
        "line 4, column phone: this phone already belongs to a debtor with a different "
        "birth_date; the row was not loaded and that debtor was not changed",
        "line 5, column phone: this phone already belongs to a debtor with a different "
        "full_name and birth_date; the row was not loaded and that debtor was not changed",
    ]
    session.expire_all()
    assert get_account(session, "ACC-0003") is None and get_account(session, "ACC-0004") is None
    laura = get_account(session, "ACC-0001")
    assert laura is not None
    assert laura.debtor.birth_date == date(1985, 3, 15) and laura.debtor.email == "l@x.mx"
    assert laura.debtor.full_name == "Laura Méndez"  # line 5 (her own account) changed nothing
    assert session.scalar(select(Debtor.id).where(Debtor.full_name == "Otra Persona")) is None

    # The same person written another way is no conflict: a second account of hers.
    same = [portfolio_row(6, **{**LAURA, "full_name": "LAURA  MENDEZ"})]
    assert _import(db_url, clock, tmp_path / "c.csv", same).created == 1
    session.expire_all()
    second = get_account(session, "ACC-0006")
    assert second is not None and second.debtor_id == laura.debtor_id


def test_two_rows_of_one_file_on_one_new_phone_must_be_the_same_person(
    db_url: str, clock: Clock, session: Session, tmp_path: Path
) -> None:
    report = _import(
        db_url,
        clock,
        tmp_path / "a.csv",
        [portfolio_row(1, **LAURA), portfolio_row(2, **{**LAURA, "full_name": "Otra Persona"})],
    )
    assert (report.created, report.rejected) == (1, 1)
    assert report.error_lines() == [
        "line 3, column phone: this phone is on line 2 with a different full_name"
    ]
    laura = get_account(session, "ACC-0001")
    assert laura is not None and laura.debtor.full_name == "Laura Méndez"


def test_the_operator_sees_the_conflicting_line_and_the_rest_loads(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    assert cli("migrate").returncode == 0
    known = write_csv(tmp_path / "known.csv", [portfolio_row(1, **LAURA)])
    assert cli("import-portfolio", str(known)).returncode == 0
    rows = [portfolio_row(2), portfolio_row(3, **{**LAURA, "full_name": "Otra Persona"})]
    result = cli("import-portfolio", str(write_csv(tmp_path / "next.csv", rows)))
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        "Loaded 1 row (1 new, 0 updated); rejected 1:",
        "line 3, column phone: this phone already belongs to a debtor with a different "
        "full_name; the row was not loaded and that debtor was not changed",
    ]
    assert cli.account_ids() == ["ACC-0001", "ACC-0002"]
