"""The dashboard in a real browser (Playwright driving Debian's headless Chromium) in front of
a real gateway (uvicorn) on the demo data and its generated history: a supervisor signs in
and every chart is drawn by Chart.js with the demo's numbers."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from bot.config import SANDBOX_ACCESS_TOKEN, SANDBOX_APP_SECRET, Settings
from bot.console_users import create_console_user
from bot.db.engine import session_scope
from bot.gateway.commands import load_demo_data
from tests.conftest import PINNED_NOW
from tests.conftest_gateway import FAST
from tests.graph_stub import GraphStub, wait_until
from tests.rasa_stack import free_port
from tests.rasa_standin import RasaStandIn

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
USER, PASSWORD = "supervisora.tablero", "clave-del-tablero-2026"
CHARTS = (
    "chart-messages",
    "chart-recovered",
    "chart-containment",
    "chart-promises",
    "chart-handoffs",
)


@pytest.fixture
def demo_gateway(
    db_url: str,
    graph_server: GraphStub,
    rasa_standin: RasaStandIn,
    gateway_policy_file: Path,
    tmp_path: Path,
) -> Iterator[str]:
    """The gateway on a free port with the demo portfolio, payments and history loaded."""
    from bot.gateway.app import create_app

    port = free_port()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        sandbox=True,  # on the sandbox's built-in secrets (ACUERDO_SANDBOX=1)
        database_url=db_url,
        now=PINNED_NOW,
        whatsapp_api_base_url=graph_server.url,
        whatsapp_app_secret=SANDBOX_APP_SECRET,
        whatsapp_access_token=SANDBOX_ACCESS_TOKEN,
        rasa_port=rasa_standin.port,
        action_port=rasa_standin.port,
        policy_file=str(gateway_policy_file),
        var_dir=str(tmp_path / "var"),
        secret_key="test-secret-key",
        public_url=f"http://127.0.0.1:{port}",
        port=port,
    )
    load_demo_data(settings)
    with session_scope(db_url) as session:
        create_console_user(session, settings.clock(), USER, PASSWORD, "supervisor")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, tuning=FAST),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, "the gateway to listen")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install chromium (.ci/run does)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_the_dashboard_draws_its_charts_with_the_demo_history(
    demo_gateway: str, browser: Any, tmp_path: Path
) -> None:
    expect = playwright_api.expect
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{demo_gateway}/dashboard")
    expect(page.locator("#username")).to_be_visible()  # not signed in: the login form
    page.fill("#username", USER)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console**")
    page.goto(f"{demo_gateway}/dashboard")
    expect(page.locator("body[data-charts=ready]")).to_have_count(1, timeout=20_000)

    drawn = page.evaluate(
        """ids => ids.map(id => {
            const chart = Chart.getChart(id);
            if (!chart) return [id, 0, 0];
            const total = chart.data.datasets.flatMap(d => d.data)
                .reduce((sum, v) => sum + (v || 0), 0);
            const canvas = document.getElementById(id);
            const pixels = canvas.getContext("2d")
                .getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) painted++;
            return [id, total, painted];
        })""",
        list(CHARTS),
    )
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("ACUERDO_SCREENSHOT_DIR"):
        target = Path(os.environ["ACUERDO_SCREENSHOT_DIR"]) / "dashboard.png"
        target.write_bytes(shot.read_bytes())

    assert errors == []
    for chart_id, total, painted in drawn:
        assert total > 0, f"{chart_id} has no data"
        assert painted > 500, f"{chart_id} drew nothing"
    expect(page.locator(".kpi").first).to_contain_text("Recordatorios enviados")
    expect(page.locator("table.grid tbody tr").first).to_be_visible()
    csv_link = page.locator("a", has_text="Descargar CSV")
    assert csv_link.get_attribute("href", timeout=5_000).startswith("/dashboard/export.csv")
