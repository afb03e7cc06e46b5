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
import functools
import gc
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from livetwin.config import Config, home_dir
from livetwin.errors import InputError

log = logging.getLogger(__name__)
WS_MAX_BYTES = 64 * 1024
GRACE_S = 1  # seconds for open connections at shutdown
STOP_S = 1.0  # for the output and the worker at shutdown
OUTPUT_HOLD_S = 20.0  # the daemon died: its output holds the picture for a restart
SPARE_NICE = 10  # a spare (--standby) loads at this niceness, beside the live daemon
OBS_LISTEN_QUERY = "overrun_nonfatal=1&fifo_size=50000"
OUTPUT_DOWN_S = 3.0  # supervised: a dead output this long ends the daemon (exit 1)
RSS_LIMIT_MB = 4096  # above this the watchdog reports memory as degraded (a leak)


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
        on_ready: Callable[[Any], None] | None = None, stop_after_s: float | None = None,
        standby: Callable[[], None] | None = None) -> int:
    """Run the daemon until SIGINT/SIGTERM (module doc); 0 on a clean stop. `quiet`
    wraps loading the avatar (mediapipe's native code logs to fd 2 there). `on_ready`
    gets the Daemon once the API listens (`livetwin demo` starts its audience there);
    with `stop_after_s` the daemon stops by itself after that long. With `standby` (the
    spare of `serve --supervise`, runtime/supervise.py) it loads what is slow (imports,
    the avatar) and calls `standby()`, which returns when it is to take over; only then
    does it bind the port, read the catalog and the show's position and start."""
    import uvicorn

    from livetwin.chat.registry import open_chat
    from livetwin.output import EncoderSettings, LiveOutput, sinks_from_config
    from livetwin.output.live import set_niceness
    from livetwin.runtime.kept_lines import KeptLines
    from livetwin.runtime.live_open import open_live
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
    sock = bind(host, port) if standby is None else None
    store = None
    failed: list[str] = []  # a component the watchdog handed over to the supervisor
    clean = False  # stopped as asked (SIGINT/SIGTERM, stop_after_s)
    try:
        if standby is not None:  # a spare loads beside a live daemon: yield the CPU
            set_niceness(SPARE_NICE)
        store = open_store(cfg.store.url)
        if items is not None and standby is None:  # one transaction: all or nothing
            store.import_catalog(items)
        products = store.products()
        with quiet():
            live = open_live(opts.avatar, cfg, products)
        if standby is not None:  # a spare: wait, then take over with the current store
            freeze_heap()
            standby()
            set_niceness(0)  # threads and the output process started from here run at it
            sock = bind(host, port)
            if items is not None:
                store.import_catalog(items)
            products = store.products()
            live.products = list(products)
        output = LiveOutput(live, sinks_from_config(cfg.output),
                            encoder=EncoderSettings.from_config(cfg.output),
                            isolate=True,  # clock + sinks in a child: output/pacer.py
                            hold_s=OUTPUT_HOLD_S, claim=home_dir() / "output.claim")
        daemon = Daemon(live, token, products, stream_url=stream_url(cfg.output.obs_url),
                        output_stats=lambda: output.stats().as_dict(),
                        preview=output.preview.latest_jpeg if output.preview else None,
                        transcript=StoredTranscript(store), store=store, config=cfg)
        daemon.show = open_show(live, store, cfg.show)
        daemon.kept = KeptLines(store, live)
        assert sock is not None
        daemon.address = (str(sock.getsockname()[0]), int(sock.getsockname()[1]))
        daemon.chat = open_chat(cfg.chat, products, live.say, lambda: live.state.product,
                                live.backlog)
        daemon.chat.pipeline.social = daemon.show.on_chat  # strategy-aware thanks
        server = _server_class()(uvicorn.Config(
            create_app(daemon), log_level="warning", ws_max_size=WS_MAX_BYTES,
            timeout_graceful_shutdown=GRACE_S, lifespan="on", access_log=False))
        daemon.watchdog = watch(daemon, output, store, cfg)
        if supervised():  # a dead output cannot be restarted in place: a new daemon can

            def hand_over(name: str, detail: str) -> None:
                failed.append(name)
                server.should_exit = True

            daemon.watchdog.escalate = {"output": OUTPUT_DOWN_S}
            daemon.watchdog.on_escalate = hand_over
        freeze_heap()
        live.start()
        try:
            output.start()
            daemon.chat.start(daemon.receive_chat)
            daemon.show.start()
            daemon.kept.start()
            daemon.watchdog.start()
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
                clean = not failed
            finally:
                daemon.watchdog.stop(STOP_S)
                daemon.kept.stop(forget=clean)  # a stop asked for: unsaid lines go
                daemon.show.stop(STOP_S)
                daemon.chat.close(STOP_S)
                output.stop(STOP_S)
        finally:
            live.close(STOP_S)
    finally:
        if sock is not None:
            sock.close()
        if store is not None:
            store.close()
    return 1 if failed else 0


