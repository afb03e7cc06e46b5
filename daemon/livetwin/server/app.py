"""The FastAPI app of `livetwin serve`: the REST routes of ARCHITECTURE §7 and `WS /ws`
(docs/live.md). `create_app` returns it wrapped in the Guard (token, body size).

Request bodies are pydantic models that forbid unknown fields and do not coerce types
(422); a line the daemon cannot say is 422 too, a full line queue 429."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Query, WebSocket
from pydantic import BaseModel, ConfigDict, Field

from livetwin import __version__
from livetwin.chat.registry import ChatService
from livetwin.errors import InputError
from livetwin.events import ChatEvent, ChatKind, Product, UtteranceSource, ViewerStats
from livetwin.runtime.live import LiveTwin
from livetwin.runtime.live_events import LineStarted, LiveEvent, QueueFull
from livetwin.runtime.transcript import ChatLog, Transcript, TranscriptEntry
from livetwin.server.auth import Token
from livetwin.server.guard import Guard
from livetwin.server.hub import Hub, chat_message, event_message
from livetwin.show.catalog import product_full_json

if TYPE_CHECKING:
    from livetwin.config import Config
    from livetwin.runtime.kept_lines import KeptLines
    from livetwin.runtime.watchdog import Watchdog
    from livetwin.show.runner import ShowRunner
    from livetwin.store.db import Store

MAX_TEXT = 2_000
MAX_CHAT_TEXT = 32_000  # chat is judged (and long spam dropped) by the chat gate


@dataclass
class Daemon:
    """What the API serves: the live twin and the daemon's records."""

    live: LiveTwin
    token: Token
    products: list[Product] = field(default_factory=list)
    stream_url: str = ""
    output_stats: Callable[[], Mapping[str, Any]] | None = None
    preview: Callable[[], bytes | None] | None = None  # newest preview JPEG
    transcript: Transcript = field(default_factory=Transcript)
    chats: ChatLog = field(default_factory=ChatLog)
    hub: Hub = field(default_factory=Hub)
    started: float = field(default_factory=time.monotonic)
    viewers: ViewerStats | None = None
    address: tuple[str, int] = ("127.0.0.1", 8765)  # where the API listens (set by serve)
    chat: ChatService | None = None
    show: ShowRunner | None = None  # the show director on the live twin (show/runner.py)
    store: Store | None = None  # catalog, scripts, transcript (store/)
    config: Config | None = None  # livetwin.yaml: show.templates and llm for the script routes
    watchdog: Watchdog | None = None  # component health for /api/health (runtime/watchdog.py)
    kept: KeptLines | None = None  # operator lines kept across a crash (runtime/kept_lines.py)

    def receive_chat(self, platform: str, user: str, text: str,
                     kind: ChatKind = ChatKind.COMMENT) -> ChatEvent:
        """One viewer event from the API or a connector: logged, published, then judged
        by the chat pipeline (docs/chat.md). Kept to MAX_TEXT characters, so a flood of
        huge messages cannot grow the chat log (the gate drops them as spam anyway)."""
        event = self.chats.add(platform[:32], user[:100], text[:MAX_TEXT])
        if kind is not ChatKind.COMMENT:
            event = dataclasses.replace(event, kind=kind)
        self.hub.publish_threadsafe(chat_message(event))
        if self.chat is not None:
            self.chat.pipeline.submit(event)
        return event

    def on_event(self, event: LiveEvent) -> None:
        """LiveTwin subscriber (dispatcher thread): transcript, then the WebSocket."""
        if isinstance(event, LineStarted):
            u = event.utterance
            self.transcript.add(TranscriptEntry(u.id, event.at, u.text, str(u.source),
                                                u.product_id, u.reply_to))
        self.hub.publish_threadsafe(event_message(event))


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ChatIn(_Body):
    platform: str = Field(min_length=1, max_length=32)
    user: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=MAX_CHAT_TEXT)


class ViewersIn(_Body):
    count: int = Field(ge=0, le=1_000_000_000)
    platform: str = Field("", max_length=32)


class SayIn(_Body):
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    lang: str | None = Field(None, max_length=16)


class IdOut(BaseModel):
    id: str


