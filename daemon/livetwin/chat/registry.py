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
from livetwin.errors import InputError
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
    """The pipeline's worker and the connectors' loop, started and stopped together. The
    connectors run as tasks on one asyncio loop in a thread; `set_target` (the chat the
    OBS script's properties choose) swaps the targeted connector while running."""

    def __init__(self, pipeline: ChatPipeline, connectors: Sequence[ChatConnector] = (),
                 cfg: ChatConfig | None = None) -> None:
        self.pipeline, self.connectors = pipeline, list(connectors)
        self.cfg = cfg or ChatConfig()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._target: tuple[str, asyncio.Task[None]] | None = None
        self._tasks: list[asyncio.Task[None]] = []  # the configured connectors
        self.target: tuple[str, str] | None = None  # (platform, channel) chosen in OBS
        self.emit: Emit | None = None

    def start(self, emit: Emit) -> None:
        self.pipeline.start()
        self.emit = emit
        self._thread = threading.Thread(target=self._run, name="chat-connectors",
                                        daemon=True)
        self._thread.start()
        self._ready.wait(5.0)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        assert self.emit is not None
        self._tasks = [loop.create_task(c.run(self.emit)) for c in self.connectors]
        self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_forever()
        loop.close()

    # -------------------------------------------------------------- health

    def loop_alive(self) -> bool:
        """Whether the connectors' loop thread runs (False before start)."""
        return self._thread is not None and self._thread.is_alive()

    def pipeline_alive(self) -> bool:
        """Whether the pipeline's reply worker runs (True before start)."""
        thread = getattr(self.pipeline, "_thread", None)  # chat/pipeline.py keeps it there
        return thread is None or thread.is_alive()

    def restart_pipeline(self) -> None:
        """Start the reply worker again after it died; its queue is kept."""
        if not self.pipeline_alive():
            self.pipeline._thread = None  # start() starts a worker only when there is none
            self.pipeline.start()

    def task_state(self, index: int) -> tuple[str, str]:
        """Connector `index`'s task: (running | starting | failed | ended, why), for
        the watchdog. A connector's `run` only returns when its chat is over (YouTube's
        ended broadcast); an exception out of it is a bug that killed it."""
        if self._thread is not None and not self._thread.is_alive():
            return "failed", "the chat loop thread ended"
        if index >= len(self._tasks):
            return "starting", ""
        task = self._tasks[index]
        if not task.done():
            return "running", ""
        if task.cancelled():
            return "ended", "cancelled"
        exc = task.exception()
        if exc is not None:
            return "failed", f"{type(exc).__name__}: {exc}"
        return "ended", "its chat is over"

    def restart(self, index: int) -> None:
        """Run connector `index` again (a new task; the loop thread too if it died)."""
        if self._thread is not None and not self._thread.is_alive():
            assert self.emit is not None
            self._ready.clear()
            self._thread = threading.Thread(target=self._run, name="chat-connectors",
                                            daemon=True)
            self._thread.start()
            self._ready.wait(5.0)
            return
        loop, emit = self._loop, self.emit
        if loop is None or emit is None:
            return
        conn = self.connectors[index]

        def again() -> None:
            self._tasks[index] = loop.create_task(conn.run(emit))

        loop.call_soon_threadsafe(again)

    def set_target(self, platform: str, channel: str) -> None:
        """Read `channel` of `platform` (twitch: the channel name; youtube: the live chat
        id) instead of the previous target; platform "none" stops it. Connectors from
        the config keep running."""
        if platform not in (*CONNECTORS, "none"):
            raise InputError(f"chat platform {platform!r} has no connector; use "
                             f"{', '.join(CONNECTORS)} or none (other platforms: a bridge "
                             "posting to /api/chat, docs/chat.md).")
        loop = self._loop
        if loop is None or self.emit is None:
            raise InputError("chat is not running yet; try again in a moment.")
        conn = None
        if platform == "twitch":
            conn = connector("twitch", self.cfg.twitch.model_copy(update={
                "channel": channel.lstrip("#")}))
        elif platform == "youtube":
            conn = connector("youtube", self.cfg.youtube.model_copy(update={
                "live_chat_id": channel}))
        emit = self.emit
        self.target = None if conn is None else (platform, channel)

        def swap() -> None:
            if self._target is not None:
                self._target[1].cancel()
                self._target = None
            if conn is not None:
                self._target = (platform, loop.create_task(conn.run(emit)))
            log.info("chat target: %s %s", platform, channel)

        loop.call_soon_threadsafe(swap)

    def close(self, timeout: float = 1.0) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            def cancel() -> None:
                for t in asyncio.all_tasks(loop):
                    t.cancel()
                loop.call_later(0.05, loop.stop)
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
    return ChatService(pipeline, connectors_from_config(cfg), cfg)