def supervised() -> bool:
    """Whether something restarts this daemon when it exits: `serve --supervise` (it
    sets LIVETWIN_SUPERVISED) or systemd (INVOCATION_ID)."""
    return bool(os.environ.get("LIVETWIN_SUPERVISED") or os.environ.get("INVOCATION_ID"))


def watch(daemon: Any, output: Any, store: Any, cfg: Config) -> Any:
    """The daemon's watchdog (runtime/watchdog.py) over every part of this serve:
    output, each sink, the voice and its worker, the LLM server, each chat connector,
    the store and memory. Not started."""
    from livetwin.llm.registry import prober
    from livetwin.runtime import watchdog as wd

    live, chat = daemon.live, daemon.chat
    dog = wd.Watchdog()
    dog.add("output", wd.OutputCheck(output.stats))
    local = {sink.name: sink for sink in output.sinks}
    for name in output.sink_names:
        sink = local.get(name)
        if sink is None:  # in the isolated output's child, which restarts them itself
            dog.add(f"sink:{name}", wd.sink_check(name, output.stats, lambda: True,
                                                  lambda: daemon.started))
            continue
        dog.add(f"sink:{name}", wd.sink_check(
            name, output.stats, wd.sink_alive(output, sink), lambda: daemon.started),
            wd.sink_restarter(output, sink))
    health = _voice_health(live.tts)
    dog.add("voice", wd.VoiceCheck(lambda: not live.dead_threads(), health, live.backlog),
            lambda: log.warning("health: restarted %s", ", ".join(live.revive())))
    dog.add("llm", _llm_check(prober(cfg.llm)))
    show = daemon.show
    if show is not None:
        dog.add("show", lambda: _show_check(show), show.revive)
    if chat is not None:
        dog.add("chat", lambda: _chat_check(chat), chat.restart_pipeline)
        for i, conn in enumerate(chat.connectors):
            dog.add(f"chat:{conn.name}",
                    wd.chat_check(conn, functools.partial(chat.task_state, i)),
                    functools.partial(chat.restart, i))
    dog.add("store", wd.store_check(store.ping))
    dog.add("memory", wd.memory_check(RSS_LIMIT_MB))
    dog.extra["queues"] = lambda: {
        "speech_backlog": live.backlog(),
        "chat_replies": len(chat.pipeline.queue) if chat is not None else 0}
    return dog


def _show_check(show: Any) -> Any:
    from livetwin.runtime import watchdog as wd

    if not show.alive():
        return wd.Check(wd.DOWN, "the show's thread ended", dead=True)
    product = show.director.current_product or "no product yet"
    return wd.Check(wd.OK, f"{product}; {show.queued} lines queued, position kept "
                    f"{show.saves} times")


def _chat_check(chat: Any) -> Any:
    from livetwin.runtime import watchdog as wd

    waiting = len(chat.pipeline.queue)
    if not chat.pipeline_alive():
        return wd.Check(wd.DOWN, f"the reply worker ended ({waiting} replies waiting)",
                        dead=True)
    return wd.Check(wd.OK, f"{waiting} replies waiting, {chat.pipeline.spoken} spoken")


def _voice_health(tts: Any) -> Callable[[], dict[str, Any]]:
    """FallbackTTS.health of `tts` (looking through the cache wrapper)."""
    inner = tts
    while not hasattr(inner, "health") and hasattr(inner, "backend"):
        inner = inner.backend
    if hasattr(inner, "health"):
        return inner.health
    name = getattr(tts, "name", "voice")
    return lambda: {"primary": name, "backends": 1, "last_backend": None, "failing": {}}


def _llm_check(probe: Callable[[], str] | None) -> Callable[[], Any]:
    from livetwin.runtime import watchdog as wd

    if probe is None:
        return lambda: wd.Check(wd.OK, "none configured: script drafts come from templates")

    def run() -> wd.Check:
        try:
            return wd.Check(wd.OK, probe())
        except Exception as exc:
            return wd.Check(wd.DEGRADED, f"{exc} Script drafts come from templates.")
    return wd.ProbeCheck(run)


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
