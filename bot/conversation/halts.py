"""Per-channel sending halts after an account-level error (credentials refused, account
blocked).

One channel's failure says nothing about the others: a WhatsApp token that expired halts
WhatsApp sends for ``Tuning.halt_seconds`` while RCS and SMS keep sending. The halt lives in
this process (as before); its reason goes to the log, never to an endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import structlog

from bot.conversation.claims import scheduling_now
from bot.conversation.observer import Observer

log = structlog.get_logger("acuerdo.outbox")


class ChannelHalts:
    """Which channels may not send, until when (scheduling time), and why (for the log)."""

    def __init__(self, channels: Iterable[str], observer: Observer) -> None:
        self._observer = observer
        self._until: dict[str, datetime] = {}
        self._reasons: dict[str, str] = {}
        for channel in channels:  # a gauge left by an earlier gateway in this process
            observer.halted(channel, False)

    def halt(self, channel: str, seconds: float, reason: str) -> datetime:
        """Stop ``channel`` for ``seconds``; returns until when."""
        until = scheduling_now() + timedelta(seconds=seconds)
        self._until[channel] = until
        self._reasons[channel] = reason[:200]
        self._observer.halted(channel, True)
        return until

    def active(self) -> dict[str, datetime]:
        """The halted channels and when each resumes; ends the halts whose time has come."""
        now = scheduling_now()
        for channel, until in list(self._until.items()):
            if now >= until and self._until.pop(channel, None) is not None:
                self._observer.halted(channel, False)
                reason = self._reasons.pop(channel, None)
                log.warning("outbox.resumed", channel=channel, reason=reason)
        return dict(self._until)

    def until(self, channel: str) -> datetime | None:
        """When ``channel`` resumes, or None when it may send."""
        return self.active().get(channel)

    def reason(self, channel: str) -> str | None:
        """Why ``channel`` is halted (the channel's error text: for logs only)."""
        return self._reasons.get(channel) if channel in self.active() else None
