"""Structured logs (structlog) that never carry a full phone number, a token or a birth date.

The first defence is not logging such data at all (log calls pass ids and masked numbers,
never message text). As a safety net every structlog event passes :func:`scrub`, and every
standard-library record — uvicorn's access log included — passes :class:`ScrubFilter`:

- values under phone-like keys are masked with :func:`~bot.domain.phones.mask_phone`,
  values under secret-like keys are replaced, nested values are scrubbed too;
- in any text, :func:`scrub_text` masks runs of 10 or more digits (a phone number inside an
  error text, with or without separators), dates that can only be birth dates (more than
  12 years ago), bearer tokens and ``token=…``/``secret=…`` pairs, private keys, the
  parameters SQLAlchemy prints in its errors, and the token of ``/pay/{token}`` links.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from datetime import datetime
from functools import partial
from typing import Any

import structlog

from bot.domain.phones import mask_phone

PHONE_KEYS = frozenset({"phone", "sender", "to", "address", "recipient", "from", "wa_id"})
SECRET_KEYS = frozenset(
    {
        "token",
        "access_token",
        "verify_token",
        "client_token",
        "auth_token",
        "app_secret",
        "secret",
        "password",
        "birth_date",
        "authorization",
        "cookie",
        "csrf",
        "csrf_token",
        "private_key",
        "assertion",
        "text",
        "body",
    }
)
REDACTED = "[redacted]"

# 10+ digits, single separators allowed ("+52 1 55 1234-5678", "(55) 1234 5678"); an ISO
# date followed by a time ("2026-11-23 07:23") or a Rasa model's stamp is not a number.
_LONG_DIGITS = re.compile(
    r"(?<!\d)(?!\d{4}-\d\d-\d\d\b|\d{8}-\d{6}\b)\+?\d(?:[ ().-]{0,2}\d){9,}(?!\d)"
)
_MONTHS = "enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre"
_DATES = (  # (pattern, group holding the year)
    (re.compile(r"(?<!\d)\d{1,2}[/.-]\d{1,2}[/.-](\d{4})(?!\d)"), 1),
    (re.compile(r"(?<!\d)(\d{4})[/.-]\d{1,2}[/.-]\d{1,2}(?!\d)"), 1),
    (re.compile(rf"(?i)\b\d{{1,2}}\s+(?:de\s+)?(?:{_MONTHS})\s+(?:del?\s+)?(\d{{4}})\b"), 1),
)
_SECRETS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]{12,}"), rf"\1 {REDACTED}"),
    (
        re.compile(
            r"(?i)\b((?:[a-z]+_)?(?:token|secret|password|passwd|api_?key|signature|assertion)"
            r"|csrf\w*)([\"']?\s*[=:]\s*[\"']?)[^\s&\"',;]+"
        ),
        rf"\1\2{REDACTED}",
    ),
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
        ),
        f"[private key {REDACTED}]",
    ),
    (re.compile(r"\[parameters: [^\n]*"), f"[parameters: {REDACTED}]"),  # SQLAlchemy errors
    (re.compile(r"(/pay/)[\w.~-]{8,}"), r"\1[token]"),  # a payment link is a capability
    (re.compile(r"%2[bB](?=\d)"), "+"),  # a URL-encoded "+52…": masked as a number below
)


def _birth_year_limit() -> int:
    return datetime.now().year - 12


def _mask_date(match: re.Match[str], *, group: int) -> str:
    year = int(match.group(group))
    return "[fecha]" if 1900 <= year <= _birth_year_limit() else match.group(0)


def scrub_text(value: str) -> str:
    """``value`` without secrets, full phone numbers or birth dates."""
    for pattern, replacement in _SECRETS:
        value = pattern.sub(replacement, value)
    for date_pattern, group in _DATES:
        value = date_pattern.sub(partial(_mask_date, group=group), value)
    return _LONG_DIGITS.sub(lambda match: mask_phone(match.group(0)), value)


def _scrub_value(key: str, value: Any) -> Any:
    lowered = key.lower()
    if lowered in SECRET_KEYS and value is not None:
        return REDACTED
    if lowered in PHONE_KEYS and isinstance(value, str) and "*" not in value:
        return mask_phone(value)
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {k: _scrub_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list) or type(value) is tuple:
        return type(value)(_scrub_value(key, item) for item in value)
    return value


def scrub(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The structlog processor that keeps personal data out of the logs."""
    for key in list(event):
        event[key] = _scrub_value(key, event[key])
    return event


def _scrub_arg(value: object) -> object:
    return scrub_text(value) if isinstance(value, str) else value


class ScrubFilter(logging.Filter):
    """:func:`scrub_text` for standard-library records (uvicorn, httpx, SQLAlchemy…).

    Arguments are scrubbed one by one, not merged into the message, because uvicorn's
    access formatter reads them (client, method, path, version, status).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = scrub_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub_arg(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: _scrub_arg(arg) for key, arg in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_text(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_text(record.stack_info)
        return True


def _install_scrub_filter() -> None:
    """On the root handlers and on uvicorn's own loggers (they do not propagate)."""
    targets: list[logging.Filterer] = [*logging.getLogger().handlers]
    targets += [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    for target in targets:
        if not any(isinstance(f, ScrubFilter) for f in target.filters):
            target.addFilter(ScrubFilter())


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    """Configure structlog and the standard library to write one line per event."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=False),
            structlog.processors.format_exc_info,  # before scrub: tracebacks are scrubbed too
            scrub,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(level.upper()) if isinstance(level, str) else level
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    # httpcore's DEBUG trace prints response headers (cookies, signed media URLs): never.
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    _install_scrub_filter()
