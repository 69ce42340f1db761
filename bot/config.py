"""Settings: environment variables and a ``.env`` file (CONTRACT section 2).

A missing or malformed setting stops start-up with one line naming the variable.
"""

from __future__ import annotations

import ipaddress
import secrets
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.clock import Clock, ClockError, parse_pinned_now

SANDBOX_VERIFY_TOKEN = "acuerdo-sandbox-verify"
SANDBOX_APP_SECRET = "acuerdo-sandbox-app-secret"
SANDBOX_ACCESS_TOKEN = "acuerdo-sandbox-access-token"
SANDBOX_PHONE_NUMBER_ID = "100000000000001"
SANDBOX_PAYMENTS_SECRET = "acuerdo-sandbox-payments-secret"
PAYMENT_PROVIDERS = ("local", "stripe", "conekta")  # PAYMENTS_PROVIDER (bot/payments/provider.py)
# The sandbox's RCS agent (used while the sandbox is on and RCS_* are unset).
SANDBOX_RCS_AGENT_ID = "acuerdo-sandbox@rbm.goog"
SANDBOX_RCS_CLIENT_TOKEN = "acuerdo-sandbox-rcs-client-token"


class SettingsError(SystemExit):
    """A setting is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    """All runtime settings of Acuerdo."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = Field("sqlite:///var/acuerdo.db", alias="ACUERDO_DATABASE_URL")
    timezone: str = Field("America/Mexico_City", alias="ACUERDO_TIMEZONE")
    now: str | None = Field(None, alias="ACUERDO_NOW")
    port: int = Field(8000, alias="ACUERDO_PORT", ge=1, le=65535)
    rasa_port: int = Field(5005, alias="RASA_PORT", ge=1, le=65535)
    action_port: int = Field(5055, alias="ACTION_PORT", ge=1, le=65535)
    # Scale-out (README "Deployment on more than one machine"): the Rasa servers the gateway
    # spreads turns over, and the action server's base URL for its health check.
    rasa_urls: str | None = Field(None, alias="RASA_URLS")
    action_server_url: str | None = Field(None, alias="ACTION_SERVER_URL")
    public_url: str = Field("http://localhost:8000", alias="ACUERDO_PUBLIC_URL")
    secret_key: str | None = Field(None, alias="ACUERDO_SECRET_KEY")
    policy_file: str = Field("policy.yml", alias="ACUERDO_POLICY_FILE")
    whatsapp_verify_token: str = Field(SANDBOX_VERIFY_TOKEN, alias="WHATSAPP_VERIFY_TOKEN")
    whatsapp_app_secret: str = Field(SANDBOX_APP_SECRET, alias="WHATSAPP_APP_SECRET")
    whatsapp_access_token: str = Field(SANDBOX_ACCESS_TOKEN, alias="WHATSAPP_ACCESS_TOKEN")
    whatsapp_phone_number_id: str = Field(SANDBOX_PHONE_NUMBER_ID, alias="WHATSAPP_PHONE_NUMBER_ID")
    whatsapp_api_base_url: str = Field(
        "https://graph.facebook.com/v21.0", alias="WHATSAPP_API_BASE_URL"
    )
    rcs_agent_id: str | None = Field(None, alias="RCS_AGENT_ID")
    rcs_client_token: str | None = Field(None, alias="RCS_CLIENT_TOKEN")
    rcs_service_account_file: str | None = Field(None, alias="RCS_SERVICE_ACCOUNT_FILE")
    rcs_api_base_url: str | None = Field(None, alias="RCS_API_BASE_URL")
    sms_api_base_url: str | None = Field(None, alias="SMS_API_BASE_URL")
    sms_account_sid: str | None = Field(None, alias="SMS_ACCOUNT_SID")
    sms_auth_token: str | None = Field(None, alias="SMS_AUTH_TOKEN")
    sms_from: str | None = Field(None, alias="SMS_FROM")
    payments_provider: str = Field("local", alias="PAYMENTS_PROVIDER")
    payments_webhook_secret: str = Field(SANDBOX_PAYMENTS_SECRET, alias="PAYMENTS_WEBHOOK_SECRET")
    # An e-mail of the creditor's that a processor's voucher carries for a debtor without one.
    payments_billing_email: str | None = Field(None, alias="PAYMENTS_BILLING_EMAIL")
    # PAYMENTS_PROVIDER=stripe (docs/payment-codes.md): the secret key, the webhook endpoint's
    # signing secret (comma-separated during a rotation: the new one and the old one), the API
    # base (tests point the SDK at a local stand-in), the signatures' age limit.
    stripe_api_key: str | None = Field(None, alias="STRIPE_API_KEY")
    stripe_webhook_secret: str | None = Field(None, alias="STRIPE_WEBHOOK_SECRET")
    stripe_api_base_url: str | None = Field(None, alias="STRIPE_API_BASE_URL")
    stripe_webhook_tolerance_seconds: int = Field(
        300, alias="STRIPE_WEBHOOK_TOLERANCE_SECONDS", ge=1, le=3600
    )
    # PAYMENTS_PROVIDER=conekta: the private API key, the webhook key's public half (a PEM
    # file: Conekta signs every webhook with the private half), the API base (tests).
    conekta_api_key: str | None = Field(None, alias="CONEKTA_API_KEY")
    conekta_webhook_public_key_file: str | None = Field(
        None, alias="CONEKTA_WEBHOOK_PUBLIC_KEY_FILE"
    )
    conekta_api_base_url: str | None = Field(None, alias="CONEKTA_API_BASE_URL")
    var_dir: str = Field("var", alias="ACUERDO_VAR_DIR")
    # Where the pipeline and outbox workers run: in the gateway's process ("inline"), or in
    # a process of their own ("separate", what ``acuerdo up`` runs), woken through a socket
    # in ``var/`` and serving its health and metrics on loopback (docs/gateway.md).
    workers: str = Field("inline", alias="ACUERDO_WORKERS")
    workers_port: int | None = Field(None, alias="ACUERDO_WORKERS_PORT", ge=1, le=65535)
    # The shared secret of the internal services: the action server refuses a call without it,
    # Rasa's HTTP API and REST channel too (docs/security.md, "Who can reach what").
    internal_token: str | None = Field(None, alias="ACUERDO_INTERNAL_TOKEN")
    # The sandbox page and its built-in credentials: only when asked for (``acuerdo demo``),
    # never inferred from other settings (CONTRACT section 2).
    sandbox: bool = Field(False, alias="ACUERDO_SANDBOX")
    # The proxies whose X-Forwarded-For names the client (IPs or CIDRs, comma-separated);
    # unset, the connecting address is the client and the header is ignored.
    trusted_proxies: str | None = Field(None, alias="ACUERDO_TRUSTED_PROXIES")
    # Console sign-in (docs/console.md, "Signing in"): failures counted over a window, per
    # address, per user name from one address, per user name from anywhere (that one only
    # paces attempts, it never locks the name out); how many names and addresses are
    # remembered; how many password hashes run at once and how many may wait for one.
    signin_window_seconds: int = Field(900, alias="ACUERDO_SIGNIN_WINDOW_SECONDS", ge=1)
    signin_address_failures: int = Field(20, alias="ACUERDO_SIGNIN_ADDRESS_FAILURES", ge=1)
    signin_user_address_failures: int = Field(5, alias="ACUERDO_SIGNIN_USER_ADDRESS_FAILURES", ge=1)
    signin_user_failures: int = Field(50, alias="ACUERDO_SIGNIN_USER_FAILURES", ge=1)
    signin_user_pace_seconds: float = Field(5.0, alias="ACUERDO_SIGNIN_USER_PACE_SECONDS", ge=0)
    signin_tracked_keys: int = Field(10_000, alias="ACUERDO_SIGNIN_TRACKED_KEYS", ge=1)
    signin_concurrent_hashes: int = Field(2, alias="ACUERDO_SIGNIN_CONCURRENT_HASHES", ge=1)
    signin_waiting_hashes: int = Field(8, alias="ACUERDO_SIGNIN_WAITING_HASHES", ge=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone '{value}'") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value.replace("postgres://", "postgresql://", 1)

    @field_validator("public_url", "whatsapp_api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator(
        "rcs_api_base_url",
        "sms_api_base_url",
        "action_server_url",
        "stripe_api_base_url",
        "conekta_api_base_url",
    )
    @classmethod
    def _optional_http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("rasa_urls")
    @classmethod
    def _url_list(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        urls = [item.strip().rstrip("/") for item in value.split(",") if item.strip()]
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"'{url}' is not an http:// or https:// URL")
        return ",".join(urls)

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            try:
                ipaddress.ip_network(item)  # strict like uvicorn: 10.0.0.0/8, not 10.0.0.5/8
            except ValueError as exc:
                raise ValueError(f"'{item}' is not an IP address or network") from exc
        return ",".join(items)

    @property
    def trusted_proxy_list(self) -> list[str]:
        return self.trusted_proxies.split(",") if self.trusted_proxies else []

    @field_validator("internal_token")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if len(value.strip()) < 24:
            raise ValueError("must be at least 24 characters (openssl rand -hex 24)")
        return value.strip()

    @field_validator("workers")
    @classmethod
    def _known_workers_mode(cls, value: str) -> str:
        if value not in {"inline", "separate"}:
            raise ValueError(f"must be 'inline' or 'separate', not '{value}'")
        return value

    @field_validator("payments_provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PAYMENT_PROVIDERS:
            known = ", ".join(PAYMENT_PROVIDERS)
            raise ValueError(f"unknown payments provider '{value}' (known: {known})")
        return value

    @field_validator("stripe_api_key")
    @classmethod
    def _stripe_key(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.strip().startswith(("sk_", "rk_")):
            raise ValueError("must be a secret or restricted key (sk_... or rk_...)")
        return value.strip()

    @field_validator("stripe_webhook_secret")
    @classmethod
    def _stripe_signing_secrets(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            if not item.startswith("whsec_"):
                raise ValueError("each signing secret starts with whsec_ (comma-separated)")
        return ",".join(items)

    @property
    def stripe_webhook_secrets(self) -> tuple[str, ...]:
        return (
            tuple((self.stripe_webhook_secret or "").split(","))
            if self.stripe_webhook_secret
            else ()
        )

    def payments_problem(self) -> str | None:
        """What the chosen payments provider still needs, as one line, or None."""
        if self.payments_provider == "stripe":
            if not self.stripe_api_key:
                return "Invalid setting STRIPE_API_KEY: missing (PAYMENTS_PROVIDER=stripe)"
            if not self.stripe_webhook_secret:
                return "Invalid setting STRIPE_WEBHOOK_SECRET: missing (PAYMENTS_PROVIDER=stripe)"
        if self.payments_provider == "conekta":
            if not self.conekta_api_key:
                return "Invalid setting CONEKTA_API_KEY: missing (PAYMENTS_PROVIDER=conekta)"
            if not self.conekta_webhook_public_key_file:
                return (
                    "Invalid setting CONEKTA_WEBHOOK_PUBLIC_KEY_FILE: missing "
                    "(PAYMENTS_PROVIDER=conekta)"
                )
            from bot.payments.conekta_provider import InvalidWebhookKey, load_webhook_key

            try:
                load_webhook_key(self.conekta_webhook_public_key_file)
            except InvalidWebhookKey as exc:
                return f"Invalid setting CONEKTA_WEBHOOK_PUBLIC_KEY_FILE: {exc}"
        return None

    def unsafe_secret(self) -> str | None:
        """Outside the sandbox, the first channel or payments secret that is missing or public.

        Checked by the processes that take webhooks or send messages (the gateway, the
        campaign command): migrations, training and the action server need none of them.
        WhatsApp is always on (the gateway always builds its adapter), so its secrets are
        checked whenever the sandbox is off; RCS only once ``RCS_AGENT_ID`` is set.
        """
        if self.sandbox:
            return None
        checks: list[tuple[str, str | None, str]] = [
            ("WHATSAPP_APP_SECRET", self.whatsapp_app_secret, SANDBOX_APP_SECRET),
            ("WHATSAPP_VERIFY_TOKEN", self.whatsapp_verify_token, SANDBOX_VERIFY_TOKEN),
            ("WHATSAPP_ACCESS_TOKEN", self.whatsapp_access_token, SANDBOX_ACCESS_TOKEN),
        ]
        if self.rcs_agent_id:
            checks.append(("RCS_CLIENT_TOKEN", self.rcs_client_token, SANDBOX_RCS_CLIENT_TOKEN))
        if self.payments_provider == "local":  # a processor's secrets: payments_problem
            checks.append(
                ("PAYMENTS_WEBHOOK_SECRET", self.payments_webhook_secret, SANDBOX_PAYMENTS_SECRET)
            )
        advice = "set a secret of your own (or ACUERDO_SANDBOX=1 for the demo)"
        for variable, value, public in checks:
            if value is None or not value.strip():
                return f"Invalid setting {variable}: missing; {advice}"
            if value == public:
                return f"Invalid setting {variable}: still the public sandbox value; {advice}"
        return None

    def require_live_secrets(self) -> Settings:
        """These settings, or :class:`SettingsError` naming the secret that fails closed."""
        problem = self.unsafe_secret()
        if problem is not None:
            raise SettingsError(problem)
        return self

    @property
    def rcs_enabled(self) -> bool:
        return bool(self.rcs_agent_id and self.rcs_client_token)

    @property
    def sms_enabled(self) -> bool:
        """True when the SMS account is configured (SMS_API_BASE_URL defaults to Twilio's)."""
        return bool(self.sms_account_sid and self.sms_auth_token and self.sms_from)

    @property
    def rasa_server_urls(self) -> list[str]:
        """Every Rasa server the gateway may use (one on ``RASA_PORT`` unless ``RASA_URLS``)."""
        if self.rasa_urls:
            return self.rasa_urls.split(",")
        return [f"http://127.0.0.1:{self.rasa_port}"]

    @property
    def action_base_url(self) -> str:
        return self.action_server_url or f"http://127.0.0.1:{self.action_port}"

    @property
    def separate_workers(self) -> bool:
        return self.workers == "separate"

    @property
    def workers_url(self) -> str:
        """The workers' process's health and metrics, on loopback (default: the next port)."""
        return f"http://127.0.0.1:{self.workers_port or self.port + 1}"

    @property
    def workers_wake_socket(self) -> Path:
        """The Unix socket the workers' process is woken through."""
        return Path(self.var_dir).resolve() / "workers.sock"

    def clock(self) -> Clock:
        """The application's clock (pinned when ``ACUERDO_NOW`` is set)."""
        return Clock.from_setting(self.now, self.timezone)

    def resolved_secret_key(self) -> str:
        """The signing key: the setting, or one generated once into ``var/``."""
        return self.secret_key or _generated_secret(Path(self.var_dir) / "secret_key")

    def resolved_internal_token(self) -> str:
        """The internal services' shared secret: the setting, or one generated into ``var/``."""
        return self.internal_token or _generated_secret(Path(self.var_dir) / "internal_token")


def _generated_secret(path: Path) -> str:
    """A random secret kept in ``path`` (made on first use, readable by the owner only)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


_ALIASES = {name: field.alias for name, field in Settings.model_fields.items()}


def load_settings() -> Settings:
    """Read and validate the settings, or raise :class:`SettingsError` naming the variable."""
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = str(first["loc"][0]) if first["loc"] else "?"
        variable = _ALIASES.get(loc, loc)
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"Invalid setting {variable}: {message}") from None
    if settings.now:
        try:
            parse_pinned_now(settings.now, ZoneInfo(settings.timezone))
        except ClockError as exc:
            raise SettingsError(f"Invalid setting ACUERDO_NOW: {exc}") from None
    problem = settings.payments_problem()
    if problem is not None:
        raise SettingsError(problem)
    return settings


def load_serving_settings() -> Settings:
    """The settings of a process that takes webhooks or sends messages: secrets fail closed."""
    return load_settings().require_live_secrets()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
