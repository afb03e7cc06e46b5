"""Tick sources and stream readers for the output tests.

`MarkerSource` flashes a white frame together with a 1 kHz tone burst every
`marker_every` ticks, so a reader can check A/V sync on the decoded stream.
`BusySource` simulates a busy upstream: jitter inside tick() and threads that burn CPU
(and hold the GIL) the way TTS, lip-sync and chat work will.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np

from livetwin.output.live import samples_in_tick


class MarkerSource:
    """Dark frames with a moving bar; every `marker_every` ticks a white frame + beep."""

    def __init__(self, size: tuple[int, int] = (320, 240), fps: int = 25,
                 sample_rate: int = 48000, marker_every: int = 25) -> None:
        self.size, self.fps, self.sample_rate = size, fps, sample_rate
        self.marker_every = marker_every
        self.calls: list[int] = []
        w, h = size
        self._dark = np.full((h, w, 3), 16, np.uint8)
        self._white = np.full((h, w, 3), 235, np.uint8)

    def tick(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(index)
        n = samples_in_tick(index, self.fps, self.sample_rate)
        if index % self.marker_every == 0:
            t = np.arange(n) / self.sample_rate
            return self._white, (np.sin(2 * np.pi * 1000 * t) * 12000).astype(np.int16)
        frame = self._dark.copy()
        x = (index * 7) % (self.size[0] - 8)
        frame[:, x:x + 8] = 128
        return frame, np.zeros(n, np.int16)


class BusySource(MarkerSource):
    """A MarkerSource whose upstream is busy: tick() jitters by up to `jitter_ms` and
    `burners` threads run pure-Python work (they hold the GIL between switches)."""

    def __init__(self, *args: Any, jitter_ms: float = 8.0, burners: int = 1,
                 seed: int = 1, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.jitter_ms = jitter_ms
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._burn, daemon=True)
                         for _ in range(burners)]
        for t in self._threads:
            t.start()

    def tick(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        time.sleep(self._rng.uniform(0, self.jitter_ms) / 1000)
        return super().tick(index)

    def _burn(self) -> None:
        while not self._stop.is_set():
            sum(i * i for i in range(20000))  # ~ a TTS/LLM step in pure Python
            time.sleep(0.002)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


class FailingSource(MarkerSource):
    """Raises in tick() for the given indices."""

    def __init__(self, fail_at: set[int], **kw: Any) -> None:
        super().__init__(**kw)
        self.fail_at = fail_at

    def tick(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index in self.fail_at:
            raise RuntimeError(f"upstream broke at {index}")
        return super().tick(index)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Decoded:
    """What a reader saw: stream codecs, packet dts per stream, frame times, markers."""

    codecs: dict[str, str] = field(default_factory=dict)
    dts: dict[str, list[float]] = field(default_factory=lambda: {"video": [], "audio": []})
    video_times: list[float] = field(default_factory=list)
    white_times: list[float] = field(default_factory=list)
    beep_times: list[float] = field(default_factory=list)
    audio_samples: int = 0
    error: str | None = None


def read_stream(url: str, seconds: float, *, fmt: str | None = None,
                options: dict[str, str] | None = None, out: Decoded | None = None,
                ready: threading.Event | None = None) -> Decoded:
    """Decode `url` for `seconds` of wall time (or until it ends), noting markers."""
    out = out or Decoded()
    end = time.monotonic() + seconds
    try:
        if ready is not None:
            ready.set()
        with av.open(url, format=fmt, options=options or {}, timeout=(10.0, 5.0)) as c:
            for s in c.streams:
                out.codecs[s.type] = s.codec_context.name
            prev_loud = False
            for pkt in c.demux():
                if pkt.dts is not None and pkt.stream.type in out.dts:
                    out.dts[pkt.stream.type].append(float(pkt.dts * pkt.time_base))
                for fr in pkt.decode():
                    if isinstance(fr, av.VideoFrame):
                        t = float(fr.time)
                        out.video_times.append(t)
                        if fr.to_ndarray(format="gray").mean() > 180:
                            out.white_times.append(t)
                    elif isinstance(fr, av.AudioFrame):
                        a = fr.to_ndarray().astype(np.float64)[0]  # fltp, first channel
                        out.audio_samples += fr.samples
                        loud = np.flatnonzero(np.abs(a) > 0.05)
                        if len(loud) and not prev_loud:
                            out.beep_times.append(float(fr.time) + loud[0] / fr.sample_rate)
                        prev_loud = bool(len(loud))
                if time.monotonic() > end:
                    break
    except av.error.ExitError as exc:  # the read timeout: the sender stopped
        if not out.video_times:
            out.error = f"nothing received: {exc}"
    except Exception as exc:  # the caller asserts on what was read
        out.error = f"{type(exc).__name__}: {exc}"
    return out


def marker_offsets(d: Decoded) -> list[float]:
    """For each white frame, beep time minus frame time of the nearest beep."""
    offs = []
    for t in d.white_times:
        if d.beep_times:
            b = min(d.beep_times, key=lambda b: abs(b - t))
            offs.append(b - t)
    return offs


def spawn_reader(url: str, seconds: float, fmt: str | None = None) -> Any:
    """Run `read_stream` in a child process (like OBS, outside our GIL); `.communicate()`
    then `decoded_from(stdout)`."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    # niced like a viewer on another machine would be: its start-up (Python + PyAV) must
    # not be what the output's gap measurement measures on two cores
    code = ("import os, runpy, sys\nif hasattr(os, 'nice'): os.nice(10)\n"
            "runpy.run_module('tests.fakes_output', run_name='__main__')")
    return subprocess.Popen([sys.executable, "-c", code, url, str(seconds), fmt or ""],
                            cwd=repo, stdout=subprocess.PIPE, text=True)


def decoded_from(text: str) -> Decoded:
    import json

    return Decoded(**json.loads(text))


if __name__ == "__main__":
    import dataclasses
    import json
    import sys

    _url, _secs, _fmt = sys.argv[1], float(sys.argv[2]), sys.argv[3] or None
    print(json.dumps(dataclasses.asdict(read_stream(_url, _secs, fmt=_fmt))))
