"""Rendering shared by the console's routes: templates, security headers, refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates

from bot.console.service import Refused
from bot.console.texts import console_texts

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(directory=str(HERE / "templates"))


def page(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A full console page (the Spanish texts are always in the context)."""
    response = templates.TemplateResponse(
        request, name, {"texts": console_texts(), **context}, status_code=status_code
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def fragment(name: str, **context: Any) -> str:
    """A piece of a page, for live updates."""
    return templates.get_template(name).render(texts=console_texts(), **context)


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def error_page(request: Request, agent: Any, refusal: Refused) -> Response:
    message = console_texts().error(refusal.reason)
    if wants_json(request):
        return JSONResponse({"ok": False, "message": message}, status_code=refusal.status)
    return page(
        request, "error.html", {"agent": agent, "message": message}, status_code=refusal.status
    )
