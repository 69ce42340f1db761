"""Downloading an inbound WhatsApp media file (a receipt photo, a PDF) from the Graph API.

Two steps, both with the bearer token: ``GET {base}/{media_id}`` answers JSON with a
short-lived ``url`` and the ``mime_type``; ``GET url`` answers the bytes. Files above
:data:`MAX_MEDIA_BYTES` are refused without reading them whole.
"""

from __future__ import annotations

import re

import httpx

MAX_MEDIA_BYTES = 16 * 1024 * 1024
MEDIA_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
_MEDIA_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")


class MediaError(Exception):
    """The file could not be downloaded; ``reason`` is a short machine-readable word."""

    reason = "media_error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)
        self.detail = detail


class MediaNotFound(MediaError):
    """Graph does not know the id (never existed, expired, or not ours)."""

    reason = "media_not_found"


class MediaTooLarge(MediaError):
    reason = "media_too_large"


class MediaUnavailable(MediaError):
    """Network trouble, a timeout, a refused token, or an answer we cannot read."""

    reason = "media_unavailable"


def _status_error(step: str, response: httpx.Response) -> MediaError:
    detail = f"{step}: HTTP {response.status_code}"
    if response.status_code in (400, 404, 410):
        return MediaNotFound(detail)
    return MediaUnavailable(detail)


async def fetch_media(
    client: httpx.AsyncClient,
    api_base_url: str,
    media_id: str,
    *,
    max_bytes: int = MAX_MEDIA_BYTES,
    timeout: httpx.Timeout = MEDIA_TIMEOUT,
) -> tuple[bytes, str]:
    """``(bytes, mime type)`` of ``media_id``; ``client`` carries the bearer token."""
    if not _MEDIA_ID.match(media_id):
        raise MediaNotFound("malformed media id")
    try:
        meta = await client.get(f"{api_base_url.rstrip('/')}/{media_id}", timeout=timeout)
        if meta.status_code // 100 != 2:
            raise _status_error("metadata", meta)
        try:
            info = meta.json()
        except ValueError:
            raise MediaUnavailable("metadata is not JSON") from None
        url = info.get("url") if isinstance(info, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise MediaUnavailable("metadata has no url")
        size = info.get("file_size")
        if isinstance(size, int) and size > max_bytes:
            raise MediaTooLarge(f"{size} bytes")
        mime = info.get("mime_type") if isinstance(info.get("mime_type"), str) else ""
        async with client.stream("GET", url, timeout=timeout) as response:
            if response.status_code // 100 != 2:
                raise _status_error("download", response)
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise MediaTooLarge(f"{length} bytes")
            chunks: list[bytes] = []
            received = 0
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise MediaTooLarge(f"more than {max_bytes} bytes")
                chunks.append(chunk)
            if not mime:
                mime = response.headers.get("Content-Type", "")
    except httpx.TimeoutException as exc:
        raise MediaUnavailable(f"timeout ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        raise MediaUnavailable(f"network ({type(exc).__name__})") from None
    mime = mime.split(";")[0].strip().lower() or "application/octet-stream"
    return b"".join(chunks), mime
