"""``/console/login`` and ``/console/logout``: signing in with a password (argon2) behind the
throttles and the hashing cap of ``signin_guard``, a session kept in the ledger and named by a
signed cookie; signing out deletes it. Both audited."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from bot.clock import wall_clock_utc
from bot.console.auth import (
    CheckedUser,
    end_session,
    login_token,
    login_token_valid,
    start_session,
)
from bot.console.rendering import page
from bot.console.signin_guard import BUSY_RETRY_SECONDS, Refusal, client_address, sign_in_guard
from bot.console.texts import console_texts
from bot.console_sessions import close_session, open_session
from bot.console_users import authenticate
from bot.domain.audit import record_audit
from bot.gateway.deps import RuntimeDep
from bot.gateway.runtime import GatewayRuntime

router = APIRouter(prefix="/console", tags=["console"])


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/console") and not target.startswith("/console/login"):
        return target
    return "/console"


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, runtime: RuntimeDep, next: str | None = None) -> Response:
    return _page_with_login_token(request, runtime, _safe_next(next), None)


def _page_with_login_token(
    request: Request,
    runtime: GatewayRuntime,
    target: str,
    error: str | None,
    status: int = 200,
    username: str = "",
    retry_after: int | None = None,
) -> Response:
    """The login form with its CSRF token (set in a cookie on the same response)."""
    holder = Response()
    token = login_token(request, holder, runtime.settings)
    response = page(
        request,
        "login.html",
        {"next": target, "error": error, "csrf": token, "agent": None, "username": username},
        status_code=status,
    )
    for key, value in holder.headers.items():
        if key.lower() == "set-cookie":
            response.headers.append("set-cookie", value)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _sign_in(runtime: GatewayRuntime, username: str, password: str) -> str | None:
    """The new session's secret when the password is right (audited either way)."""
    with runtime.sessions() as session:
        user = authenticate(session, username, password)
        record_audit(
            session,
            runtime.clock,
            actor=f"agent:{user.username}" if user else "system",
            action="console_login" if user else "console_login_failed",
            username=username[:64],
        )
        secret = open_session(session, user, wall_clock_utc()) if user is not None else None
        session.commit()
        return secret


def _refused(
    request: Request, runtime: GatewayRuntime, target: str, username: str, refusal: Refusal
) -> Response:
    message = console_texts().label("login", f"throttled_{refusal.reason}")
    return _page_with_login_token(
        request, runtime, target, message, 429, username, retry_after=refusal.retry_after
    )


@router.post("/login")
async def login(
    request: Request,
    runtime: RuntimeDep,
    username: str = Form("", max_length=64),
    password: str = Form("", max_length=256),
    csrf_token: str = Form(""),
    next: str = Form("/console"),
) -> Response:
    texts = console_texts()
    target = _safe_next(next)
    if not login_token_valid(request, runtime.settings, csrf_token):
        return _page_with_login_token(request, runtime, target, texts.error("csrf"), 403)
    guard = sign_in_guard(request, runtime.settings)
    address = client_address(request)
    refusal = guard.throttle.refusal(address, username)
    if refusal is not None:  # no hash at all
        return _refused(request, runtime, target, username, refusal)
    charge = guard.throttle.charge(address, username)
    async with guard.hashes.slot() as granted:
        if not granted:
            guard.throttle.uncharge(charge)  # turned away unchecked: not a failure
            busy = Refusal("busy", BUSY_RETRY_SECONDS)
            return _refused(request, runtime, target, username, busy)
        secret = await run_in_threadpool(_sign_in, runtime, username, password)
    if secret is None:
        return _page_with_login_token(
            request, runtime, target, texts.label("login", "wrong"), 401, username
        )
    guard.throttle.succeeded(charge)
    response = RedirectResponse(target, status_code=303)
    start_session(response, runtime.settings, secret)
    return response


@router.post("/logout")
async def logout(agent: CheckedUser, runtime: RuntimeDep) -> Response:
    def _audit() -> None:
        with runtime.sessions() as session:
            close_session(session, agent.session_id)
            record_audit(session, runtime.clock, actor=agent.actor, action="console_logout")
            session.commit()

    await run_in_threadpool(_audit)
    response = RedirectResponse("/console/login", status_code=303)
    end_session(response, runtime.settings)
    return response
