"""Reading a webhook's JSON so that whatever comes out can be stored.

Python's :func:`json.loads` accepts more than JSON: ``NaN`` and ``Infinity``, numbers that
overflow to infinity, and ``\\ud800``-style escapes that decode to lone surrogates, which
are not Unicode text; and on deep nesting it raises ``RecursionError``, not ``ValueError``.
None of these can be written to the ledger (PostgreSQL refuses non-finite numbers in JSON,
and no driver encodes a lone surrogate): an inbox write would fail after the webhook was
accepted, and the channel would redeliver the body for days.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def _finite(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"number out of range: {text[:40]}")
    return number


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _text(value: str) -> str:
    """``value`` with any lone surrogate replaced by U+FFFD (valid pairs were joined by json)."""
    return _SURROGATE.sub("\ufffd", value)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, dict):
        return {_text(key): _clean(item) for key, item in value.items()}
    return value


def load_webhook_json(raw_body: bytes) -> Any:
    """The JSON value of ``raw_body``: strict UTF-8, finite numbers, text without lone
    surrogates (each becomes U+FFFD, so a message is kept, not lost). ``ValueError`` (or
    ``UnicodeDecodeError``, a subclass) when the body is not that, or nests too deeply."""
    try:
        return _clean(
            json.loads(
                raw_body.decode("utf-8"), parse_float=_finite, parse_constant=_refuse_constant
            )
        )
    except RecursionError:  # "[[[[…" a hundred thousand deep
        raise ValueError("JSON nested too deeply") from None
