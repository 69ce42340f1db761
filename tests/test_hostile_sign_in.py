"""Attacks on the console's sign-in (issue 13, point 10): a cookie replayed after sign-out, a
stranger locking an agent out, a spray of made-up names growing memory, a flood of password
hashes. The real gateway on a real SQLite file; addresses are the ASGI client's."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

import bot.console_users
from bot.clock import Clock
from bot.config import Settings
from bot.console.auth import SESSION_COOKIE
from bot.console_users import create_console_user
from bot.db.engine import session_factory
from bot.db.migrate import upgrade
from bot.db.models import AuditEntry, ConsoleUser
from tests.graph_stub import wait_until
from tests.test_console_access import PASSWORD, client_for, login

ATTACKER = "198.51.100.7"
OFFICE = "203.0.113.20"


@pytest.fixture
def people(session: Session, clock: Clock) -> None:
    """Two agents and a supervisor, all with ``PASSWORD``."""
    for name, role in (("lucia", "agent"), ("mateo", "agent"), ("sara", "supervisor")):
        create_console_user(session, clock, name, PASSWORD, role)
    session.commit()


def browser(gateway: TestClient, address: str) -> TestClient:
    """A browser on the running gateway, connecting from ``address``."""
    return TestClient(gateway.app, client=(address, 50000))


def try_password(client: TestClient, username: str, password: str, **headers: str) -> Any:
    form = client.get("/console/login", headers=headers)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    return client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
        headers=headers,
        follow_redirects=False,
    )


class FakeTimer:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingHasher:
    """Stands in for the argon2 hasher: counts calls and how many run at once; with a gate,
    every call waits for the test to open it."""

    def __init__(self, real: Any, gate: threading.Event | None = None) -> None:
        self._real = real
        self._gate = gate
        self._lock = threading.Lock()
        self.calls = 0
        self.active = 0
        self.peak = 0

    def _run(self, work: Callable[[], Any]) -> Any:
        with self._lock:
            self.calls += 1
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            if self._gate is not None:
                assert self._gate.wait(timeout=30), "the test never opened the gate"
            return work()
        finally:
            with self._lock:
                self.active -= 1

    def verify(self, hash: str, password: str) -> Any:
        return self._run(lambda: self._real.verify(hash, password))

    def hash(self, password: str) -> Any:
        return self._run(lambda: self._real.hash(password))


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher(bot.console_users._hasher)
    monkeypatch.setattr(bot.console_users, "_hasher", counting)
    return counting


def guard_of(client: TestClient) -> Any:
    return client.app.state.console_sign_in  # type: ignore[attr-defined]


def with_timer(client: TestClient, timer: FakeTimer) -> None:
    from bot.console.signin_guard import SignInGuard

    settings = client.app.state.runtime.settings  # type: ignore[attr-defined]
    client.app.state.console_sign_in = SignInGuard(settings, timer=timer)  # type: ignore[attr-defined]


# -- (a) signing out, deactivating, changing the password revoke on the server --------------
def test_a_cookie_captured_before_sign_out_is_refused_after_it(
    gateway: TestClient, people: None
) -> None:
    csrf = login(gateway, "lucia")
    thief = client_for(gateway)
    thief.cookies.set(SESSION_COOKIE, gateway.cookies[SESSION_COOKIE])
    assert thief.get("/console/api/queue").status_code == 200

    assert gateway.post("/console/logout", data={"csrf_token": csrf}).status_code == 200

    assert thief.get("/console/api/queue").status_code == 401
    assert thief.post("/console/logout", data={"csrf_token": csrf}).status_code == 401


def test_signing_out_one_browser_keeps_the_others(gateway: TestClient, people: None) -> None:
    csrf = login(gateway, "lucia")
    phone = client_for(gateway)
    login(phone, "lucia")

    gateway.post("/console/logout", data={"csrf_token": csrf})

    assert phone.get("/console/api/queue").status_code == 200
    assert gateway.get("/console/api/queue").status_code == 401


def test_a_new_password_or_deactivation_ends_every_session(
    gateway: TestClient, people: None, db_url: str, clock: Clock
) -> None:
    from bot.console_users import deactivate_console_user, set_password

    desk, phone, mateo = gateway, client_for(gateway), client_for(gateway)
    login(desk, "lucia")
    login(phone, "lucia")
    login(mateo, "mateo")
    with session_factory(db_url)() as s:
        set_password(s, clock, "lucia", "otra-clave-segura-456")
        s.commit()

    assert desk.get("/console/api/queue").status_code == 401
    assert phone.get("/console/api/queue").status_code == 401
    assert mateo.get("/console/api/queue").status_code == 200
    login(desk, "lucia", "otra-clave-segura-456")

    with session_factory(db_url)() as s:
        deactivate_console_user(s, clock, "mateo")
        s.commit()
        actions = set(s.scalars(select(AuditEntry.action)))
        still_active = s.scalars(select(ConsoleUser.active).where(ConsoleUser.username == "mateo"))
        assert list(still_active) == [False]
    assert mateo.get("/console/api/queue").status_code == 401
    assert try_password(client_for(gateway), "mateo", PASSWORD).status_code == 401
    assert {"console_password_changed", "console_user_deactivated"} <= actions


def test_sessions_are_revoked_on_postgresql_too(
    postgres_url: str,
    start_gateway: Callable[..., TestClient],
    gateway_settings: Settings,
    clock: Clock,
) -> None:
    from bot.console_users import set_password

    upgrade(postgres_url)
    with session_factory(postgres_url)() as s:
        create_console_user(s, clock, "lucia", PASSWORD, "agent")
        s.commit()
    client = start_gateway(gateway_settings.model_copy(update={"database_url": postgres_url}))
    csrf = login(client, "lucia")
    thief = client_for(client)
    thief.cookies.set(SESSION_COOKIE, client.cookies[SESSION_COOKIE])

    client.post("/console/logout", data={"csrf_token": csrf})

    assert thief.get("/console/api/queue").status_code == 401
    login(client, "lucia")
    with session_factory(postgres_url)() as s:
        set_password(s, clock, "lucia", "otra-clave-segura-456")
        s.commit()
    assert client.get("/console/api/queue").status_code == 401


# -- (b) a stranger cannot lock an agent out ------------------------------------------------
def test_a_stranger_spraying_an_agents_name_cannot_lock_her_out_from_elsewhere(
    gateway: TestClient, people: None, hasher: CountingHasher
) -> None:
    attacker = browser(gateway, ATTACKER)
    codes = [try_password(attacker, "lucia", f"mala-{n}").status_code for n in range(8)]
    assert codes == [401] * 5 + [429] * 3
    assert hasher.calls == 5  # the refused attempts hashed nothing

    answer = try_password(browser(gateway, OFFICE), "lucia", PASSWORD)

    assert answer.status_code == 303
    assert try_password(attacker, "lucia", PASSWORD).status_code == 429  # that address waits


def test_one_address_is_throttled_whatever_names_it_tries(
    gateway: TestClient, people: None, hasher: CountingHasher
) -> None:
    attacker = browser(gateway, ATTACKER)
    codes = [try_password(attacker, f"nadie{n}", "x" * 9).status_code for n in range(20)]
    assert codes == [401] * 20
    calls = hasher.calls

    refused = try_password(attacker, "lucia", PASSWORD)

    assert refused.status_code == 429
    assert "Demasiados intentos desde esta conexión" in refused.text
    assert 0 < int(refused.headers["Retry-After"]) <= 15 * 60
    assert hasher.calls == calls
    assert try_password(browser(gateway, OFFICE), "lucia", PASSWORD).status_code == 303


def test_many_addresses_only_slow_an_agent_down_for_seconds(
    start_gateway: Callable[..., TestClient],
    gateway_settings: Settings,
    people: None,
) -> None:
    client = start_gateway(
        gateway_settings.model_copy(
            update={"signin_user_failures": 6, "signin_user_pace_seconds": 5.0}
        )
    )
    timer = FakeTimer()
    with_timer(client, timer)
    for n in range(6):  # a botnet: one guess per address
        assert try_password(browser(client, f"198.51.100.{n}"), "lucia", "mala").status_code == 401
        timer.now += 1

    paced = try_password(browser(client, OFFICE), "lucia", PASSWORD)

    assert paced.status_code == 429
    assert "Espera unos segundos" in paced.text
    assert 0 < int(paced.headers["Retry-After"]) <= 5
    timer.now += 5
    assert try_password(browser(client, OFFICE), "lucia", PASSWORD).status_code == 303


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(
    start_gateway: Callable[..., TestClient],
    gateway_settings: Settings,
    people: None,
) -> None:
    direct = start_gateway()
    spoofer = browser(direct, ATTACKER)
    for n in range(5):
        try_password(spoofer, "lucia", "mala", **{"X-Forwarded-For": f"192.0.2.{n}"})
    spoofed = try_password(spoofer, "lucia", PASSWORD, **{"X-Forwarded-For": OFFICE})
    assert spoofed.status_code == 429  # the header did not make it a new address

    proxied = start_gateway(gateway_settings.model_copy(update={"trusted_proxies": "10.0.0.9"}))
    proxy = browser(proxied, "10.0.0.9")
    for _ in range(5):
        try_password(proxy, "lucia", "mala", **{"X-Forwarded-For": ATTACKER})
    assert (
        try_password(proxy, "lucia", PASSWORD, **{"X-Forwarded-For": ATTACKER}).status_code == 429
    )
    office = try_password(proxy, "lucia", PASSWORD, **{"X-Forwarded-For": OFFICE})
    assert office.status_code == 303


# -- (c) memory stays bounded ----------------------------------------------------------------
def test_spraying_made_up_names_keeps_the_throttle_at_its_bound(
    start_gateway: Callable[..., TestClient], gateway_settings: Settings, people: None
) -> None:
    client = start_gateway(gateway_settings.model_copy(update={"signin_tracked_keys": 8}))
    for n in range(24):
        address = f"198.51.100.{n}"
        assert try_password(browser(client, address), f"nadie{n}", "x" * 9).status_code == 401

    sizes = guard_of(client).throttle.sizes()

    assert sizes == {"address": 8, "user_address": 8, "user": 8}
    audit = session_factory(client.app.state.runtime.settings.database_url)  # type: ignore[attr-defined]
    with audit() as s:
        failed = s.scalars(select(AuditEntry).where(AuditEntry.action == "console_login_failed"))
        assert len(list(failed)) == 24  # every attempt is still audited


# -- (d) hashing is capped ---------------------------------------------------------------------
def test_concurrent_password_hashing_is_capped(
    start_gateway: Callable[..., TestClient],
    gateway_settings: Settings,
    people: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = start_gateway(
        gateway_settings.model_copy(
            update={"signin_concurrent_hashes": 2, "signin_waiting_hashes": 2}
        )
    )
    gate = threading.Event()
    gated = CountingHasher(bot.console_users._hasher, gate)
    monkeypatch.setattr(bot.console_users, "_hasher", gated)
    answers: list[httpx.Response] = []

    async def attempt(n: int) -> None:
        transport = httpx.ASGITransport(app=client.app, client=(f"198.51.100.{n}", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            form = await c.get("/console/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token
            answers.append(
                await c.post(
                    "/console/login",
                    data={"username": "lucia", "password": "mala", "csrf_token": token.group(1)},
                )
            )

    async def flood() -> None:
        await asyncio.gather(*(attempt(n) for n in range(6)))

    done = client.portal.start_task_soon(flood)  # type: ignore[union-attr]
    try:
        # Two hash, two wait their turn, two are turned away at once.
        wait_until(lambda: gated.active == 2 and len(answers) == 2, 20, "two refusals")
        assert gated.active == 2
        assert sorted(a.status_code for a in answers) == [429, 429]
        assert all(int(a.headers["Retry-After"]) >= 1 for a in answers)
        assert "Espera un momento" in answers[0].text
    finally:
        gate.set()
    done.result(timeout=30)

    assert gated.peak == 2
    assert gated.calls == 4
    assert sorted(a.status_code for a in answers) == [401] * 4 + [429] * 2
