"""The console's Spanish texts (``texts.yml``) and canned replies (``canned_replies.yml``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bot.spanish import spoken_date

HERE = Path(__file__).parent


@dataclass(frozen=True)
class CannedReply:
    title: str
    text: str


@dataclass(frozen=True)
class ConsoleTexts:
    raw: dict[str, Any]

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name) or {}
        return dict(value)

    def label(self, section: str, key: str | None, default: str | None = None) -> str:
        """The Spanish label of ``key`` in ``section`` (the key itself when unknown)."""
        if key is None:
            return default or ""
        value = self.section(section).get(key)
        return str(value) if value is not None else (default if default is not None else key)

    def error(self, reason: str) -> str:
        errors = self.section("errors")
        return str(errors.get(reason) or errors["generic"])

    def notice(self, key: str) -> str:
        return str(self.section("notices").get(key) or "")

    def to_debtor(self, key: str, **fields: str) -> str:
        return str(self.section("to_debtor")[key]).format(**fields)

    def spoken_date(self, value: date) -> str:
        """``2026-11-27`` → ``viernes 27 de noviembre de 2026``."""
        return spoken_date(value)


@lru_cache(maxsize=1)
def console_texts() -> ConsoleTexts:
    data = yaml.safe_load((HERE / "texts.yml").read_text(encoding="utf-8"))
    return ConsoleTexts(raw=data)


@lru_cache(maxsize=1)
def canned_replies() -> tuple[CannedReply, ...]:
    data = yaml.safe_load((HERE / "canned_replies.yml").read_text(encoding="utf-8")) or []
    return tuple(CannedReply(str(item["title"]), str(item["text"])) for item in data)
