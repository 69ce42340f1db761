"""Timing knobs of the workers (defaults suit production; tests shorten them)."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace

# Optional environment overrides (seconds unless noted), for operators and tests.
ENV_OVERRIDES = {
    "ACUERDO_POLL_SECONDS": "poll_interval",
    "ACUERDO_LEASE_SECONDS": "lease_seconds",
    "ACUERDO_RASA_TIMEOUT": "rasa_timeout",
    "ACUERDO_SEND_TIMEOUT": "send_timeout",
    "ACUERDO_RETRY_BASE_SECONDS": "retry_base",
    "ACUERDO_RETRY_CAP_SECONDS": "retry_cap",
    "ACUERDO_RATE_LIMIT_MESSAGES": "rate_limit_messages",  # a count
    "ACUERDO_RATE_LIMIT_SECONDS": "rate_limit_seconds",
    "ACUERDO_WORKER_THREADS": "worker_threads",  # a count
    "ACUERDO_GIL_SWITCH_SECONDS": "gil_switch_seconds",
}


@dataclass(frozen=True)
class Tuning:
    """Intervals in seconds."""

    poll_interval: float = 1.0  # how often idle workers look for work other processes left
    pipeline_concurrency: int = 8  # conversations processed at once per process
    outbox_concurrency: int = 8
    # Threads for the workers' database work (both workers share them); 0: 2 on SQLite,
    # which takes one writer at a time anyway, else asyncio's default (cores + 4).
    worker_threads: int = 0
    gil_switch_seconds: float = 0.001  # sys.setswitchinterval (Python's default is 0.005)
    rasa_timeout: float = 30.0
    readiness_timeout: float = 3.0  # the web role's look at the workers' process's /readyz
    send_timeout: float = 15.0
    lease_seconds: float = 90.0  # a claim older than this is presumed dead and retaken
    retry_base: float = 1.0  # first back-off; doubles per attempt, with jitter
    retry_cap: float = 300.0
    max_send_attempts: int = 12  # then the outbound message is marked failed
    max_processing_errors: int = 5  # unexpected errors (bugs) before an inbound is failed
    pace_seconds: float = 6.0  # first pause after a "too many messages to this person"
    halt_seconds: float = 3600.0  # pause of one channel's sending after an account-level block
    max_body_bytes: int = 3 * 1024 * 1024
    # Per conversation, at most this many inbound messages within the window reach Rasa;
    # the rest of a flood is stored, not answered, and the person is told once.
    rate_limit_messages: int = 20
    rate_limit_seconds: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Tuning:
        """The defaults, with any ``ENV_OVERRIDES`` variable that is set applied."""
        environ = os.environ if environ is None else environ
        defaults = cls()
        changes: dict[str, float] = {}
        for variable, name in ENV_OVERRIDES.items():
            value = environ.get(variable)
            if value is None:
                continue
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"Invalid setting {variable}: '{value}' is not a number") from None
            if number <= 0:
                raise ValueError(f"Invalid setting {variable}: must be positive")
            if isinstance(getattr(defaults, name), int):
                if not number.is_integer():
                    raise ValueError(f"Invalid setting {variable}: must be a whole number")
                number = int(number)
            changes[name] = number
        return replace(defaults, **changes)  # type: ignore[arg-type]  # numbers of the right kind

    def backoff(self, attempt: int, *, base: float | None = None) -> float:
        """Exponential back-off with jitter for the ``attempt``-th try (1-based)."""
        start = self.retry_base if base is None else base
        ceiling = min(self.retry_cap, start * (2 ** max(0, attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)
