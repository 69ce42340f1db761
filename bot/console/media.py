"""``GET /console/media/{message_id}``: the file a debtor sent (a receipt photo, a PDF).

Only inbound WhatsApp messages with a media id, and only for whoever may read that chat
(:func:`bot.domain.handoff.can_view`, as the chat page). The first request downloads the
file from the Graph API and keeps it under ``{ACUERDO_VAR_DIR}/media/{message_id}`` (its
type beside it in ``{message_id}.mime``): WhatsApp's download URLs expire within minutes,
the copy on disk does not. The sandbox's built-in Graph sink has no files, so there the
route answers 404 and the chat page shows only the type and the media id.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bot.channels.whatsapp_media import MediaError
from bot.console.auth import Agent, CurrentUser
from bot.console.rendering import error_page
from bot.console.service import Refused
from bot.db.models import Channel, ConsoleUser, Conversation, Direction, Message
from bot.domain import handoff
from bot.gateway.deps import RowId, RuntimeDep
from bot.gateway.runtime import GatewayRuntime, graph_base_url

router = APIRouter(prefix="/console", tags=["console"])
log = structlog.get_logger("acuerdo.console")

# Shown in the browser; anything else (HTML, SVG, ...) is only offered as a download.
INLINE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "application/pdf"})
DOWNLOAD_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class MediaSource:
    message_id: int
    media_id: str
    mime: str | None  # as the webhook said


def media_viewable(runtime: GatewayRuntime) -> bool:
    """False while WhatsApp goes to the sandbox's built-in sink (it has no files)."""
    return graph_base_url(runtime.settings) == runtime.settings.whatsapp_api_base_url


def media_source(runtime: GatewayRuntime, agent: Agent, message_id: int) -> MediaSource:
    """The media id of an inbound message the agent may read; :class:`Refused` otherwise."""
    with runtime.sessions() as session:
        user = session.get(ConsoleUser, agent.id)
        message = session.get(Message, message_id)
        if user is None or message is None:
            raise Refused("not_found", 404)
        conversation = session.get(Conversation, message.conversation_id)
        if conversation is None:
            raise Refused("not_found", 404)
        if not handoff.can_view(user, conversation):
            raise Refused("forbidden", 403)
        payload = message.payload or {}
        media_id = payload.get("media_id")
        if (
            message.direction != Direction.IN.value
            or message.channel != Channel.WHATSAPP.value
            or not isinstance(media_id, str)
            or not media_id
        ):
            raise Refused("no_media", 404)
        mime = payload.get("media_mime")
        return MediaSource(message.id, media_id, mime if isinstance(mime, str) else None)


def _cache_dir(runtime: GatewayRuntime) -> Path:
    return Path(runtime.settings.var_dir) / "media"


def read_cached(runtime: GatewayRuntime, source: MediaSource) -> tuple[bytes, str] | None:
    folder = _cache_dir(runtime)
    data_file = folder / str(source.message_id)
    try:
        data = data_file.read_bytes()
    except FileNotFoundError:
        return None
    try:
        mime = (folder / f"{source.message_id}.mime").read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        mime = source.mime or ""
    return data, mime


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_cached(runtime: GatewayRuntime, source: MediaSource, data: bytes, mime: str) -> None:
    """The type first, then the bytes: a data file on disk is always complete and typed."""
    folder = _cache_dir(runtime)
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomically(folder / f"{source.message_id}.mime", mime.encode("ascii", "ignore"))
    _write_atomically(folder / str(source.message_id), data)


def media_response(data: bytes, mime: str) -> Response:
    mime = mime.split(";")[0].strip().lower()
    inline = mime in INLINE_TYPES
    return Response(
        data,
        media_type=mime if inline else DOWNLOAD_TYPE,
        headers={
            "Content-Disposition": "inline" if inline else "attachment",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=600",
        },
    )


@router.get("/media/{message_id}")
async def media(
    message_id: RowId, request: Request, agent: CurrentUser, runtime: RuntimeDep
) -> Response:
    """The file of an inbound message, from the disk cache or else from WhatsApp."""
    try:
        source = await run_in_threadpool(media_source, runtime, agent, message_id)
    except Refused as refusal:
        return error_page(request, agent, refusal)
    cached = await run_in_threadpool(read_cached, runtime, source)
    if cached is not None:
        return media_response(*cached)
    if not media_viewable(runtime):
        return error_page(request, agent, Refused("media_sandbox", 404))
    try:
        data, mime = await runtime.whatsapp.fetch_media(source.media_id)
    except MediaError as exc:
        log.warning("console.media_failed", message_id=message_id, reason=str(exc))
        return error_page(request, agent, Refused(exc.reason, 404))
    if not mime or mime == DOWNLOAD_TYPE:
        mime = source.mime or DOWNLOAD_TYPE
    await run_in_threadpool(write_cached, runtime, source, data, mime)
    log.info("console.media_fetched", message_id=message_id, size=len(data), mime=mime)
    return media_response(data, mime)
