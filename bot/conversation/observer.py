"""What the workers report (messages, latencies, errors); the gateway turns it into metrics."""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    def inbound(self, channel: str, kind: str) -> None: ...

    def outbound(self, channel: str, kind: str, status: str) -> None: ...

    def processed(self, seconds: float, outcome: str) -> None: ...

    def sent(self, seconds: float) -> None: ...

    def send_error(self, channel: str, code: str) -> None: ...

    def halted(self, channel: str, halted: bool) -> None: ...


class NullObserver:
    """Reports nowhere."""

    def inbound(self, channel: str, kind: str) -> None:
        pass

    def outbound(self, channel: str, kind: str, status: str) -> None:
        pass

    def processed(self, seconds: float, outcome: str) -> None:
        pass

    def sent(self, seconds: float) -> None:
        pass

    def send_error(self, channel: str, code: str) -> None:
        pass

    def halted(self, channel: str, halted: bool) -> None:
        pass
