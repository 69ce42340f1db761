"""The gateway's own user-facing texts, read from ``replies.yml``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

REPLIES_FILE = Path(__file__).with_name("replies.yml")


@dataclass(frozen=True)
class Replies:
    evidence_received: str
    unsupported: str
    rate_limited: str
    opt_out_confirmed: str
    payment_code_caption: str
    payment_code_clabe_line: str
    payment_code_open_link: str
    payment_code_call: str
    payment_methods: dict[str, str]
    payment_thanks: str
    payment_thanks_unverified: str
    settlement_letter_caption: str
    settlement_letter_unverified: str


@lru_cache(maxsize=1)
def load_replies(path: str = str(REPLIES_FILE)) -> Replies:
    """The texts of ``replies.yml`` (a missing key fails at start-up, naming it)."""
    data: dict[str, Any] = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return Replies(**{name: data[name] for name in Replies.__dataclass_fields__})
