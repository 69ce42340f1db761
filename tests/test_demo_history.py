"""The demo ships weeks of history, generated through the real campaign and domain code."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from bot.config import Settings
from bot.dashboard.metrics import collections_metrics
from bot.db.engine import session_scope
from bot.db.models import AuditEntry, CampaignSend, Direction, Message, Payment, Promise
from bot.gateway.commands import load_demo_data
from tests.conftest import PINNED_NOW


def demo_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        sandbox=True,  # on the sandbox's built-in secrets (ACUERDO_SANDBOX=1)
        database_url=db_url,
        now=PINNED_NOW,
        var_dir=str(tmp_path / "var"),
        secret_key="test-secret-key",
    )


def test_the_demo_history_fills_the_dashboard_and_is_loaded_once(
    db_url: str, tmp_path: Path, capsys
) -> None:
    settings = demo_settings(db_url, tmp_path)

    load_demo_data(settings)
    first = capsys.readouterr().out
    load_demo_data(settings)
    second = capsys.readouterr().out

    assert "Demo history: 28 days" in first
    assert "Demo history already generated." in second
    clock = settings.clock()
    with session_scope(db_url) as session:
        sends = session.scalars(select(CampaignSend).where(CampaignSend.status == "sent")).all()
        assert len(sends) >= 20
        assert all(s.sent_at is not None and s.sent_at < clock.now_utc() for s in sends)
        assert session.scalar(select(func.count()).select_from(Promise)) >= 3
        assert session.scalar(select(func.count()).select_from(Payment)) > 6  # + the CSV's
        markers = session.scalars(select(AuditEntry).where(AuditEntry.action == "demo_history"))
        assert len(markers.all()) == 1
        # Nothing is left for the gateway to answer or send: it is history.
        unfinished = session.scalars(
            select(Message).where(Message.status.in_(("pending", "processing", "queued")))
        ).all()
        assert unfinished == []
        inbound = session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == Direction.IN.value)
        )
        assert inbound and inbound > 5
        metrics = collections_metrics(
            session, clock, clock.today() - timedelta(days=28), clock.today()
        )
    total = metrics.total
    assert total.sent == len(sends)
    assert 0 < total.read <= total.delivered <= total.sent
    assert total.replied > 0 and total.promises_made > 0 and total.recovered_cents > 0
    assert total.handoffs > 0
