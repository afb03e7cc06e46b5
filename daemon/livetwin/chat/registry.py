"""The one place where chat connectors are chosen by name, and the chat service that
`livetwin serve` runs: the pipeline plus the connectors configured in `chat:`.

A connector is one file with one class and one method, `async run(emit)`: it reads its
platform until cancelled, reconnecting with backoff (connect.py), and calls
`emit(platform, user, text, kind)` for each thing a viewer does. The service runs the
connectors on one asyncio loop in a background thread; `emit` is the daemon's own
`receive_chat` (the same path as `POST /api/chat`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from livetwin.chat.connect import Emit
from livetwin.chat.pipeline import ChatPipeline, ChatSettings
from livetwin.config import ChatConfig
from livetwin.events import Product

log = logging.getLogger("livetwin.chat")

# name -> "module:Class"; imported only when configured (no import-time side effects).
CONNECTORS = {
    "twitch": "livetwin.chat.twitch:TwitchChat",
    "youtube": "livetwin.chat.youtube:YouTubeChat",
}


class ChatConnector(Protocol):
    """A platform's chat: `run` reads it until cancelled, calling `emit` per event."""

    name: str

    async def run(self, emit: Emit) -> None: ...


def settings_from_config(cfg: ChatConfig) -> ChatSettings:
    """The pipeline's knobs from `chat:`."""
    return ChatSettings(threshold=cfg.threshold, user_interval_s=cfg.user_interval_s,
                        user_burst=cfg.user_burst, dedupe_window_s=cfg.dedupe_window_s,
                        max_age_s=cfg.max_age_s, queue_size=cfg.queue_size,
                        deflect_interval_s=cfg.deflect_interval_s,
                        greeting_interval_s=cfg.greeting_interval_s)


def connector(name: str, cfg: Any) -> ChatConnector:
    """The connector called `name` (CONNECTORS) over its config slice."""
    module, cls = CONNECTORS[name].split(":")
    return getattr(importlib.import_module(module), cls)(cfg)


def connectors_from_config(cfg: ChatConfig) -> list[ChatConnector]:
    """The connectors `chat:` switches on (a Twitch channel, a YouTube live chat id)."""
    out = []
    if cfg.twitch.channel:
        out.append(connector("twitch", cfg.twitch))
    if cfg.youtube.live_chat_id:
        out.append(connector("youtube", cfg.youtube))
    return out


class ChatService:
    """The pipeline's worker and the connectors' loop, started and stopped together."""

    def __init__(self, pipeline: ChatPipeline, connectors: Sequence[ChatConnector] = ()
                 ) -> None:
        self.pipeline, self.connectors = pipeline, list(connectors)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.emit: Emit | None = None

    def start(self, emit: Emit) -> None:
        self.pipeline.start()
        self.emit = emit
        if self.connectors:
            self._thread = threading.Thread(target=self._run, name="chat-connectors",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        assert self.emit is not None
        tasks = [loop.create_task(c.run(self.emit)) for c in self.connectors]
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()

    def close(self, timeout: float = 1.0) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            def cancel() -> None:
                for t in asyncio.all_tasks(loop):
                    t.cancel()
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(cancel)
        if self._thread is not None:
            self._thread.join(timeout)
        self.pipeline.close(timeout)


def open_chat(cfg: ChatConfig, products: Sequence[Product], say: Callable[..., str],
              current_product: Callable[[], Product | None],
              backlog: Callable[[], int]) -> ChatService:
    """The chat service of `livetwin serve` (not started)."""
    pipeline = ChatPipeline(products, say, current_product,
                            settings=settings_from_config(cfg), backlog=backlog)
    return ChatService(pipeline, connectors_from_config(cfg))
