"""`livetwin serve`: the live twin, its output, the show, chat and the API in one process.

Start: catalog (validated whole) and token (cheap checks first), bind the API socket (a
busy port is an input error, before the avatar loads), open the store (SQLite in the
livetwin home by default) and import the catalog in one transaction, open the twin,
freeze the start-up heap (see `freeze_heap`), then start the synthesis worker, the
output's tick thread, the chat pipeline and its connectors, the show director (which
only pitches approved scripts) and uvicorn. SIGINT/SIGTERM: uvicorn stops accepting and
closes the WebSockets (1 s grace), then the show, chat, the output (flushing its sinks)
and the worker stop; exit 0 within about 2 s."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from livetwin.config import Config
from livetwin.errors import InputError

log = logging.getLogger(__name__)
WS_MAX_BYTES = 64 * 1024
GRACE_S = 1  # seconds for open connections at shutdown
STOP_S = 1.0  # for the output and the worker at shutdown
OBS_LISTEN_QUERY = "overrun_nonfatal=1&fifo_size=50000"


@dataclass(frozen=True)
class ServeOptions:
    """What `livetwin serve` was asked for (command line over config)."""

    avatar: str = "demo"
    catalog: Path | None = None
    host: str | None = None
    port: int | None = None


def stream_url(obs_url: str) -> str:
    """The URL OBS's Media Source reads from, for the sink URL the daemon sends to:
    'udp://127.0.0.1:9999?pkt_size=1316' -> 'udp://127.0.0.1:9999?overrun_nonfatal=1&...'."""
    if not obs_url:
        return ""
    parts = urlsplit(obs_url)
    if parts.scheme != "udp":
        return obs_url
    return f"udp://{parts.netloc}?{OBS_LISTEN_QUERY}"


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port); InputError when the address cannot be used."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "is in use" if exc.errno == 98 else f"cannot be used ({exc.strerror})"
        raise InputError(f"{host}:{port} {why}; choose another with --port (or --host), or "
                         "stop the other livetwin serve.") from None
    sock.set_inheritable(True)
    return sock


def _server_class() -> type[Any]:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn that reports when it listens, and does not re-raise the captured
        signal after shutdown (so the process exits 0)."""

        on_ready: Callable[[], None] | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and self.on_ready is not None:
                self.on_ready()

        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            sigs = (signal.SIGINT, signal.SIGTERM)
            old = {s: signal.signal(s, self.handle_exit) for s in sigs}
            try:
                yield
            finally:
                for s, h in old.items():
                    signal.signal(s, h)

    return Server


def run(cfg: Config, opts: ServeOptions, *, announce: Callable[[str], None] = print,
        quiet: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
        on_ready: Callable[[Any], None] | None = None, stop_after_s: float | None = None
        ) -> int:
    """Run the daemon until SIGINT/SIGTERM (module doc); 0 on a clean stop. `quiet`
    wraps loading the avatar (mediapipe's native code logs to fd 2 there). `on_ready`
    gets the Daemon once the API listens (`livetwin demo` starts its audience there);
    with `stop_after_s` the daemon stops by itself after that long."""
    import uvicorn

    from livetwin.chat.registry import open_chat
    from livetwin.output import EncoderSettings, LiveOutput, sinks_from_config
    from livetwin.runtime.live import open_live
    from livetwin.server.app import Daemon, create_app
    from livetwin.server.auth import resolve_token
    from livetwin.show.catalog import read_catalog
    from livetwin.show.runner import open_show
    from livetwin.store import open_store
    from livetwin.store.transcript import StoredTranscript

    items = read_catalog(opts.catalog) if opts.catalog else None  # validated whole
    token = resolve_token(cfg.server.token)
    host = opts.host or cfg.server.host
    port = cfg.server.port if opts.port is None else opts.port
    sock = bind(host, port)
    store = None
    try:
        store = open_store(cfg.store.url)
        if items is not None:  # one transaction: the stored catalog is updated or unchanged
            store.import_catalog(items)
        products = store.products()
        with quiet():
            live = open_live(opts.avatar, cfg, products)
        output = LiveOutput(live, sinks_from_config(cfg.output),
                            encoder=EncoderSettings.from_config(cfg.output))
        daemon = Daemon(live, token, products, stream_url=stream_url(cfg.output.obs_url),
                        output_stats=lambda: output.stats().as_dict(),
                        preview=output.preview.latest_jpeg if output.preview else None,
                        transcript=StoredTranscript(store), store=store, config=cfg)
        daemon.show = open_show(live, store, cfg.show)
        daemon.address = (str(sock.getsockname()[0]), int(sock.getsockname()[1]))
        daemon.chat = open_chat(cfg.chat, products, live.say, lambda: live.state.product,
                                live.backlog)
        daemon.chat.pipeline.social = daemon.show.on_chat  # strategy-aware thanks
        server = _server_class()(uvicorn.Config(
            create_app(daemon), log_level="warning", ws_max_size=WS_MAX_BYTES,
            timeout_graceful_shutdown=GRACE_S, lifespan="on", access_log=False))
        freeze_heap()
        live.start()
        try:
            output.start()
            daemon.chat.start(daemon.receive_chat)
            daemon.show.start()
            try:
                def ready() -> None:
                    announce(_ready(sock, opts.avatar, live, token.describe(),
                                    daemon.stream_url))
                    if on_ready is not None:
                        on_ready(daemon)

                server.on_ready = ready
                if stop_after_s is not None:
                    timer = threading.Timer(stop_after_s,
                                            lambda: setattr(server, "should_exit", True))
                    timer.daemon = True
                    timer.start()
                asyncio.run(server.serve(sockets=[sock]))
            finally:
                daemon.show.stop(STOP_S)
                daemon.chat.close(STOP_S)
                output.stop(STOP_S)
        finally:
            live.close(STOP_S)
    finally:
        sock.close()
        if store is not None:
            store.close()
    return 0


def freeze_heap() -> None:
    """Move everything loaded so far (torch, mediapipe, the avatar: ~300k objects) out of
    the garbage collector's reach. A full collection over that heap holds the GIL for
    about 120 ms, which stalled the output during a chat flood (the flood's garbage
    triggers full collections); after the freeze a full collection takes well under
    a millisecond. What is loaded at start-up lives as long as the daemon anyway."""
    gc.collect()
    gc.freeze()


def _ready(sock: socket.socket, avatar: str, live: Any, token: str, obs: str) -> str:
    host, port = sock.getsockname()[:2]
    where = f"[{host}]" if ":" in host else host
    w, h = live.size
    lines = [f"livetwin serve: listening on http://{where}:{port} (avatar {avatar}, "
             f"{w}x{h} at {live.fps} fps)", token,
             f"dashboard: http://{where}:{port}/ (it asks for the API token)"]
    if obs:
        lines.append(f"OBS Media Source input: {obs}")
    lines.append("stop with Ctrl-C")
    return "\n".join(lines)
