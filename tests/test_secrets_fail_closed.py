"""Secrets fail closed (CONTRACT section 2): the sandbox is asked for, never inferred.

An operator who configures WhatsApp but forgets one secret must not get the sandbox (every
debtor's name, phone and birth date on ``/sandbox/api/debtors``) nor a gateway that accepts
webhooks signed with the public sandbox secrets: start-up stops with one line naming the
variable instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.config import (
    SANDBOX_ACCESS_TOKEN,
    SANDBOX_APP_SECRET,
    SANDBOX_PAYMENTS_SECRET,
    SANDBOX_RCS_CLIENT_TOKEN,
    SANDBOX_VERIFY_TOKEN,
    Settings,
    SettingsError,
    load_serving_settings,
    load_settings,
)
from bot.payments.local import local_webhook_body, sign_local_webhook
from tests.conftest_gateway import envelope, signed_post, text
from tests.live_gateway import REAL_SECRETS

pytest_plugins = ["tests.conftest_gateway"]

VARIABLES = [field.alias for field in Settings.model_fields.values() if field.alias]

# What an operator who half-configured WhatsApp has set: real-looking values, no sandbox.
REAL_ENV = {
    "WHATSAPP_ACCESS_TOKEN": "EAAG-real-looking-access-token",
    "WHATSAPP_PHONE_NUMBER_ID": "109876543210987",
    "WHATSAPP_APP_SECRET": "a1b2c3d4e5f6-operator-app-secret",
    "WHATSAPP_VERIFY_TOKEN": "operator-verify-token",
    "PAYMENTS_WEBHOOK_SECRET": "operator-payments-secret",
}


@pytest.fixture
def operator_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., None]:
    """No Acuerdo variable and no ``.env``; then ``REAL_ENV`` minus/plus what a test says."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ACUERDO_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("ACUERDO_SECRET_KEY", "operator-signing-key")

    def _set(*, without: tuple[str, ...] = (), **extra: str) -> None:
        for name, value in {**REAL_ENV, **extra}.items():
            if name not in without:
                monkeypatch.setenv(name, value)

    return _set


def _refused(variable: str) -> str:
    with pytest.raises(SettingsError) as raised:
        load_serving_settings()
    message = str(raised.value)
    assert variable in message, message
    assert "\n" not in message
    return message


# -- (a) WhatsApp configured, app secret forgotten ---------------------------------------------
def test_a_forgotten_app_secret_stops_start_up_naming_it(operator_env: Callable[..., None]) -> None:
    operator_env(without=("WHATSAPP_APP_SECRET",))

    message = _refused("WHATSAPP_APP_SECRET")
    assert "sandbox" in message and "ACUERDO_SANDBOX=1" in message


@pytest.mark.parametrize(
    ("variable", "public"),
    [
        ("WHATSAPP_APP_SECRET", SANDBOX_APP_SECRET),
        ("WHATSAPP_VERIFY_TOKEN", SANDBOX_VERIFY_TOKEN),
        ("WHATSAPP_ACCESS_TOKEN", SANDBOX_ACCESS_TOKEN),
        ("PAYMENTS_WEBHOOK_SECRET", SANDBOX_PAYMENTS_SECRET),
    ],
)
def test_a_secret_set_to_the_public_sandbox_value_stops_start_up(
    operator_env: Callable[..., None], variable: str, public: str
) -> None:
    operator_env(**{variable: public})

    assert "still the public sandbox value" in _refused(variable)


@pytest.mark.parametrize("variable", ["WHATSAPP_APP_SECRET", "PAYMENTS_WEBHOOK_SECRET"])
def test_an_empty_secret_stops_start_up(operator_env: Callable[..., None], variable: str) -> None:
    operator_env(**{variable: "  "})

    _refused(variable)


# -- (b) payments secret forgotten ---------------------------------------------------------------
def test_a_forgotten_payments_secret_stops_start_up_naming_it(
    operator_env: Callable[..., None],
) -> None:
    operator_env(without=("PAYMENTS_WEBHOOK_SECRET",))

    _refused("PAYMENTS_WEBHOOK_SECRET")


def test_nothing_configured_and_no_sandbox_does_not_start_either(
    operator_env: Callable[..., None],
) -> None:
    operator_env(without=tuple(REAL_ENV))

    _refused("WHATSAPP_APP_SECRET")


def test_rcs_configured_with_the_sandbox_client_token_stops_start_up(
    operator_env: Callable[..., None],
) -> None:
    operator_env(RCS_AGENT_ID="cobranza@rbm.goog", RCS_CLIENT_TOKEN=SANDBOX_RCS_CLIENT_TOKEN)

    _refused("RCS_CLIENT_TOKEN")


