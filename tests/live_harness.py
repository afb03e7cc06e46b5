"""A LiveTwin on fakes (a flat-grey twin, a small canvas, FakeTTS) and a trivial tick
driver, so the live runtime and the API can be tested without an avatar or an encoder."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from livetwin.lipsync.track import MouthRange
from livetwin.render.canvas import Canvas
from livetwin.runtime.live import LiveLines, LiveTwin
from livetwin.runtime.live_events import LiveEvent
from livetwin.speech.base import TTSBackend

from .fakes_tts import FakeTTS

if TYPE_CHECKING:
    from livetwin.server.app import Daemon

FPS = 25
SIZE = (320, 180)


class FlatTwin:
    """A TwinSource that draws a grey square; remembers the targets it was given."""

    size = (96, 96)

    def __init__(self) -> None:
        self.targets: list[tuple[float, bool]] = []

    def frame(self, target: npt.NDArray[np.float32], speaking: bool,
              upcoming: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.uint8]:
        self.targets.append((float(target[0]), speaking))
        return np.full((96, 96, 3), 128, np.uint8)

    def timing(self) -> dict[str, dict[str, float]]:
        return {}


def make_live(tts: TTSBackend | None = None, **kw: Any) -> LiveTwin:
    """A started LiveTwin on fakes; close it when done."""
    twin = FlatTwin()
    live = LiveTwin(twin, Canvas(twin.size, SIZE), tts or FakeTTS(), fps=FPS,
                    mouth_range=MouthRange.default(), lines=LiveLines(), avatar="fake", **kw)
    live.start()
    return live


class Events:
    """Collects a LiveTwin's events (subscriber) and waits for them."""

    def __init__(self, live: LiveTwin) -> None:
        self.items: list[LiveEvent] = []
        self._cond = threading.Condition()
        live.subscribe(self._add)

    def _add(self, ev: LiveEvent) -> None:
        with self._cond:
            self.items.append(ev)
            self._cond.notify_all()

    def wait(self, pred: Callable[[LiveEvent], bool], timeout: float = 10.0) -> LiveEvent:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.items:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such event within {timeout} s: {self.items}")
                self._cond.wait(left)


class Ticker:
    """Calls `live.tick(i)` at the live fps on a thread (the test's trivial sink); keeps
    how long each call took and the audio of every tick."""

    def __init__(self, live: LiveTwin) -> None:
        self.live = live
        self.index = 0
        self.durations_ms: list[float] = []
        self.audio: list[npt.NDArray[np.int16]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            due = t0 + self.index / self.live.fps
            if (left := due - time.monotonic()) > 0:
                self._stop.wait(left)
                continue
            t = time.perf_counter()
            frame, pcm = self.live.tick(self.index)
            self.durations_ms.append((time.perf_counter() - t) * 1e3)
            assert frame.shape == (SIZE[1], SIZE[0], 3) and frame.dtype == np.uint8
            self.audio.append(pcm)
            self.index += 1


class WsClient:
    """A websockets (sync) client with JSON helpers."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        from websockets.sync.client import connect

        self._cm = connect(url, additional_headers=headers or {}, open_timeout=10)

    def __enter__(self) -> WsClient:
        self.conn = self._cm.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(None, None, None)

    def receive_json(self, timeout: float = 10.0) -> Any:
        return json.loads(self.conn.recv(timeout))

    def send_json(self, message: Any) -> None:
        self.conn.send(json.dumps(message))

    def send_text(self, text: str) -> None:
        self.conn.send(text)

    def send_bytes(self, data: bytes) -> None:
        self.conn.send(data)


class ApiServer:
    """The API of `daemon` served by uvicorn on a free loopback port, on a thread."""

    def __init__(self, daemon: Daemon) -> None:
        import uvicorn

        from livetwin.server.app import create_app
        from livetwin.server.serve import bind

        self.sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(
            create_app(daemon), log_level="warning", ws_max_size=65536,
            timeout_graceful_shutdown=1))
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self.server.run,
                                        kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ApiServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(5)
        self.sock.close()

    def ws(self, path: str, headers: dict[str, str] | None = None) -> WsClient:
        return WsClient("ws" + self.url.removeprefix("http") + path, headers)
