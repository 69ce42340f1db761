"""``/console/login`` and ``/console/logout``: signing in with a password (argon2), a signed
session cookie, a throttle on repeated failures; both audited."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from bot.console.auth import (
    CheckedUser,
    end_session,
    login_throttle,
    login_token,
    login_token_valid,
    start_session,
)
from bot.console.rendering import page
from bot.console.texts import console_texts
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
    return response


def _sign_in(runtime: GatewayRuntime, username: str, password: str) -> Any:
    with runtime.sessions() as session:
        user = authenticate(session, username, password)
        record_audit(
            session,
            runtime.clock,
            actor=f"agent:{user.username}" if user else "system",
            action="console_login" if user else "console_login_failed",
            username=username[:64],
        )
        session.commit()
        if user is not None:
            session.expunge(user)
        return user


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
    throttle = login_throttle(request)
    if not login_token_valid(request, runtime.settings, csrf_token):
        return _page_with_login_token(request, runtime, target, texts.error("csrf"), 403)
    if throttle.blocked(username):
        return _page_with_login_token(
            request, runtime, target, texts.label("login", "throttled"), 429, username
        )
    user = await run_in_threadpool(_sign_in, runtime, username, password)
    if user is None:
        throttle.failed(username)
        return _page_with_login_token(
            request, runtime, target, texts.label("login", "wrong"), 401, username
        )
    throttle.succeeded(username)
    response = RedirectResponse(target, status_code=303)
    start_session(response, runtime.settings, user)
    return response


@router.post("/logout")
async def logout(agent: CheckedUser, runtime: RuntimeDep) -> Response:
    def _audit() -> None:
        with runtime.sessions() as session:
            record_audit(session, runtime.clock, actor=agent.actor, action="console_logout")
            session.commit()

    await run_in_threadpool(_audit)
    response = RedirectResponse("/console/login", status_code=303)
    end_session(response, runtime.settings)
    return response
