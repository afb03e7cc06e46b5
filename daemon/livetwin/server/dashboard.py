"""The control room: the operator's web dashboard, served by the daemon itself.

The pages are plain HTML, CSS and JavaScript in `server/static/` (no build step, no CDN:
everything works offline). They hold no data, so `/` and `/static/...` are the only
paths the Guard lets through without the token; the page asks for the token (or takes it
once from `/?token=...`, moves it into sessionStorage and strips it from the address bar)
and sends it on every call: `Authorization: Bearer` over HTTP, and on the WebSocket,
where a browser cannot set headers, as a `Sec-WebSocket-Protocol` entry
(`bearer.TOKEN`, see ws.py) so the token never appears in a URL or an access log.

Everything live comes from the existing API and `WS /ws` (docs/live.md); this module adds
only what the page needs and nobody else had:
- `GET /api/preview.jpg`: the newest JPEG of the output's preview sink (204 before the
  first one, 404 when the preview is turned off); fetched by the page with the token and
  shown through an object URL, since an `<img src>` cannot carry a header.
- `GET /api/dashboard`: the avatar's AI-disclosure label and consent record, and the chat
  connectors, read once (they do not change while the daemon runs).
- `POST /api/chat/queue/{chat_id}/done`: take a question the operator answered off the
  chat pipeline's operator queue (404 when it is not there)."""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from fastapi import APIRouter, FastAPI, HTTPException, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

if TYPE_CHECKING:
    from livetwin.server.app import Daemon

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).with_name("static")
STATIC_PREFIX = "/static/"
PAGE_PATHS = frozenset({"/"})  # the dashboard page itself (the Guard lets these through)
CONSENT_FIELDS = ("subject", "statement", "date", "contact")
NO_STORE = {"Cache-Control": "no-store"}
# Defence in depth behind textContent: no inline script, nothing from other origins.
PAGE_HEADERS = {**NO_STORE, "Content-Security-Policy": (
    "default-src 'self'; img-src 'self' blob:; connect-src 'self'; script-src 'self'; "
    "style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def add_dashboard(app: FastAPI, daemon: Daemon) -> None:
    """Serve the dashboard page, its static files and its two routes on `app`."""
    app.include_router(dashboard_router(daemon))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def dashboard_router(daemon: Daemon) -> APIRouter:
    """The page and the routes of the module doc."""
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                            headers=PAGE_HEADERS)

    @router.get("/api/preview.jpg")
    def preview() -> Response:
        if daemon.preview is None:
            return Response(status_code=404, content=b'{"detail": "the preview is off; set '
                            b'output.preview_fps above 0."}', media_type="application/json")
        jpeg = daemon.preview()
        if jpeg is None:
            return Response(status_code=204, headers=NO_STORE)
        return Response(jpeg, media_type="image/jpeg", headers=NO_STORE)

    @functools.cache
    def avatar_info() -> dict[str, Any]:
        canvas = daemon.live.canvas
        return {"avatar": daemon.live.avatar,
                "label": {"on": canvas.label is not None, "text": canvas.label,
                          "editable": False},
                "consent": consent_record(daemon.live.avatar)}

    @router.get("/api/dashboard")
    def dashboard() -> dict[str, Any]:
        connectors = [c.name for c in daemon.chat.connectors] if daemon.chat else []
        return {**avatar_info(), "connectors": connectors,
                "chat_pipeline": daemon.chat is not None,
                "scripts_api": daemon.store is not None}

    @router.post("/api/chat/queue/{chat_id}/done")
    def queue_done(chat_id: str) -> dict[str, Any]:
        """Take an answered question off the operator queue."""
        queue = daemon.chat.pipeline.unanswered if daemon.chat else None
        found = [q for q in list(queue or ()) if q.get("chat_id") == chat_id]
        if queue is None or not found:
            raise HTTPException(404, f"no question {chat_id!r} in the operator queue.")
        for q in found:
            with contextlib.suppress(ValueError):  # the pipeline may have dropped it
                queue.remove(q)
        return {"chat_id": chat_id, "removed": len(found)}

    return router


def consent_record(avatar: str) -> dict[str, Any] | None:
    """The consent record of avatar bundle `avatar` (its consent.yaml fields), or None
    when it cannot be read; never raises (the dashboard shows "unknown")."""
    try:
        folder = _bundle_dir(avatar)
        data = yaml.safe_load((folder / "consent.yaml").read_text(encoding="utf-8"))
    except Exception as exc:  # a page that shows "unknown" beats a 500
        log.warning("cannot read the consent record of avatar %s: %s", avatar, exc)
        return None
    if not isinstance(data, dict):
        return None
    return {k: str(data[k]) for k in CONSENT_FIELDS if data.get(k) is not None}


def _bundle_dir(avatar: str) -> Path:
    from livetwin.avatar import bundle
    from livetwin.avatar.demo import demo_dir

    if avatar == "demo" and not Path(avatar).exists():
        return demo_dir()
    return bundle.resolve(avatar)
