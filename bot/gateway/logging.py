"""Structured logs (structlog) that never carry a full phone number, a token or a birth date.

Every event passes :func:`scrub`: values under phone-like keys are masked with
:func:`~bot.domain.phones.mask_phone`, secret-like keys are dropped, and any run of 10 or
more digits left in a string value is masked too (a phone number inside an error text).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from bot.domain.phones import mask_phone

PHONE_KEYS = frozenset({"phone", "sender", "to", "address", "recipient", "from", "wa_id"})
SECRET_KEYS = frozenset(
    {
        "token",
        "access_token",
        "verify_token",
        "app_secret",
        "secret",
        "password",
        "birth_date",
        "authorization",
        "text",
        "body",
    }
)
_LONG_DIGITS = re.compile(r"\+?\d[\d ]{8,}\d")


def _mask_digits(value: str) -> str:
    return _LONG_DIGITS.sub(lambda match: mask_phone(match.group(0)), value)


def scrub(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The structlog processor that keeps personal data out of the logs."""
    for key in list(event):
        lowered = key.lower()
        value = event[key]
        if lowered in SECRET_KEYS:
            event[key] = "[redacted]"
        elif lowered in PHONE_KEYS and isinstance(value, str) and "*" not in value:
            event[key] = mask_phone(value)
        elif isinstance(value, str) and key != "event":
            event[key] = _mask_digits(value)
    return event


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
