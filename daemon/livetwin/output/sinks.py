"""Where the encoded live output goes: OBS (MPEG-TS over UDP), RTMP, a recording file
and the dashboard preview.

Every muxing sink has its own queue and thread, so a slow or dead network never blocks
the tick thread or another sink. A sink that fails closes its container and reopens it
with back-off (0.5 s doubling to 10 s) in its thread; when its queue grows past
`max_queue_s` of media it drops the oldest packets up to a keyframe, and after a
(re)connect it starts at the newest keyframe it holds.
"""

from __future__ import annotations

import collections
import io
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np
from PIL import Image

from livetwin.config import OutputConfig
from livetwin.output.encoder import EncodedPacket, EncodedTick, StreamTemplates

log = logging.getLogger(__name__)

DEFAULT_OBS_URL = "udp://127.0.0.1:9999?pkt_size=1316"
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
STABLE_AFTER_S = 5.0  # a connection up this long resets the back-off
# The RTMP relay child starts niced: its start-up (Python + PyAV imports) must not take
# CPU from the tick thread on two cores.
RELAY_CODE = ("import os\nif hasattr(os, 'nice'): os.nice(5)\n"
              "from livetwin.output.relay import main\nraise SystemExit(main())")


@dataclass(frozen=True)
class SinkStats:
    """A snapshot of one sink. state: starting | connected | retrying | stopped."""

    name: str
    state: str
    failures: int
    bytes: int
    packets: int
    dropped: int
    connects: int
    last_error: str | None


class Sink(Protocol):
    """A destination of the live output; `feed` must never block."""

    name: str

    def start(self, templates: StreamTemplates, fps: int) -> None:
        """Begin (in the background); `templates` describe the encoded streams."""

    def feed(self, tick: EncodedTick) -> None:
        """Take one tick's packets (and raw frame); returns at once."""

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued, close the container and join the thread."""

    def stats(self) -> SinkStats:
        """Current state and counters."""


class MuxSink:
    """Muxes the shared packets into its own container in its own thread, with retry."""

    format: str = "mpegts"
    rebase: bool = False  # start each connection's timestamps at 0 (RTMP ingest likes it)
    # The destination takes one publisher at a time (an RTMP stream key): an output that
    # takes over from a holding predecessor starts it only once that one closed it.
    one_publisher: bool = False
    backoff_max_s: float = BACKOFF_MAX_S  # the longest wait between two tries

    def __init__(self, name: str, url: str, *, options: dict[str, str] | None = None,
                 max_queue_s: float = 2.0) -> None:
        self.name, self.url = name, url
        self.options = dict(options or {})
        self.max_queue_s = max_queue_s
        self._q: collections.deque[EncodedPacket] = collections.deque()
        self._cv = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._templates: StreamTemplates | None = None
        self._state = "starting"
        self._failures = self._bytes = self._packets = self._dropped = self._connects = 0
        self._last_error: str | None = None

    # -- tick thread side -------------------------------------------------------------
    def start(self, templates: StreamTemplates, fps: int) -> None:
        """Start the sink's thread."""
        self._templates = templates
        self._thread = threading.Thread(target=self._run, name=f"sink-{self.name}",
                                        daemon=True)
        self._thread.start()

    def feed(self, tick: EncodedTick) -> None:
        """Queue the tick's packets; past `max_queue_s` drop the oldest up to a keyframe."""
        if not tick.packets:
            return
        with self._cv:
            self._q.extend(tick.packets)
            if self._q[-1].seconds - self._q[0].seconds > self.max_queue_s:
                self._drop_to_keyframe(newest=False)
            self._cv.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """Drain the queue, close the container, join the thread."""
        self._stopping.set()
        with self._cv:
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # stuck in a write to a peer that stopped reading
                log.warning("sink %s did not stop within %.1f s", self.name, timeout)
                self.abort()
        self._state = "stopped"

    def stats(self) -> SinkStats:
        """Current state and counters."""
        return SinkStats(self.name, self._state, self._failures, self._bytes, self._packets,
                         self._dropped, self._connects, self._last_error)

    # -- sink thread side -------------------------------------------------------------
    def open_container(self) -> Any:
        """Open this sink's output container (override for file names)."""
        return av.open(self.url, "w", format=self.format, options=self.options)

    def is_up(self) -> bool:
        """Whether the destination accepted the stream (RTMP: the server said so)."""
        return True

    def check(self) -> None:
        """Raise when the destination is known to be gone (polled while muxing)."""

    def cleanup(self) -> None:
        """Release what `open_container` started, after the container is closed."""

    def abort(self) -> None:
        """Unblock a thread stuck in I/O at stop (RTMP: kill the relay)."""

    def _drop_to_keyframe(self, *, newest: bool) -> None:
        """Drop queued packets before a video keyframe (the oldest one after the head, or
        the newest one); with none queued, drop everything. Caller holds the lock."""
        keys = [i for i, p in enumerate(self._q) if p.kind == "video" and p.keyframe]
        if not newest:
            keys = [i for i in keys if i > 0][:1]
        cut = keys[-1] if keys else len(self._q)
        for _ in range(cut):
            self._q.popleft()
        self._dropped += cut

    def _run(self) -> None:
        from livetwin.output.live import raise_priority

        raise_priority()  # it holds the GIL in turns with the tick thread: same priority
        backoff = BACKOFF_FIRST_S
        while not self._stopping.is_set():
            container = None
            began = time.monotonic()
            try:
                container = self.open_container()
                self._pump(container)
                container.close()
                container = None
                return
            except Exception as exc:
                self._failures += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                self._state = "retrying"
                log.warning("sink %s failed (%s); retrying in %.1f s", self.name,
                            self._last_error, backoff)
            finally:
                if container is not None:
                    _close_quietly(container)
                self.cleanup()
            if time.monotonic() - began > STABLE_AFTER_S:
                backoff = BACKOFF_FIRST_S
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)
        self._state = "stopped"

    def _pump(self, container: Any) -> None:
        assert self._templates is not None
        vs, aus = self._templates.add(container)
        with self._cv:
            self._drop_to_keyframe(newest=True)  # resume live, from the newest keyframe
        base: float | None = None
        while True:
            with self._cv:
                while not self._q and not self._stopping.is_set():
                    self._cv.wait(0.2)
                    self.check()
                if not self._q:
                    return  # stopping and drained
                pkt = self._q.popleft()
            if base is None:
                if not (pkt.kind == "video" and pkt.keyframe):
                    self._dropped += 1
                    continue
                base = pkt.seconds if self.rebase else 0.0
            if base:
                pkt = _shift(pkt, base)
                if pkt.pts < 0 and pkt.kind == "audio":
                    continue
            container.mux(pkt.to_av(vs if pkt.kind == "video" else aus))
            self.check()
            if self._state != "connected" and self.is_up():
                self._state = "connected"
                self._connects += 1
                log.info("sink %s connected to %s", self.name, self.url)
            self._packets += 1
            self._bytes += len(pkt.data)


