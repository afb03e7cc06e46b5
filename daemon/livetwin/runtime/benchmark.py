"""Live figures of issue 5 for `livetwin bench --only live`: a real `livetwin serve`
(demo avatar, 1280x720 at 30 fps, MPEG-TS over UDP to a local receiver) measured from
outside in two phases of equal length:

1. talking: lines are queued so the twin talks most of the time; the daemon's CPU use
   (user + system time of its process over the phase) and RSS;
2. stress: the same talking while a chat flood hits `POST /api/chat` from several
   threads. Throughout both phases the voice backend is a local HTTP TTS server that
   hangs for HANG_S before failing, so every line first waits 5 s on a hanging TTS and
   is then spoken by the espeak fallback.

Reported: the daemon's own output figures (`/api/health` -> output: frames, late ticks,
max gap between frame hand-offs, A/V offset = audio seconds written minus video seconds
written), the receiver's view (inter-arrival gaps of video packets, the A/V offset
from the stream's own timestamps at the end), lines spoken, chat messages accepted.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

FPS = 30
SIZE = "1280x720"
HANG_S = 5.0
TOKEN = "bench-token-0123456789abcdef"
LINES = (
    "Welcome to the show. Today I have three things for you, and every one of them is on "
    "sale for the next hour only.",
    "This kettle boils a litre of water in under three minutes, and the handle stays cool "
    "the whole time.",
    "If you have a question, type it in the chat and I will answer it right away.",
)
FLOOD_THREADS = 4
START_TIMEOUT_S = 120.0


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _hanging_tts(hang_s: float) -> Iterator[str]:
    """A local HTTP server that answers every request after `hang_s` with a 503."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn:
            with contextlib.suppress(OSError):
                conn.recv(65536)
                if stop.wait(hang_s):
                    return
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n"
                             b"Connection: close\r\n\r\nbusy")

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        srv.close()
        t.join(2.0)


