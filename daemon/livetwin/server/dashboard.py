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
  connectors.
- `POST /api/chat/queue/{chat_id}/done`: take a question the operator answered off the
  chat pipeline's operator queue (404 when it is not there).
- `GET /api/show`: the show director's audience tier, the profile in force, and the next
  lines it plans (ShowRunner.outlook); `{"running": false}` without a show.
- `GET /api/gestures`: the gestures this avatar can show (id, name, category,
  description); `POST /api/gesture {"name"}` plays one now (202 with its duration; 422
  with one sentence for a name the avatar cannot show).
- `POST /api/label {"text"}`: new text for the AI-disclosure label, drawn from the next
  frame on until the daemon stops (the config's `render.label` is the text at start).
  The label can be reworded here, never turned off: the text must not be empty, at most
  LABEL_MAX characters, and must still say AI (AI_WORDS), else 422 with the reason.
  Where the config turned the label off, the text is shown (disclosure only ever goes
  up from the dashboard)."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from fastapi import APIRouter, FastAPI, HTTPException, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from livetwin.errors import InputError

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
LABEL_MAX = 40
# The label must still tell viewers the host is artificial: "AI" or "KI" as a word (not
# inside one: "AIR" or "SKI" do not count), "A.I.", or the Chinese words for it.
AI_WORDS = re.compile(r"(?<![A-Za-z])(?:[Aa][Ii]|KI|A\.I\.?)(?![A-Za-z])|人工智能|数字人|虚拟")
NEXT_LINES = 5


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class GestureIn(_Body):
    name: str = Field(min_length=1, max_length=64)


class LabelIn(_Body):
    text: str = Field(max_length=200)  # the rules of the module doc are checked below


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
    def consent() -> dict[str, Any] | None:  # the bundle's file: read once
        return consent_record(daemon.live.avatar)

    def label() -> dict[str, Any]:
        text = daemon.live.label
        return {"on": text is not None, "text": text, "editable": True, "max": LABEL_MAX}

    @router.get("/api/dashboard")
    def dashboard() -> dict[str, Any]:
        connectors = [c.name for c in daemon.chat.connectors] if daemon.chat else []
        return {"avatar": daemon.live.avatar, "label": label(), "consent": consent(),
                "connectors": connectors, "chat_pipeline": daemon.chat is not None,
                "scripts_api": daemon.store is not None}

    @router.get("/api/show")
    def show() -> dict[str, Any]:
        if daemon.show is None:
            return {"running": False}
        return {"running": True, **daemon.show.outlook(NEXT_LINES)}

    @router.get("/api/gestures")
    def gestures() -> list[dict[str, Any]]:
        from livetwin.gesture.library import default_library

        lib = default_library()
        return [{"id": g.id, "name": g.name, "category": g.category,
                 "description": g.description}
                for g in (lib[n] for n in daemon.live.gesture_names())]

    @router.post("/api/gesture", status_code=202)
    def gesture(body: GestureIn) -> dict[str, Any]:
        try:
            duration = daemon.live.play_gesture(body.name)
        except InputError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"name": body.name, "duration_s": round(duration, 3)}

    @router.post("/api/label")
    def set_label(body: LabelIn) -> dict[str, Any]:
        text = " ".join(body.text.split())
        try:
            check_label(text)
            daemon.live.set_label(text)
        except InputError as exc:
            raise HTTPException(422, str(exc)) from None
        log.info("the AI-disclosure label now reads %r (set from the dashboard)", text)
        return label()

    @router.post("/api/chat/queue/{chat_id}/done")
    def queue_done(chat_id: str) -> dict[str, Any]:
        """Take an answered question off the operator queue."""
        removed = take_off_queue(daemon, chat_id)
        if not removed:
            raise HTTPException(404, f"no question {chat_id!r} in the operator queue.")
        return {"chat_id": chat_id, "removed": removed}

    return router


def check_label(text: str) -> None:
    """InputError unless `text` may be the AI-disclosure label (module doc)."""
    if not text:
        raise InputError("the AI label cannot be empty: viewers must see that the host is "
                         "AI-generated.")
    if len(text) > LABEL_MAX:
        raise InputError(f"the AI label is {len(text)} characters; keep it to {LABEL_MAX} "
                         "so it stays readable.")
    if not AI_WORDS.search(text):
        raise InputError('the AI label must still say the host is AI: include "AI" (or '
                         '"KI", "人工智能"), e.g. "AI-generated host".')


def take_off_queue(daemon: Daemon, chat_id: str) -> int:
    """Remove question `chat_id` from the chat pipeline's operator queue; how many
    entries went (0 when it was not there)."""
    if daemon.chat is None:
        return 0
    queue = daemon.chat.pipeline.unanswered
    found = [q for q in list(queue) if q.get("chat_id") == chat_id]
    for q in found:
        with contextlib.suppress(ValueError):  # the pipeline may have dropped it
            queue.remove(q)
    return len(found)


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