def _shift(pkt: EncodedPacket, seconds: float) -> EncodedPacket:
    off = round(Fraction(seconds) / pkt.time_base)
    return EncodedPacket(pkt.kind, pkt.data, pkt.pts - off, pkt.dts - off, pkt.duration,
                         pkt.time_base, pkt.keyframe)


def _close_quietly(container: Any) -> None:
    try:
        container.close()
    except Exception as exc:  # the peer is gone; the trailer cannot be written
        log.debug("closing a failed container: %s", exc)


class UdpTsSink(MuxSink):
    """MPEG-TS pushed over UDP: OBS's Media Source listens on this address."""

    format = "mpegts"

    def __init__(self, url: str = DEFAULT_OBS_URL, **kw: Any) -> None:
        # max_interleave_delta: the muxer would hold each video packet until an audio
        # packet with a later timestamp arrives (AAC runs ~2 frames behind), so packets
        # left in pairs; 1 us sends each one as it comes (the receiver's p99 gap between
        # video packets fell from 2.1 to 1.2-1.4 periods). MPEG-TS carries the streams
        # on their own PIDs, so the players do not need them interleaved.
        super().__init__("obs", url, options={"flush_packets": "1",
                                              "max_interleave_delta": "1"}, **kw)


class RtmpSink(MuxSink):
    """FLV over RTMP to an ingest server (nginx-rtmp, Twitch, YouTube ...).

    The FLV is muxed here and written into a relay child process (output/relay.py) that
    holds the RTMP connection: FFmpeg keeps the GIL while it connects, which would stall
    the tick thread. The child exits when the server goes; the sink then starts another.
    """

    format = "flv"
    rebase = True
    one_publisher = True

    def __init__(self, url: str, **kw: Any) -> None:
        super().__init__("rtmp", url, options={"flvflags": "no_duration_filesize"}, **kw)
        self._proc: subprocess.Popen[bytes] | None = None
        self._up = threading.Event()
        self._relay_error = ""

    def open_container(self) -> Any:
        """Start a relay to the server and mux FLV into its stdin."""
        self._up.clear()
        self._relay_error = ""
        proc = subprocess.Popen([sys.executable, "-c", RELAY_CODE, self.url],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self._proc = proc
        threading.Thread(target=self._watch, args=(proc,), name="rtmp-relay-watch",
                         daemon=True).start()
        # small buffer, flushed per packet: the relay forwards each packet as it comes
        return av.open(proc.stdin, "w", format=self.format, buffer_size=4096,
                       options={**self.options, "flush_packets": "1"})

    def is_up(self) -> bool:
        """The relay reported that the server accepted the stream."""
        return self._up.is_set()

    def check(self) -> None:
        """Raise once the relay has exited (the server is gone or refused us)."""
        if self._proc is not None and self._proc.poll() is not None:
            raise ConnectionError(self._relay_error or
                                  f"RTMP relay exited with {self._proc.returncode}")

    def cleanup(self) -> None:
        """End the relay: EOF on its stdin, then terminate if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def abort(self) -> None:
        """Kill the relay: the blocked write into it fails and the thread ends."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            if line.strip() == b"connected":
                self._up.set()
        err = proc.stderr.read().decode(errors="replace").strip()
        if err:
            self._relay_error = err.splitlines()[-1]
        proc.stdout.close()
        proc.stderr.close()


class FileSink(MuxSink):
    """A recording as fragmented MP4: playable up to the last fragment after a crash,
    indexed (duration known) after a clean stop. A new file on every (re)open."""

    format = "mp4"
    rebase = True
    # Trying a local disk again costs nothing (no server to spare), and a full disk is
    # freed by a person who expects the recording to resume at once: the fault suite
    # measured up to 10 s of lost recording after space came back with the network
    # sinks' 10 s cap.
    backoff_max_s = 2.0

    def __init__(self, record_dir: Path, **kw: Any) -> None:
        # flush_packets: each finished fragment reaches the disk at once, not when the
        # 32 KB I/O buffer fills (a quiet scene could sit in memory for many seconds)
        super().__init__("file", str(record_dir), options={
            "movflags": "+frag_keyframe+empty_moov+default_base_moof",
            "flush_packets": "1"}, **kw)
        self.record_dir = Path(record_dir)
        self.paths: list[Path] = []

    def open_container(self) -> Any:
        """A new timestamped file in `record_dir`."""
        self.record_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = self.record_dir / f"livetwin-{stamp}.mp4"
        n = 1
        while path.exists():
            n += 1
            path = self.record_dir / f"livetwin-{stamp}-{n}.mp4"
        self.paths.append(path)
        self.url = str(path)
        return av.open(str(path), "w", format=self.format, options=self.options)

    def cleanup(self) -> None:
        """Remove the file of a failed open that holds nothing (a full disk would
        otherwise collect an empty file per retry)."""
        path = self.paths[-1] if self.paths else None
        try:
            if path is not None and self._state != "connected" and path.stat().st_size == 0:
                path.unlink()
                self.paths.pop()
        except OSError:
            pass


class PreviewSink:
    """Low-rate JPEG snapshots of the raw frames for the dashboard."""

    name = "preview"

    def __init__(self, fps: float = 2.0, max_width: int = 640, quality: int = 75) -> None:
        self.fps, self.max_width, self.quality = fps, max_width, quality
        self._every = 1
        self._pending: np.ndarray | None = None
        self._jpeg: bytes | None = None
        self._cv = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._count = self._bytes = 0
        self._state = "starting"

    def start(self, templates: StreamTemplates, fps: int) -> None:
        """Start the JPEG thread."""
        self._every = max(1, round(fps / self.fps))
        self._thread = threading.Thread(target=self._run, name="sink-preview", daemon=True)
        self._thread.start()
        self._state = "connected"

    def feed(self, tick: EncodedTick) -> None:
        """Keep every n-th frame for the JPEG thread (the newest wins)."""
        if tick.index % self._every == 0:
            with self._cv:
                self._pending = tick.frame
                self._cv.notify()

    def latest_jpeg(self) -> bytes | None:
        """The newest preview JPEG, None before the first one."""
        return self._jpeg

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the JPEG thread."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self._state = "stopped"

    def stats(self) -> SinkStats:
        """State and counters (packets = JPEGs made)."""
        return SinkStats(self.name, self._state, 0, self._bytes, self._count, 0, 1, None)

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    return
                frame, self._pending = self._pending, None
            assert frame is not None
            self._jpeg = self._encode(frame)
            self._count += 1
            self._bytes += len(self._jpeg)

    def _encode(self, frame: np.ndarray) -> bytes:
        img = Image.fromarray(frame)
        if img.width > self.max_width:
            img = img.resize((self.max_width, round(img.height * self.max_width / img.width)),
                             Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=self.quality)
        return buf.getvalue()


# The one place where config names sinks. Each entry returns None when it is turned off.
SINK_FACTORIES: dict[str, Callable[[OutputConfig], Sink | None]] = {
    "obs": lambda c: UdpTsSink(c.obs_url) if c.obs_url else None,
    "rtmp": lambda c: RtmpSink(c.rtmp_url) if c.rtmp_url else None,
    "file": lambda c: FileSink(c.record_dir) if c.record_dir else None,
    "preview": lambda c: PreviewSink(c.preview_fps) if c.preview_fps > 0 else None,
}


def sinks_from_config(cfg: OutputConfig) -> list[Sink]:
    """The sinks that `cfg` turns on, in a fixed order (obs, rtmp, file, preview)."""
    return [s for make in SINK_FACTORIES.values() if (s := make(cfg)) is not None]