class _Receiver:
    """Reads the daemon's MPEG-TS over UDP as OBS would, with PyAV, in a process of its
    own (as OBS is): a demux thread inside the measuring process waited for that
    process's other threads (rig polling, flood clients) and counted their wake-ups as
    gaps in the stream. Arrival times are taken in the receiving process (the monotonic
    clock is the machine's) and collected here by a thread."""

    def __init__(self, port: int) -> None:
        self.url = f"udp://127.0.0.1:{port}?overrun_nonfatal=1&fifo_size=50000"
        self.arrivals: list[float] = []  # monotonic arrival time of each video packet
        self.video_end = 0.0  # end time (s) of the last video / audio packet seen
        self.audio_end = 0.0
        self.offsets: list[float] = []  # audio_end - video_end at each video packet
        self.error: str | None = None
        self._stop = threading.Event()
        self._proc: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        inbox, outbox = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_receive, args=(self.url, outbox), daemon=True,
                                 name="livetwin-bench-receiver")
        self._proc.start()
        outbox.close()
        self._thread = threading.Thread(target=self._collect, args=(inbox,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.join(5.0)
        if self._thread is not None:
            self._thread.join(5.0)

    def _collect(self, inbox: Any) -> None:
        with inbox:
            while True:
                try:
                    msg = inbox.recv()
                except (EOFError, OSError):
                    return
                if msg[0] == "v":
                    self.arrivals.append(msg[1])
                    self.video_end = max(self.video_end, msg[2])
                    if self.audio_end:
                        self.offsets.append(self.audio_end - self.video_end)
                elif msg[0] == "a":
                    self.audio_end = max(self.audio_end, msg[1])
                elif not self._stop.is_set():  # ("error", text)
                    self.error = msg[1]

    def drift(self) -> tuple[float, float] | None:
        """(median A/V offset over the first and the last tenth of the stream), seconds."""
        n = len(self.offsets) // 10
        if n < 5:
            return None
        return (float(np.median(self.offsets[:n])), float(np.median(self.offsets[-n:])))

    def gaps(self, since: float) -> list[float]:
        t = [a for a in self.arrivals if a >= since]
        return [b - a for a, b in itertools.pairwise(t)]


def _receive(url: str, outbox: Any) -> None:
    """The receiving process (`_Receiver`): each video packet's arrival time and end, each
    audio packet's end, or what went wrong."""
    import av

    try:
        with av.open(url, options={"analyzeduration": "500000"}, timeout=(30.0, 3.0)) as c:
            for pkt in c.demux():
                if pkt.pts is None or pkt.time_base is None:
                    continue
                end = float((pkt.pts + (pkt.duration or 0)) * pkt.time_base)
                if pkt.stream.type == "video":
                    outbox.send(("v", time.monotonic(), end))
                elif pkt.stream.type == "audio":
                    outbox.send(("a", end))
    except Exception as exc:  # the figure says what went wrong; never hang the bench
        with contextlib.suppress(OSError):
            outbox.send(("error", f"{type(exc).__name__}: {exc}"))


def family(pid: int) -> list[int]:
    """`pid` and its descendants (the daemon runs its output clock in a child process:
    output/pacer.py), from /proc/PID/task/TID/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and its descendants."""
    total = 0.0
    for p in family(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its descendants (MB)."""
    total = 0.0
    for p in family(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    return total


def live_figures(seconds: float = 60.0) -> dict[str, Any]:
    """Run the two phases of `seconds / 2` each and return the figures."""
    phase_s = seconds / 2
    with tempfile.TemporaryDirectory(prefix="livetwin-bench-live-") as tmp, \
            _hanging_tts(HANG_S) as tts_url:
        home = Path(tmp)
        udp = _free_port(socket.SOCK_DGRAM)
        port = _free_port()
        cfg = {
            "render": {"size": SIZE, "fps": FPS},
            "tts": {"backend": "http", "fallback": ["espeak"], "timeout_s": HANG_S + 5,
                    "cache_mb": 0, "http": {"base_url": tts_url}},
            "output": {"obs_url": f"udp://127.0.0.1:{udp}?pkt_size=1316", "preview_fps": 2},
        }
        if os.environ.get("LIVETWIN_BENCH_GESTURES") == "0":
            cfg["gestures"] = {"enabled": False}
        (home / "livetwin.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
        env = {**os.environ, "LIVETWIN_HOME": str(home), "LIVETWIN_TOKEN": TOKEN}
        receiver = _Receiver(udp)
        proc = subprocess.Popen(
            [sys.executable, "-m", "livetwin.cli", "serve", "--config",
             str(home / "livetwin.yaml"), "--port", str(port)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            return _measure(proc, port, receiver, phase_s)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            receiver.stop()


def _wait_listening(proc: subprocess.Popen[str],
                    on_line: Callable[[str], None] | None = None) -> None:
    """Wait for serve's "listening on" line (then keep draining its output, each line
    to `on_line` when given), failing after START_TIMEOUT_S even when serve prints
    nothing."""
    assert proc.stdout is not None
    stdout = proc.stdout
    ready = threading.Event()

    def pump() -> None:
        for line in stdout:
            if on_line is not None:
                on_line(line)
            if re.search(r"listening on http://", line):
                ready.set()
        ready.set()  # output ended: serve exited

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(START_TIMEOUT_S) or proc.poll() is not None:
        raise RuntimeError(f"livetwin serve did not start (exit code {proc.poll()})")


def _measure(proc: subprocess.Popen[str], port: int, receiver: _Receiver,
             phase_s: float) -> dict[str, Any]:
    _wait_listening(proc)
    receiver.start()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=base, headers=auth, timeout=10.0) as client:
        for text in LINES * 3:  # queued: the worker synthesises ahead while one sounds
            client.post("/api/say", json={"text": text}).raise_for_status()
        time.sleep(HANG_S + 2.0)  # the first line's hang, then it starts sounding
        phases: dict[str, Any] = {}
        offsets: list[float] = []
        for name in ("talking", "stress"):
            stop = threading.Event()
            sent = [0] * FLOOD_THREADS

            def flood(k: int, stop: threading.Event = stop, sent: list[int] = sent) -> None:
                with httpx.Client(base_url=base, headers=auth, timeout=10.0) as c:
                    while not stop.is_set():
                        r = c.post("/api/chat", json={"platform": "bench", "user": f"u{k}",
                                                      "text": f"is it in stock? #{sent[k]}"})
                        sent[k] += r.status_code == 202

            threads = [threading.Thread(target=flood, args=(k,), daemon=True)
                       for k in range(FLOOD_THREADS)] if name == "stress" else []
            h0 = client.get("/api/health").json()
            cpu0, t0, mono0 = _cpu_seconds(proc.pid), time.perf_counter(), time.monotonic()
            for t in threads:
                t.start()
            speaking = 0
            polls = 0
            end = t0 + phase_s
            while time.perf_counter() < end:
                time.sleep(0.5)
                h = client.get("/api/health").json()
                polls += 1
                speaking += bool(h["live"].get("speaking"))
                offsets.append(float(h["output"]["av_offset_s"]))
                if not h["live"].get("speaking") and h["live"].get("pending", 1) == 0:
                    for text in LINES:
                        client.post("/api/say", json={"text": text})
            stop.set()
            for t in threads:
                t.join(10.0)
            wall = time.perf_counter() - t0
            cpu = _cpu_seconds(proc.pid) - cpu0
            h1 = client.get("/api/health").json()
            o0, o1 = h0["output"], h1["output"]
            gaps = receiver.gaps(mono0)
            phases[name] = {
                "seconds": round(wall, 1),
                "cpu_cores": round(cpu / wall, 3),
                "rss_mb": round(_rss_mb(proc.pid), 1),
                "speaking_share": round(speaking / max(polls, 1), 2),
                "frames": o1["frames"] - o0["frames"],
                "late_ticks": o1["late_ticks"] - o0["late_ticks"],
                # late because the tick was not encoded in time (the daemon behind),
                # not because the output's clock woke late
                "starved_ticks": o1.get("starved_ticks", 0) - o0.get("starved_ticks", 0),
                # the longest hand-off gap of the phase, when one was over 1.5 periods
                "daemon_max_gap_frames": max(
                    (round(ms * FPS / 1000.0, 2) for tick, ms in o1.get("long_gaps", [])
                     if o0["frames"] <= tick < o1["frames"]), default=None),
                "chat_accepted": sum(sent),
                "received_video_packets": len(gaps) + 1 if gaps else 0,
                "received_max_gap_frames": round(max(gaps) * FPS, 2) if gaps else None,
                "received_p99_gap_frames": round(sorted(gaps)[int(0.99 * (len(gaps) - 1))]
                                                 * FPS, 2) if gaps else None,
            }
        final = client.get("/api/health").json()["output"]
        drift = receiver.drift()
        lines = client.get("/api/transcript").json()
    return {
        "fps": FPS, "size": SIZE, "tts_hang_s": HANG_S,
        "phases": phases,
        "output": {k: final[k] for k in ("frames", "late_ticks", "resyncs", "source_errors",
                                         "max_gap_ms", "av_offset_s", "encode_ms_mean",
                                         "encode_ms_max")},
        "max_gap_frames": round(final["max_gap_ms"] * FPS / 1000.0, 2),
        "av_offset_max_abs_s": round(max(abs(x) for x in offsets), 4) if offsets else None,
        "av_offset_frame_s": round(1.0 / FPS, 4),
        # The stream's own timestamps as received: A/V offset at the start and the end
        # (medians over a tenth of the run; AAC packets are 21 ms, so the offset at any
        # instant wobbles by that much) and the drift between them.
        "stream_av_offset_start_end_s": [round(x, 4) for x in drift] if drift else None,
        "stream_av_drift_s": round(drift[1] - drift[0], 4) if drift else None,
        "receiver_error": receiver.error,
        "lines_spoken": len(lines),
    }
