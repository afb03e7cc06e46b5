"""The FastAPI app of `livetwin serve`: the REST routes of ARCHITECTURE §7 and `WS /ws`
(docs/live.md). `create_app` returns it wrapped in the Guard (token, body size).

Request bodies are pydantic models that forbid unknown fields and do not coerce types
(422); a line the daemon cannot say is 422 too, a full line queue 429."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Query, WebSocket
from pydantic import BaseModel, ConfigDict, Field

from livetwin import __version__
from livetwin.errors import InputError
from livetwin.events import Product, UtteranceSource, ViewerStats
from livetwin.runtime.live import LineStarted, LiveEvent, LiveTwin, QueueFull
from livetwin.runtime.transcript import ChatLog, Transcript, TranscriptEntry
from livetwin.server.auth import Token
from livetwin.server.guard import Guard
from livetwin.server.hub import Hub, chat_message, event_message
from livetwin.show.catalog import product_full_json

MAX_TEXT = 2_000


@dataclass
class Daemon:
    """What the API serves: the live twin and the daemon's records."""

    live: LiveTwin
    token: Token
    products: list[Product] = field(default_factory=list)
    stream_url: str = ""
    output_stats: Callable[[], Mapping[str, Any]] | None = None
    transcript: Transcript = field(default_factory=Transcript)
    chats: ChatLog = field(default_factory=ChatLog)
    hub: Hub = field(default_factory=Hub)
    started: float = field(default_factory=time.monotonic)
    viewers: ViewerStats | None = None

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
    text: str = Field(min_length=1, max_length=MAX_TEXT)


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
        return {"status": "ok", "fps": live["fps"],
                "uptime_s": round(time.monotonic() - daemon.started, 3),
                "avatar": daemon.live.avatar, "version": __version__,
                "output": dict(daemon.output_stats()) if daemon.output_stats else None,
                "live": live, "clients": len(daemon.hub.clients),
                "viewers": daemon.viewers.count if daemon.viewers else None}

    @app.post("/api/chat", status_code=202)
    def chat(body: ChatIn) -> IdOut:
        event = daemon.chats.add(body.platform, body.user, body.text)
        daemon.hub.publish_threadsafe(chat_message(event))
        return IdOut(id=event.id)

    @app.post("/api/viewers", status_code=202)
    def viewers(body: ViewersIn) -> dict[str, int]:
        daemon.viewers = ViewerStats(count=body.count, platform=body.platform)
        return {"count": body.count}

    @app.post("/api/say", status_code=202)
    def say(body: SayIn) -> IdOut:
        try:
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
        return [product_full_json(p) for p in daemon.products]

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        from livetwin.server.ws import serve_socket

        await serve_socket(socket, daemon)

    return Guard(app, daemon.token)
