"""What stands before a console password check: throttles and a cap on hashing.

Three sliding windows of failures (``ACUERDO_SIGNIN_*`` settings, ``docs/console.md``):

* per **address**: too many failures from one connection, whatever the names, and it waits;
* per **user name from one address**: a few wrong passwords for one name, and that address
  waits for that name; everyone else can still sign in as that person;
* per **user name from anywhere**: past a larger count the name is only *paced* (one attempt
  every few seconds), so guessing from many addresses is slow while nobody can lock an agent
  out for minutes.

Each window lives in a :class:`cachetools.TTLCache` with a maximum size: entries expire with
the window and the least recently used go first when it is full, so a spray of made-up names
or addresses cannot grow memory. An attempt is charged before its hash runs (concurrent
attempts see each other) and taken back when the password is right.

At most ``ACUERDO_SIGNIN_CONCURRENT_HASHES`` argon2 checks run at once; a few more may wait
their turn, the rest are turned away at once with a Retry-After. A throttled attempt never
reaches the hash.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from cachetools import TTLCache
from fastapi import Request

from bot.config import Settings

# How long an attempt may wait for a hashing slot before it is turned away.
HASH_WAIT_SECONDS = 10.0
BUSY_RETRY_SECONDS = 2


@dataclass(frozen=True)
class Refusal:
    """Why an attempt waits, and for how long (whole seconds, for Retry-After)."""

    reason: str  # address | user_address | user | busy
    retry_after: int


@dataclass
class Charge:
    """One attempt's marks in the windows, taken back if the password was right."""

    address: str
    user: str
    at: float


class _Window:
    """Failure times per key within ``seconds``: at most ``limit`` kept per key."""

    def __init__(self, limit: int, seconds: float, size: int, timer: Callable[[], float]):
        self.limit = limit
        self.seconds = seconds
        self._timer = timer
        self._times: TTLCache[Hashable, deque[float]] = TTLCache(size, seconds, timer=timer)

    def __len__(self) -> int:
        self._times.expire()
        return len(self._times)

    def recent(self, key: Hashable) -> deque[float]:
        times = self._times.get(key)
        if times is None:
            return deque(maxlen=self.limit)
        cutoff = self._timer() - self.seconds
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def full_for(self, key: Hashable) -> float:
        """Seconds until ``key`` is under its limit again (0 when it already is)."""
        times = self.recent(key)
        if len(times) < self.limit:
            return 0.0
        return times[0] + self.seconds - self._timer()

    def add(self, key: Hashable, at: float) -> None:
        times = self.recent(key)
        times.append(at)
        self._times[key] = times  # (re)inserted: the entry lives a window from now

    def take_back(self, key: Hashable, at: float) -> None:
        times = self._times.get(key)
        if times is not None and at in times:
            times.remove(at)

    def forget(self, key: Hashable) -> None:
        self._times.pop(key, None)


class SignInThrottle:
    """The three windows of failures (per process; bounded in memory)."""

    def __init__(self, settings: Settings, timer: Callable[[], float] = time.monotonic):
        window, size = float(settings.signin_window_seconds), settings.signin_tracked_keys
        self._timer = timer
        self.pace = settings.signin_user_pace_seconds
        self.address = _Window(settings.signin_address_failures, window, size, timer)
        self.user_address = _Window(settings.signin_user_address_failures, window, size, timer)
        self.user = _Window(settings.signin_user_failures, window, size, timer)

    def sizes(self) -> dict[str, int]:
        """How many keys each window remembers now."""
        return {
            "address": len(self.address),
            "user_address": len(self.user_address),
            "user": len(self.user),
        }

    def refusal(self, address: str, username: str) -> Refusal | None:
        """Why this attempt may not be checked now, or None."""
        user = username.casefold()
        wait = self.address.full_for(address)
        if wait > 0:
            return Refusal("address", _whole(wait))
        wait = self.user_address.full_for((user, address))
        if wait > 0:
            return Refusal("user_address", _whole(wait))
        recent = self.user.recent(user)
        if len(recent) >= self.user.limit:
            wait = recent[-1] + self.pace - self._timer()
            if wait > 0:
                return Refusal("user", _whole(wait))
        return None

    def charge(self, address: str, username: str) -> Charge:
        """Count the attempt as a failure until it proves otherwise."""
        charge = Charge(address, username.casefold(), self._timer())
        self.address.add(address, charge.at)
        self.user_address.add((charge.user, address), charge.at)
        self.user.add(charge.user, charge.at)
        return charge

    def uncharge(self, charge: Charge) -> None:
        """The attempt was never checked (turned away): it does not count."""
        self.address.take_back(charge.address, charge.at)
        self.user_address.take_back((charge.user, charge.address), charge.at)
        self.user.take_back(charge.user, charge.at)

    def succeeded(self, charge: Charge) -> None:
        """The password was right: this attempt and that address's failures for the name
        no longer count."""
        self.uncharge(charge)
        self.user_address.forget((charge.user, charge.address))


def _whole(seconds: float) -> int:
    return max(1, math.ceil(seconds))


class HashLimiter:
    """At most ``concurrent`` password checks at once, at most ``waiting`` more queued."""

    def __init__(self, concurrent: int, waiting: int) -> None:
        self.concurrent = concurrent
        self.max_waiting = waiting
        self.waiting = 0
        self._limiter: anyio.CapacityLimiter | None = None

    def _get(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # made in the event loop, at first use
            self._limiter = anyio.CapacityLimiter(self.concurrent)
        return self._limiter

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[bool]:
        """Yields True holding a slot, or False when too many already wait."""
        limiter = self._get()
        try:
            limiter.acquire_nowait()
        except anyio.WouldBlock:
            if self.waiting >= self.max_waiting:
                yield False
                return
            self.waiting += 1
            acquired = False
            try:
                with anyio.move_on_after(HASH_WAIT_SECONDS):
                    await limiter.acquire()
                    acquired = True
            finally:
                self.waiting -= 1
            if not acquired:
                yield False
                return
        try:
            yield True
        finally:
            limiter.release()


class SignInGuard:
    """The throttle and the hash limiter of one gateway (``app.state.console_sign_in``)."""

    def __init__(self, settings: Settings, timer: Callable[[], float] = time.monotonic):
        self.throttle = SignInThrottle(settings, timer)
        self.hashes = HashLimiter(settings.signin_concurrent_hashes, settings.signin_waiting_hashes)


def sign_in_guard(request: Request, settings: Settings) -> SignInGuard:
    """This application's guard (made at the first sign-in when the app has none)."""
    state = request.app.state
    guard = getattr(state, "console_sign_in", None)
    if guard is None:
        guard = state.console_sign_in = SignInGuard(settings)
    return guard


def client_address(request: Request) -> str:
    """The address the attempt comes from: the connection's peer, which the gateway replaces
    with the X-Forwarded-For client only when the peer is in ``ACUERDO_TRUSTED_PROXIES``."""
    return request.client.host if request.client else "unknown"
