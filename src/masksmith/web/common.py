"""What the routers share: the refusal (one sentence, as a page or as JSON), streaming an upload to disk under a
limit, serving a file only from under its folder, and sentences without the data folder's path."""

from __future__ import annotations

import io
import shutil
from html import escape
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from masksmith.core.paths import UnsafePath, is_under, resolve_under

MB = 1024 * 1024


class WebError(Exception):
    """A request the app refuses, with the HTTP status and the sentence the page shows."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def refuse(request: Request, status: int, message: str, help: str | None = None) -> Response:
    """The refusal page (a browser asking for a page) or {"error": sentence, "help": what the page may show
    beside it} (the page's scripts)."""
    if wants_html(request):
        return HTMLResponse(f"<!doctype html><html lang=en><meta charset=utf-8>"
                            f"<meta name=viewport content='width=device-width, initial-scale=1'>"
                            f"<title>masksmith</title><link rel=stylesheet href=/static/app.css>"
                            f"<main class=narrow><h1>Sorry</h1><p class=error>{escape(message)}</p>"
                            f"<p><a href=/datasets>Back to the data sets</a></p></main></html>", status_code=status)
    return JSONResponse({"error": message, **({"help": help} if help else {})}, status_code=status)


def plain(message: str, data_dir: Path) -> str:
    """A sentence without the data folder's absolute path (the page names files inside it)."""
    return message.replace(str(data_dir) + "/", "").replace(str(data_dir), "the data folder")


async def stream_to_file(request: Request, path: Path, limit: int, what: str) -> int:
    """The request body written to `path` chunk by chunk, stopping at `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise WebError(413, f"{what} is {int(declared) / MB:.0f} MB, more than the {limit / MB:.0f} MB allowed.")
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with path.open("wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                out.close()
                path.unlink(missing_ok=True)
                raise WebError(413, f"{what} is more than the {limit / MB:.0f} MB allowed.")
            out.write(chunk)
    if size == 0:
        path.unlink(missing_ok=True)
        raise WebError(400, f"{what} is empty (0 bytes); choose the file again.")
    return size


async def read_upload(request: Request, scratch: Path, limit: int, what: str) -> bytes:
    """The request's body as bytes, streamed through a scratch file in `scratch` (uploads) within `limit`."""
    import uuid

    tmp = scratch / f"{uuid.uuid4().hex}.upload"
    try:
        await stream_to_file(request, tmp, limit, what=what)
        return tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)


def file_under(root: Path, name: str, download: bool = False) -> FileResponse:
    """The file `name` inside `root`, never one outside it nor a hidden one."""
    try:
        path = resolve_under(root, name, what="file name")
    except UnsafePath:
        raise WebError(404, "there is no such file.") from None
    if not path.is_file() or path.name.startswith("."):
        raise WebError(404, "there is no such file.")
    return FileResponse(path, filename=path.name if download else None, headers={"Cache-Control": "no-cache"})


def remove_under(root: Path, folder: Path) -> None:
    """Delete `folder` only when it lies inside `root` (our data folder's part)."""
    if folder.exists() and is_under(folder, root) and folder.resolve() != root.resolve():
        shutil.rmtree(folder)


def png_download(picture: Any, filename: str, inline: bool = False) -> Response:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, "PNG")
    return Response(buf.getvalue(), media_type="image/png",
                    headers={"Content-Disposition": f'{"inline" if inline else "attachment"}; filename="{filename}"',
                             "Cache-Control": "no-cache"})