def test_rcs_configured_without_a_client_token_stops_start_up(
    operator_env: Callable[..., None],
) -> None:
    operator_env(RCS_AGENT_ID="cobranza@rbm.goog")

    _refused("RCS_CLIENT_TOKEN")


def test_every_secret_of_its_own_starts_with_the_sandbox_off(
    operator_env: Callable[..., None],
) -> None:
    operator_env(RCS_AGENT_ID="cobranza@rbm.goog", RCS_CLIENT_TOKEN="operator-rcs-token")

    settings = load_serving_settings()
    assert settings.sandbox is False
    assert settings.whatsapp_app_secret == REAL_ENV["WHATSAPP_APP_SECRET"]


def test_acuerdo_sandbox_allows_the_built_in_credentials(
    operator_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACUERDO_SANDBOX", "1")

    settings = load_serving_settings()
    assert settings.sandbox is True
    assert settings.whatsapp_app_secret == SANDBOX_APP_SECRET


def test_the_gateway_factory_refuses_to_start_on_a_forgotten_app_secret(
    operator_env: Callable[..., None],
) -> None:
    """``acuerdo up`` runs ``app_from_env``: no app, so no sandbox page, no forged webhooks."""
    from bot.gateway.app import app_from_env

    operator_env(without=("WHATSAPP_APP_SECRET",))

    with pytest.raises(SettingsError, match="WHATSAPP_APP_SECRET"):
        app_from_env()


# -- (c) a gateway on real secrets -------------------------------------------------------------
@pytest.fixture
def real_gateway(
    start_gateway: Callable[..., TestClient], gateway_settings: Settings
) -> TestClient:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, **{**gateway_settings.model_dump(), **REAL_SECRETS}
    )
    assert settings.sandbox is False
    return start_gateway(settings)


@pytest.mark.parametrize("path", ["/sandbox", "/sandbox/api/debtors"])
def test_a_gateway_on_real_secrets_has_no_sandbox(real_gateway: TestClient, path: str) -> None:
    assert real_gateway.get(path).status_code == 404


def test_a_gateway_on_real_secrets_refuses_sandbox_signed_webhooks(
    real_gateway: TestClient,
) -> None:
    whatsapp = signed_post(real_gateway, envelope([text("hola")]), secret=SANDBOX_APP_SECRET)
    assert whatsapp.status_code == 401

    raw = local_webhook_body(
        event_id="evt-forged", reference="0000000000", amount_cents=100,
        paid_at=datetime(2026, 11, 23, 12, 0),
    )  # fmt: skip
    payment = real_gateway.post(
        "/webhooks/payments/local",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Acuerdo-Signature": sign_local_webhook(SANDBOX_PAYMENTS_SECRET, raw),
        },
    )
    assert payment.status_code == 401


def test_the_sandbox_is_asked_for_not_inferred(
    start_gateway: Callable[..., TestClient], gateway_settings: Settings
) -> None:
    """Real secrets and ``ACUERDO_SANDBOX=1``: the sandbox page is there because it was asked."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, **{**gateway_settings.model_dump(), **REAL_SECRETS, "sandbox": True}
    )
    assert start_gateway(settings).get("/sandbox").status_code == 200


# -- (d) acuerdo demo ----------------------------------------------------------------------------
def test_acuerdo_demo_turns_the_sandbox_on(
    operator_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.gateway.commands import SANDBOX_ENV

    operator_env(without=tuple(REAL_ENV))
    for name, value in SANDBOX_ENV.items():
        monkeypatch.setenv(name, value)

    settings = load_settings()
    assert settings.sandbox is True
    assert settings.whatsapp_app_secret == SANDBOX_APP_SECRET

    # It is ACUERDO_SANDBOX that turns it on, not the sandbox credentials themselves.
    monkeypatch.delenv("ACUERDO_SANDBOX")
    _refused("WHATSAPP_APP_SECRET")


def test_acuerdo_demo_wins_over_a_dot_env_without_the_sandbox(
    operator_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``demo`` puts SANDBOX_ENV into the environment, which wins over the ``.env`` file."""
    from bot.gateway.commands import SANDBOX_ENV

    operator_env(without=tuple(REAL_ENV))
    (tmp_path / ".env").write_text("ACUERDO_SANDBOX=0\n")
    for name, value in SANDBOX_ENV.items():
        monkeypatch.setenv(name, value)

    assert load_settings().sandbox is True


def test_migrations_and_training_need_no_channel_secret(operator_env: Callable[..., None]) -> None:
    """Only the processes that take webhooks or send messages check the secrets: an operator
    can migrate the database and train before configuring WhatsApp, and the action server on
    its own machine holds no channel secret at all."""
    operator_env(without=tuple(REAL_ENV))

    settings = load_settings()
    assert settings.sandbox is False
    assert settings.unsafe_secret() is not None
