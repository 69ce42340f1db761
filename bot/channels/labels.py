"""The few words adapters add around the bot's text, read from ``labels.yml``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

LABELS_FILE = Path(__file__).with_name("labels.yml")


@lru_cache(maxsize=1)
def channel_labels() -> dict[str, str]:
    """Label key → text."""
    data = yaml.safe_load(LABELS_FILE.read_text(encoding="utf-8"))
    return {str(key): str(value) for key, value in data.items()}
