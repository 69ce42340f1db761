"""Settings from the environment and ``.env`` (CONTRACT section 2).

A missing or malformed setting stops start-up with one clear line naming the variable.
"""

from __future__ import annotations

import os
import stat
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings, SettingsError, load_settings
from tests.conftest import REPO_ROOT

VARIABLES = [field.alias for field in Settings.model_fields.values() if field.alias]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No Acuerdo variable in the environment and an empty working directory (no ``.env``).

    Only ``ACUERDO_SANDBOX=1``: outside the sandbox the built-in secrets stop start-up
    (tests/test_secrets_fail_closed.py).
    """
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("ACUERDO_SANDBOX", "1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_setting_has_its_documented_default(clean_env: Path) -> None:
    settings = load_settings()

    assert settings.database_url == "sqlite:///var/acuerdo.db"
    assert settings.timezone == "America/Mexico_City"
    assert settings.now is None
    assert (settings.port, settings.rasa_port, settings.action_port) == (8000, 5005, 5055)
    assert settings.public_url == "http://localhost:8000"
    assert settings.secret_key is None
    assert settings.policy_file == "policy.yml"
    assert settings.whatsapp_api_base_url == "https://graph.facebook.com/v21.0"
    assert settings.payments_provider == "local"
    assert settings.sandbox is True  # clean_env asks for it
    assert Settings.model_fields["sandbox"].default is False  # never on unless asked for
    assert settings.rcs_enabled is False
    assert settings.trusted_proxies is None  # X-Forwarded-For is nobody's to set
    assert (settings.signin_concurrent_hashes, settings.signin_user_address_failures) == (2, 5)
    assert settings.workers == "inline" and settings.workers_url == "http://127.0.0.1:8001"


def test_the_default_clock_is_unpinned(clean_env: Path) -> None:
    assert load_settings().clock().pinned is None


def test_a_dot_env_file_in_the_working_directory_is_read(clean_env: Path) -> None:
    (clean_env / ".env").write_text(
        "ACUERDO_PORT=9100\n"
        "ACUERDO_NOW=2026-11-23\n"
        "ACUERDO_TIMEZONE=America/Monterrey\n"
        "RCS_AGENT_ID=agente\n"
        "RCS_CLIENT_TOKEN=token\n"
    )

    settings = load_settings()

    assert settings.port == 9100
    assert settings.clock().now() == datetime(
        2026, 11, 23, 12, 0, tzinfo=ZoneInfo("America/Monterrey")
    )
    assert settings.rcs_enabled is True


def test_the_environment_wins_over_the_dot_env_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text("ACUERDO_PORT=9100\n")
    monkeypatch.setenv("ACUERDO_PORT", "9200")

    assert load_settings().port == 9200


def test_trusted_proxies_take_addresses_and_networks(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACUERDO_TRUSTED_PROXIES", " 10.0.0.9, 172.16.0.0/12 ,")

    settings = load_settings()

    assert settings.trusted_proxy_list == ["10.0.0.9", "172.16.0.0/12"]


def test_a_heroku_style_postgres_url_is_accepted_as_postgresql(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACUERDO_DATABASE_URL", "postgres://acuerdo:pw@db/acuerdo")

    assert load_settings().database_url == "postgresql://acuerdo:pw@db/acuerdo"


def test_a_trailing_slash_on_the_public_url_is_dropped(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACUERDO_PUBLIC_URL", "https://pagos.example.mx/")

    assert load_settings().public_url == "https://pagos.example.mx"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ACUERDO_PORT", "abc"),
        ("ACUERDO_PORT", "70000"),
        ("RASA_PORT", "0"),
        ("ACUERDO_TIMEZONE", "Mars/Base"),
        ("ACUERDO_NOW", "yesterday"),
        ("ACUERDO_DATABASE_URL", "mysql://x"),
        ("ACUERDO_PUBLIC_URL", "pagos.example.mx"),
        ("PAYMENTS_PROVIDER", "paypal"),
        ("ACUERDO_WORKERS", "elsewhere"),
        ("ACUERDO_WORKERS_PORT", "0"),
        ("ACUERDO_TRUSTED_PROXIES", "10.0.0.1,proxy.internal"),
        ("ACUERDO_SIGNIN_CONCURRENT_HASHES", "0"),
    ],
)
def test_a_malformed_setting_raises_settings_error_naming_the_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as raised:
        load_settings()

    message = str(raised.value)
    assert variable in message
    assert "\n" not in message


def test_a_malformed_setting_in_the_dot_env_file_is_named_too(clean_env: Path) -> None:
    (clean_env / ".env").write_text("ACUERDO_TIMEZONE=Mars/Base\n")

    with pytest.raises(SettingsError, match="ACUERDO_TIMEZONE"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ACUERDO_PORT", "abc"),
        ("ACUERDO_TIMEZONE", "Mars/Base"),
        ("ACUERDO_NOW", "yesterday"),
        ("ACUERDO_DATABASE_URL", "mysql://x"),
    ],
)
def test_the_cli_stops_with_one_line_naming_the_bad_variable(
    clean_env: Path, variable: str, value: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env["ACUERDO_SANDBOX"] = "1"  # the built-in secrets are not what this test is about
    env[variable] = value

    result = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "acuerdo"), "migrate"],
        cwd=clean_env,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr
    # Nothing was created: start-up stopped before touching a database.
    assert not (clean_env / "var").exists()


def test_the_secret_key_is_generated_once_into_the_var_dir_and_reused(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    var_dir = clean_env / "estado"
    monkeypatch.setenv("ACUERDO_VAR_DIR", str(var_dir))

    first = load_settings().resolved_secret_key()
    second = load_settings().resolved_secret_key()

    key_file = var_dir / "secret_key"
    assert first == second
    assert len(first) >= 32
    assert key_file.read_text().strip() == first
    # Only the owner may read the signing key.
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_a_secret_key_from_the_environment_is_used_and_nothing_is_written(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    var_dir = clean_env / "estado"
    monkeypatch.setenv("ACUERDO_VAR_DIR", str(var_dir))
    monkeypatch.setenv("ACUERDO_SECRET_KEY", "clave-del-operador")

    assert load_settings().resolved_secret_key() == "clave-del-operador"
    assert not (var_dir / "secret_key").exists()


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"PAYMENTS_PROVIDER": "stripe"}, "STRIPE_API_KEY"),
        (
            {"PAYMENTS_PROVIDER": "stripe", "STRIPE_API_KEY": "sk_test_acuerdo"},
            "STRIPE_WEBHOOK_SECRET",
        ),
        ({"STRIPE_API_KEY": "pk_test_publishable"}, "STRIPE_API_KEY"),
        ({"STRIPE_WEBHOOK_SECRET": "whsec_new,oldsecret"}, "STRIPE_WEBHOOK_SECRET"),
        ({"STRIPE_API_BASE_URL": "stripe.internal"}, "STRIPE_API_BASE_URL"),
        ({"STRIPE_WEBHOOK_TOLERANCE_SECONDS": "0"}, "STRIPE_WEBHOOK_TOLERANCE_SECONDS"),
    ],
)
def test_stripe_without_its_keys_or_with_a_wrong_one_stops_start_up_in_one_line(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, settings: dict[str, str], named: str
) -> None:
    for variable, value in settings.items():
        monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as raised:
        load_settings()

    assert named in str(raised.value) and "\n" not in str(raised.value)


def test_stripe_takes_two_signing_secrets_during_a_rotation(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYMENTS_PROVIDER", "stripe")
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_acuerdo")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", " whsec_new , whsec_old ")

    settings = load_settings()

    assert settings.stripe_webhook_secrets == ("whsec_new", "whsec_old")
    assert settings.stripe_webhook_tolerance_seconds == 300


def test_conekta_needs_its_key_and_a_readable_rsa_public_key_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    monkeypatch.setenv("PAYMENTS_PROVIDER", "conekta")
    problems = []
    for step in ("no key", "no file", "missing file", "not a key", "not RSA", "good"):
        if step == "no file":
            monkeypatch.setenv("CONEKTA_API_KEY", "key_acuerdo_test")
        elif step == "missing file":
            monkeypatch.setenv("CONEKTA_WEBHOOK_PUBLIC_KEY_FILE", str(clean_env / "absent.pem"))
        elif step == "not a key":
            (clean_env / "absent.pem").write_text("hola")
        elif step in ("not RSA", "good"):
            private = (
                ec.generate_private_key(ec.SECP256R1())
                if step == "not RSA"
                else rsa.generate_private_key(public_exponent=65537, key_size=2048)
            )
            (clean_env / "absent.pem").write_bytes(
                private.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
        try:
            load_settings()
        except SettingsError as exc:
            assert "\n" not in str(exc)
            problems.append(str(exc).split(":")[0])
        else:
            problems.append("ok")

    assert problems == [
        "Invalid setting CONEKTA_API_KEY",
        "Invalid setting CONEKTA_WEBHOOK_PUBLIC_KEY_FILE",
        "Invalid setting CONEKTA_WEBHOOK_PUBLIC_KEY_FILE",
        "Invalid setting CONEKTA_WEBHOOK_PUBLIC_KEY_FILE",
        "Invalid setting CONEKTA_WEBHOOK_PUBLIC_KEY_FILE",
        "ok",
    ]
