"""``/dashboard``: collections results with charts, and ``/dashboard/export.csv``.

Thin: read the range, ask :func:`~bot.dashboard.metrics.collections_metrics`, render.
Any signed-in console user (agent or supervisor) may look; others are sent to the login.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from bot.console.auth import CurrentUser
from bot.dashboard import views
from bot.dashboard.metrics import Metrics, collections_metrics
from bot.gateway.deps import RuntimeDep
from bot.gateway.runtime import GatewayRuntime

HERE = Path(__file__).parent
router = APIRouter(prefix="/dashboard", tags=["dashboard"])
templates = Jinja2Templates(directory=str(HERE / "templates"))
STATIC_FILES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
RANGES = (7, 14, 28, 90)
MAX_DAYS = 366


def _range(
    runtime: GatewayRuntime, days: int, start: date | None, end: date | None
) -> tuple[date, date]:
    last = end or runtime.clock.today()
    first = start or last - timedelta(days=days - 1)
    if first > last:
        raise HTTPException(status_code=422, detail="start is after end")
    if (last - first).days >= MAX_DAYS:
        raise HTTPException(status_code=422, detail=f"at most {MAX_DAYS} days at a time")
    return first, last


def _metrics(runtime: GatewayRuntime, first: date, last: date) -> Metrics:
    with runtime.sessions() as session:
        return collections_metrics(session, runtime.clock, first, last)


@router.get("", response_class=HTMLResponse)
async def dashboard(
    request: Request,
    runtime: RuntimeDep,
    agent: CurrentUser,
    days: int = Query(28, ge=1, le=MAX_DAYS),
    start: date | None = None,
    end: date | None = None,
) -> Response:
    """The results page: tiles, charts and the table per day, step and segment."""
    first, last = _range(runtime, days, start, end)
    metrics = await run_in_threadpool(_metrics, runtime, first, last)
    return templates.TemplateResponse(
        request,
        "dashboard.html",
        {
            "agent": agent,
            "start": first,
            "end": last,
            "days": (last - first).days + 1,
            "ranges": RANGES,
            "kpis": views.kpis(metrics.total),
            "charts": views.chart_data(metrics),
            "rows": views.table_rows(metrics),
            "day_label": views.day_label,
            "export": f"/dashboard/export.csv?start={first}&end={last}",
        },
    )


@router.get("/export.csv")
async def export_csv(
    runtime: RuntimeDep,
    agent: CurrentUser,
    days: int = Query(28, ge=1, le=MAX_DAYS),
    start: date | None = None,
    end: date | None = None,
) -> Response:
    """The same rows as CSV, one per day, step and segment."""
    first, last = _range(runtime, days, start, end)
    metrics = await run_in_threadpool(_metrics, runtime, first, last)
    return Response(
        views.metrics_csv(metrics),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="acuerdo-resultados-{first}-{last}.csv"'
        },
    )


@router.get("/static/{filename}")
async def static_file(filename: str) -> Response:
    """The page's own script and styles (Chart.js itself is served from ``/static``)."""
    media_type = STATIC_FILES.get(filename)
    if media_type is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(HERE / "static" / filename, media_type=media_type)
