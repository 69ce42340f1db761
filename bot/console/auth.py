"""Console sign-in: a signed session cookie, CSRF tokens and roles.

The session cookie carries a random session secret and a random CSRF token, signed with
``ACUERDO_SECRET_KEY`` (itsdangerous, salt ``console-session``) and valid for 12 hours;
it is HttpOnly, SameSite=Lax and Secure when ``ACUERDO_PUBLIC_URL`` is https. Every request
looks the session up in the ledger (``bot/console_sessions.py``) with its user, so signing
out, a new password or a deactivated user end it at once, whoever holds a copy of the
cookie. Every POST carries the session's CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``). The login form has its own token in a short-lived cookie (no login
CSRF). Sign-in throttles and the cap on hashing are in ``signin_guard``.

Other web pages that need a signed-in person (the dashboard) use :data:`CurrentUser` /
:data:`CheckedUser` and :func:`require_supervisor` from here.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool

from bot.clock import wall_clock_utc
from bot.config import Settings
from bot.console_sessions import SESSION_LIFETIME, session_user
from bot.gateway.deps import RuntimeDep
from bot.gateway.runtime import GatewayRuntime

SESSION_COOKIE = "acuerdo_console"
LOGIN_COOKIE = "acuerdo_console_login"
SESSION_MAX_AGE = int(SESSION_LIFETIME.total_seconds())
LOGIN_MAX_AGE = 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LOGIN_PATH = "/console/login"


@dataclass(frozen=True)
class Agent:
    """The signed-in person, detached from any database session."""

    id: int
    username: str
    role: str
    csrf: str
    session_id: int

    @property
    def actor(self) -> str:
        return f"agent:{self.username}"

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.resolved_secret_key(), salt=salt)


def _secure(settings: Settings) -> bool:
    return settings.public_url.startswith("https://")


def start_session(response: Response, settings: Settings, secret: str) -> None:
    """Put the session ``secret`` (``open_session``) on ``response`` with a fresh CSRF token."""
    token = _serializer(settings, "console-session").dumps(
        {"s": secret, "c": secrets.token_urlsafe(24)}
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_MAX_AGE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(settings),
    )
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_PATH)


def end_session(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=_secure(settings)
    )


def read_session(request: Request, settings: Settings) -> tuple[str, str] | None:
    """(session secret, CSRF token) from a valid, unexpired session cookie."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(settings, "console-session").loads(raw, max_age=SESSION_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    secret, csrf = data.get("s"), data.get("c")
    if not isinstance(secret, str) or not secret or not isinstance(csrf, str) or not csrf:
        return None
    return secret, csrf


def login_token(request: Request, response: Response, settings: Settings) -> str:
    """The login form's CSRF token (reused from its cookie, or new)."""
    serializer = _serializer(settings, "console-login")
    raw = request.cookies.get(LOGIN_COOKIE)
    if raw:
        try:
            token = serializer.loads(raw, max_age=LOGIN_MAX_AGE)
            if isinstance(token, str):
                return token
        except BadSignature:
            pass
    token = secrets.token_urlsafe(24)
    response.set_cookie(
        LOGIN_COOKIE,
        serializer.dumps(token),
        max_age=LOGIN_MAX_AGE,
        path=LOGIN_PATH,
        httponly=True,
        samesite="lax",
        secure=_secure(settings),
    )
    return token


def login_token_valid(request: Request, settings: Settings, given: str) -> bool:
    raw = request.cookies.get(LOGIN_COOKIE)
    if not raw or not given:
        return False
    try:
        token = _serializer(settings, "console-login").loads(raw, max_age=LOGIN_MAX_AGE)
    except BadSignature:
        return False
    return isinstance(token, str) and hmac.compare_digest(token.encode(), given.encode())


def _wants_html(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


def _load_agent(runtime: GatewayRuntime, secret: str, csrf: str) -> Agent | None:
    with runtime.sessions() as session:
        found = session_user(session, secret, wall_clock_utc())
        if found is None:
            return None
        session_id, user = found
        return Agent(
            id=user.id, username=user.username, role=user.role, csrf=csrf, session_id=session_id
        )


async def current_agent(request: Request, runtime: RuntimeDep) -> Agent:
    """The signed-in person; pages redirect to the login form, everything else gets 401."""
    found = read_session(request, runtime.settings)
    agent = await run_in_threadpool(_load_agent, runtime, *found) if found else None
    if agent is None:
        if _wants_html(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise HTTPException(
                status_code=303,
                headers={"Location": f"{LOGIN_PATH}?next={quote(target, safe='')}"},
            )
        raise HTTPException(status_code=401, detail="sign in at /console/login first")
    return agent


CurrentUser = Annotated[Agent, Depends(current_agent)]


async def checked_agent(request: Request, agent: CurrentUser) -> Agent:
    """The signed-in person, on a request that carries their CSRF token."""
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.method == "POST":
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
    if not given or not hmac.compare_digest(given.encode(), agent.csrf.encode()):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token")
    return agent


CheckedUser = Annotated[Agent, Depends(checked_agent)]


def require_supervisor(agent: Agent) -> None:
    if not agent.is_supervisor:
        raise HTTPException(status_code=403, detail="supervisors only")
