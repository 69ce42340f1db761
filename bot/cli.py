"""The ``acuerdo`` command."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from bot.config import Settings, SettingsError, get_settings
from bot.policy import PolicyError

app = typer.Typer(
    help="Acuerdo: a conversational debt-negotiation assistant.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
agents_app = typer.Typer(help="Console users (agents and supervisors).", no_args_is_help=True)
app.add_typer(agents_app, name="agents")


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        typer.secho(str(exc), err=True, fg="red")
        raise typer.Exit(2) from None


@app.command()
def migrate() -> None:
    """Create or upgrade the database to the latest schema."""
    from bot.db.migrate import upgrade

    settings = settings_or_exit()
    upgrade(settings.database_url)
    typer.echo("Database is up to date.")


@app.command()
def train(
    config: str = typer.Option(
        None, envvar="ACUERDO_TRAIN_CONFIG", help="Rasa config file (default config.yml)."
    ),
    force: bool = typer.Option(False, help="Train even when a cached model matches."),
) -> None:
    """Train the Rasa model into models/ (skipped when data and config are unchanged)."""
    from bot.engine.training import TrainingError, ensure_model

    try:
        model = ensure_model(Path.cwd(), config or "config.yml", force=force)
    except TrainingError as exc:
        typer.secho(str(exc), err=True, fg="red")
        raise typer.Exit(1) from None
    typer.echo(f"Model ready: {model}")


def _read_password(prompt: str) -> str:
    """A password from standard input (one line), or typed twice at a terminal."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))


@contextmanager
def _refused_as_exit(refusal: type[Exception]) -> Iterator[None]:
    """A refusal of the ledger's (a bad name, a short password) is one red line, exit 1."""
    try:
        yield
    except refusal as exc:
        typer.secho(str(exc), err=True, fg="red")
        raise typer.Exit(1) from None


@agents_app.command("add")
def agents_add(
    username: str,
    role: str = typer.Option("agent", help="agent or supervisor"),
) -> None:
    """Create a console user; the password is read from standard input."""
    from bot.console_users import ConsoleUserError, create_console_user
    from bot.db.engine import session_scope

    settings = settings_or_exit()
    password = _read_password("Password")
    with _refused_as_exit(ConsoleUserError), session_scope(settings.database_url) as session:
        create_console_user(session, settings.clock(), username, password, role)
    typer.echo(f"Created {role} '{username}'.")


@agents_app.command("password")
def agents_password(username: str) -> None:
    """Give a console user a new password (read like ``add``); their sessions all end."""
    from bot.console_users import ConsoleUserError, set_password
    from bot.db.engine import session_scope

    settings = settings_or_exit()
    password = _read_password("New password")
    with _refused_as_exit(ConsoleUserError), session_scope(settings.database_url) as session:
        set_password(session, settings.clock(), username, password)
    typer.echo(f"New password for '{username}'; every session of theirs has ended.")


@agents_app.command("deactivate")
def agents_deactivate(username: str) -> None:
    """Take a console user out: no more sign-ins, every session ends now."""
    from bot.console_users import ConsoleUserError, deactivate_console_user
    from bot.db.engine import session_scope

    settings = settings_or_exit()
    with _refused_as_exit(ConsoleUserError), session_scope(settings.database_url) as session:
        deactivate_console_user(session, settings.clock(), username)
    typer.echo(f"Deactivated '{username}'.")


# Modules that add their own commands with ``register(app)``.
COMMAND_MODULES = (
    "bot.importers.commands",
    "bot.gateway.commands",
    "bot.campaigns.commands",
    "bot.payments.commands",
)


def _register_optional_commands() -> None:
    """Commands whose modules register themselves on the app (absent modules are skipped)."""
    import importlib

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not exc.name or not (name == exc.name or name.startswith(exc.name + ".")):
                raise
            continue
        module.register(app)


def main() -> None:
    """Entry point of the ``acuerdo`` console script."""
    _register_optional_commands()
    try:
        app()
    except (SettingsError, PolicyError) as exc:
        typer.secho(str(exc), err=True, fg="red")
        raise SystemExit(2) from None
