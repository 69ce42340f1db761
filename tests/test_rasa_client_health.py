"""The gateway's checks of the action server, shared by concurrent turns
(``bot/conversation/rasa.py``, ``_SharedHealthCheck``)."""

from __future__ import annotations

import asyncio
import threading
import time

from bot.conversation.rasa import _SharedHealthCheck


class Probe:
    """An action server whose health answer takes ``delay`` seconds."""

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.up = True
        self.calls = 0

    async def __call__(self) -> bool:
        self.calls += 1
        up = self.up
        await asyncio.sleep(self.delay)
        return up


def test_turns_ending_together_share_one_check() -> None:
    async def scenario() -> tuple[list[bool], int]:
        probe = Probe()
        health = _SharedHealthCheck(probe)
        moment = time.monotonic()
        answers = await asyncio.gather(*(health.answered_since(moment) for _ in range(20)))
        return answers, probe.calls

    answers, calls = asyncio.run(scenario())
    assert answers == [True] * 20 and calls == 1


def test_a_check_started_before_the_moment_does_not_count() -> None:
    async def scenario() -> tuple[bool, int]:
        probe = Probe(delay=0.05)
        health = _SharedHealthCheck(probe)
        early = asyncio.ensure_future(health.answered_since(time.monotonic()))
        await asyncio.sleep(0.01)  # the first check is under way...
        probe.up = False  # ...when the server goes away
        late = await health.answered_since(time.monotonic())
        await early
        return late, probe.calls

    late, calls = asyncio.run(scenario())
    assert late is False and calls == 2


def test_an_answer_that_landed_serves_later_turns_only_if_fresh_enough() -> None:
    async def scenario() -> tuple[bool, bool, int]:
        probe = Probe(delay=0.0)
        health = _SharedHealthCheck(probe)
        await health.answered_since(time.monotonic())
        reused = await health.answered_since(time.monotonic() - 1.0)  # one second will do
        probe.up = False
        fresh = await health.answered_since(time.monotonic())
        return reused, fresh, probe.calls

    reused, fresh, calls = asyncio.run(scenario())
    assert reused is True and fresh is False and calls == 2


def test_a_check_that_landed_before_its_callback_ran_is_not_awaited_in_a_loop() -> None:
    """The state between a check's end and its done-callback: a turn arriving then must
    start a new check, not spin on the finished one (it once did, at 100% CPU)."""
    outcome: list[bool] = []

    async def scenario() -> None:
        probe = Probe(delay=0.0)
        health = _SharedHealthCheck(probe)
        landed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        landed.set_result(True)
        health._inflight = (time.monotonic() - 5.0, landed)  # done, callback not yet run
        outcome.append(await health.answered_since(time.monotonic()))

    runner = threading.Thread(target=asyncio.run, args=(scenario(),), daemon=True)
    runner.start()
    runner.join(5)
    assert not runner.is_alive(), "answered_since spun on a finished check"
    assert outcome == [True]


def test_many_waves_of_turns_never_spin() -> None:
    """Checks that answer at once, awaited by many turns in waves, always finish."""

    async def scenario() -> int:
        probe = Probe(delay=0.0)
        health = _SharedHealthCheck(probe)
        for _ in range(50):
            moment = time.monotonic()
            await asyncio.wait_for(
                asyncio.gather(*(health.answered_since(moment) for _ in range(8))), 2
            )
        return probe.calls

    assert asyncio.run(scenario()) <= 50 * 8
