"""``acuerdo up`` and ``acuerdo demo``: the Rasa server, the action server and the gateway
together, with prefixed logs, readiness checks and one clean Ctrl-C."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from bot.config import (
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_APP_SECRET,
    SANDBOX_PHONE_NUMBER_ID,
    SANDBOX_VERIFY_TOKEN,
    Settings,
    SettingsError,
    load_serving_settings,
)
from bot.gateway.supervisor import ChildSpec, Supervisor

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
READY_TIMEOUT = 300.0  # loading a Rasa model on a small machine can take minutes


def register(app: typer.Typer) -> None:
    """Add ``up`` and ``demo`` to the ``acuerdo`` app."""
    app.command("up")(up_command)
    app.command("demo")(demo_command)


def _settings() -> Settings:
    try:
        return load_serving_settings()
    except SettingsError as exc:
        typer.secho(str(exc), err=True, fg="red")
        raise typer.Exit(2) from None


def child_specs(settings: Settings, root: Path, model: Path, host: str) -> list[ChildSpec]:
    """The four processes of a running Acuerdo."""
    from bot.engine.action_server import command as action_server_command
    from bot.engine.training import rasa_env, serve_command
    from bot.gateway.workers_app import command as workers_command

    token = settings.resolved_internal_token()
    ports = {
        "ACUERDO_PORT": str(settings.port),
        "RASA_PORT": str(settings.rasa_port),
        "ACTION_PORT": str(settings.action_port),
        "ACUERDO_INTERNAL_TOKEN": token,  # the three processes require it of each other
    }
    app_env = {**os.environ, **ports}
    app_env["PYTHONPATH"] = str(root) + os.pathsep + app_env.get("PYTHONPATH", "")
    rasa = ChildSpec(
        name="rasa",
        command=serve_command(root, model, port=settings.rasa_port, token=token),
        env={**rasa_env(root), **ports},
        ready_url=f"http://127.0.0.1:{settings.rasa_port}/",
        cwd=str(root),
    )
    actions = ChildSpec(
        name="actions",
        # On loopback: only the Rasa server next to it calls it.
        command=action_server_command(sys.executable, settings.action_port),
        env=app_env,
        ready_url=f"http://127.0.0.1:{settings.action_port}/health",
        cwd=str(root),
    )
    gateway = ChildSpec(
        name="gateway",
        command=[
            sys.executable,
            "-m",
            "uvicorn",
            "bot.gateway.app:app_from_env",
            "--factory",
            "--host",
            host,
            "--port",
            str(settings.port),
            "--no-access-log",
            "--no-proxy-headers",  # the app trusts X-Forwarded-For from ACUERDO_TRUSTED_PROXIES
        ],  # fmt: skip
        env=app_env,
        ready_url=f"http://127.0.0.1:{settings.port}/healthz",
        cwd=str(root),
    )
    workers_port = settings.workers_url.rsplit(":", 1)[1]
    taken = {str(settings.port), str(settings.rasa_port), str(settings.action_port)}
    if workers_port in taken:
        raise SettingsError(
            f"Invalid setting ACUERDO_WORKERS_PORT: {workers_port} is already the gateway's,"
            " Rasa's or the action server's port; set a free one"
        )
    gateway.env = {**app_env, "ACUERDO_WORKERS": "separate", "ACUERDO_WORKERS_PORT": workers_port}
    workers = ChildSpec(
        name="workers",
        # Their own process, so the gateway's acks never wait behind them for the GIL.
        command=workers_command(sys.executable, int(workers_port)),
        env={**gateway.env},
        ready_url=f"{settings.workers_url}/healthz",
        cwd=str(root),
    )
    # Stop order: the gateway first (no new work), the workers (work in flight finishes),
    # then the engine, then the actions.
    return [gateway, workers, rasa, actions]


def _print_urls(settings: Settings, host: str, *, demo: bool) -> None:
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    base = f"http://{shown}:{settings.port}"
    lines = [
        "",
        "Acuerdo is up.",
        f"  Gateway              {base}",
        f"  WhatsApp webhook     {base}/webhooks/whatsapp",
        f"  Payment pages        {settings.public_url}/pay/<token>",
        f"  Agent console        {base}/console",
        f"  Health / metrics     {base}/readyz  ·  {base}/metrics",
        f"  Rasa server          http://127.0.0.1:{settings.rasa_port}",
        f"  Action server        http://127.0.0.1:{settings.action_port}",
    ]
    if settings.sandbox:
        lines.insert(2, f"  >> Open the WhatsApp sandbox: {base}/sandbox")
    if demo:
        lines.append("  Demo portfolio loaded; pick a debtor on the sandbox page and say «hola».")
        from bot.console.demo import demo_login_line

        lines.append(f"  Console sign-in: {demo_login_line()}.")
    lines.append("Press Ctrl-C to stop everything.")
    typer.echo("\n".join(lines))


def run_stack(settings: Settings, host: str, *, demo: bool = False) -> int:
    """Migrate, make sure a model exists, run the four processes until Ctrl-C."""
    from bot.db.migrate import upgrade
    from bot.engine.training import TrainingError, ensure_model

    root = Path.cwd()
    upgrade(settings.database_url)
    try:
        model = ensure_model(root, os.environ.get("ACUERDO_TRAIN_CONFIG") or "config.yml")
        specs = child_specs(settings, root, model, host)
    except TrainingError as exc:
        typer.secho(str(exc), err=True, fg="red")
        return 1
    supervisor = Supervisor(specs)
    supervisor.say(f"starting Rasa ({model.name}), the action server, the gateway and its workers…")
    return supervisor.run(READY_TIMEOUT, lambda: _print_urls(settings, host, demo=demo))


def up_command(
    host: str = typer.Option(
        "127.0.0.1", help="Interface the gateway listens on (0.0.0.0 behind a proxy)."
    ),
) -> None:
    """Run the Rasa server, the action server, the gateway and its workers (Ctrl-C stops all)."""
    settings = _settings()
    raise typer.Exit(run_stack(settings, host))


SANDBOX_ENV = {
    "ACUERDO_SANDBOX": "1",  # the sandbox page and its built-in credentials (never inferred)
    "WHATSAPP_VERIFY_TOKEN": SANDBOX_VERIFY_TOKEN,
    "WHATSAPP_APP_SECRET": SANDBOX_APP_SECRET,
    "WHATSAPP_ACCESS_TOKEN": SANDBOX_ACCESS_TOKEN,
    "WHATSAPP_PHONE_NUMBER_ID": SANDBOX_PHONE_NUMBER_ID,
    "WHATSAPP_API_BASE_URL": "https://graph.facebook.com/v21.0",
}


def load_demo_data(settings: Settings) -> None:
    """Migrate and load the demo portfolio and payments through the importers, then a few
    weeks of simulated reminders, replies, promises and payments (all idempotent)."""
    from bot.db.migrate import upgrade
    from bot.demo.history import load_demo_history
    from bot.importers.commands import run_payments_import, run_portfolio_import
    from bot.policy import load_policy

    upgrade(settings.database_url)
    clock = settings.clock()
    portfolio = run_portfolio_import(
        DEMO_DIR / "portfolio.csv", settings.database_url, clock, show_progress=False
    )
    typer.echo(f"Demo portfolio: {portfolio.summary()}")
    payments = run_payments_import(
        DEMO_DIR / "payments.csv",
        settings.database_url,
        clock,
        load_policy(settings.policy_file),
        show_progress=False,
    )
    typer.echo(f"Demo payments: {payments.summary()}")
    from bot.console.demo import ensure_demo_console_users

    created = ensure_demo_console_users(settings.database_url, clock)
    typer.echo(f"Demo console users: {', '.join(created) or 'already there'}")
    typer.echo(load_demo_history(settings).summary())  # weeks of reminders for the dashboard


def demo_command(
    host: str = typer.Option("127.0.0.1", help="Interface the gateway listens on."),
) -> None:
    """``up`` with the demo portfolio loaded and the WhatsApp sandbox on (no real account)."""
    os.environ.update(SANDBOX_ENV)  # the children inherit it: outbound goes to the sandbox sink
    settings = _settings()
    load_demo_data(settings)
    raise typer.Exit(run_stack(settings, host, demo=True))