def create_app(daemon: Daemon) -> Guard:
    """The API around `daemon` (module doc)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        daemon.hub.loop = asyncio.get_running_loop()
        unsubscribe = daemon.live.subscribe(daemon.on_event)
        try:
            yield
        finally:
            unsubscribe()
            daemon.hub.close_all()

    app = FastAPI(title="livetwin", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        live = daemon.live.stats()
        return {"status": "ok", "fps": live["fps"], "pid": os.getpid(),
                "uptime_s": round(time.monotonic() - daemon.started, 3),
                "avatar": daemon.live.avatar, "version": __version__,
                "output": dict(daemon.output_stats()) if daemon.output_stats else None,
                "live": live, "clients": len(daemon.hub.clients),
                "viewers": daemon.viewers.count if daemon.viewers else None,
                "health": daemon.watchdog.snapshot() if daemon.watchdog else None}

    @app.post("/api/chat", status_code=202)
    def chat(body: ChatIn) -> IdOut:
        return IdOut(id=daemon.receive_chat(body.platform, body.user, body.text).id)

    @app.get("/api/chat/queue")
    def chat_queue() -> list[dict[str, object]]:
        """Questions the answer database could not answer (for the operator)."""
        return list(daemon.chat.pipeline.unanswered) if daemon.chat else []

    @app.get("/api/chat/decisions")
    def chat_decisions(n: int = Query(200, ge=1, le=2000)) -> list[dict[str, object]]:
        """The chat pipeline's latest decisions, each with its reason."""
        if daemon.chat is None:
            return []
        return [d.to_json() for d in list(daemon.chat.pipeline.decisions)[-n:]]

    @app.post("/api/viewers", status_code=202)
    def viewers(body: ViewersIn) -> dict[str, int]:
        daemon.viewers = ViewerStats(count=body.count, platform=body.platform)
        if daemon.show is not None:
            daemon.show.on_viewers(body.count)
        return {"count": body.count}

    @app.post("/api/say", status_code=202)
    def say(body: SayIn) -> IdOut:
        try:
            if daemon.kept is not None:
                line_id = daemon.kept.say(body.text, body.lang)
            else:
                line_id = daemon.live.say(body.text, UtteranceSource.OPERATOR, lang=body.lang)
        except QueueFull as exc:
            raise HTTPException(429, str(exc)) from None
        except InputError as exc:
            raise HTTPException(422, str(exc)) from None
        return IdOut(id=line_id)

    @app.get("/api/transcript")
    def transcript(since: str | None = Query(None, max_length=32)) -> list[dict[str, object]]:
        return [e.to_json() for e in daemon.transcript.since(since)]

    @app.get("/api/products")
    def products() -> list[dict[str, object]]:
        items = daemon.store.products() if daemon.store is not None else daemon.products
        return [product_full_json(p) for p in items]

    @app.get("/api/scripts")
    def scripts(product_id: str | None = Query(None, max_length=64)) -> list[dict[str, Any]]:
        """Every script version (of one product), with its lines, for proofreading."""
        if daemon.store is None:
            return []
        return [r.to_json() for r in daemon.store.scripts(product_id)]

    def decide(script_id: int, status: str) -> dict[str, Any]:
        if daemon.store is None:
            raise HTTPException(404, "this daemon has no script store.")
        try:
            record = daemon.store.decide(script_id, status)
        except InputError as exc:
            raise HTTPException(404, str(exc)) from None
        if daemon.show is not None:  # the next pitch uses the new decision
            from livetwin.show.runner import show_items

            daemon.show.reload(show_items(daemon.store, daemon.show.director.templates.lang))
        return record.summary()

    @app.post("/api/scripts/{script_id}/approve")
    def approve(script_id: int) -> dict[str, Any]:
        return decide(script_id, "approved")

    @app.post("/api/scripts/{script_id}/reject")
    def reject(script_id: int) -> dict[str, Any]:
        return decide(script_id, "rejected")

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        from livetwin.server.ws import serve_socket

        await serve_socket(socket, daemon)

    @app.websocket("/ws/chat")
    async def ws_chat(socket: WebSocket) -> None:
        from livetwin.chat.ingest import serve_ingest

        await serve_ingest(socket, daemon)

    from livetwin.server.dashboard import add_dashboard

    add_dashboard(app, daemon)  # the control room pages (dashboard.py)
    from livetwin.server.show_routes import add_show_routes

    add_show_routes(app, daemon)  # products and scripts for the dashboard (show_routes.py)
    return Guard(app, daemon.token)
