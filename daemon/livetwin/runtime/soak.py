"""The soak of issue 11 (`make soak`): the real show, live, for an hour, measured from
outside.

It runs `livetwin demo` in a subprocess (the real daemon with the demo avatar, the demo
shop with its approved template scripts and the demo audience, here a busy one:
`--chat-rate` chat events a second - questions, greetings, follows, gifts, joins - and a
viewer count that moves every second), with MPEG-TS over UDP to a receiver in this
process (`benchmark._Receiver`: video packet arrival gaps and the stream's A/V offset
from its own timestamps) and the demo's MP4 recording on, as a user runs it.

Every `sample_s` it reads `/api/health` (frames, late ticks, max hand-off gap, A/V
offset, and the `health` section when the daemon has one), the daemon's RSS (VmRSS of
the process and its children, from /proc), and the new transcript lines. The daemon's
stderr is its log: Python logging is not configured, so only WARNING and above reach it
(through logging's last-resort handler); every message there is counted as an error
and the first few are kept.

The report leaves out a warm-up (the first 5 minutes, or the first 10 % of a shorter
run: caches, the encoder's and the allocator's steady state) and judges the rest
against the targets of issue 11: RSS growth under 20 MB over the hour, A/V drift under
one frame, measured fps within 1 % of nominal. It is written to
`reports/soak-<UTC time>.json`."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from livetwin.runtime.benchmark import _free_port, _Receiver, _wait_listening
from livetwin.runtime.demo import Audience

TOKEN = "soak-token-0123456789abcdef"
CHAT_RATE = 4.0  # chat events a second: a busy room
SAMPLE_S = 10.0
WARMUP_S = 300.0  # or WARMUP_SHARE of a shorter run
WARMUP_SHARE = 0.1
RSS_GROWTH_MB = 20.0  # the targets of issue 11
FPS_TOLERANCE = 0.01
DRIFT_FRAMES = 1.0
KEEP_ERRORS = 10
EXTRA_S = 60.0  # the daemon's own stop comes this long after the last sample


@dataclass(frozen=True)
class Sample:
    """One look at the daemon, `t` seconds after it started listening."""

    t: float
    rss_mb: float
    frames: int
    late_ticks: int
    max_gap_ms: float
    long_gaps: int  # hand-off gaps over 1.5 periods so far
    av_offset_s: float
    lines: int
    viewers: int | None


class _Log:
    """Drains the daemon's stderr (its WARNING+ log) in a thread. Messages are counted,
    by kind too (the text with its numbers blanked: "health: output ok -> degraded: #
    fps ..."), and the first of each kind kept; a traceback belongs to the message
    before it and is counted apart."""

    def __init__(self, stream: Any) -> None:
        self.count = 0
        self.tracebacks = 0
        self.kinds: Counter[str] = Counter()
        self.first: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream: Any) -> None:
        in_traceback = False
        for raw in stream:
            line = raw.rstrip()
            if not line.strip() or line.startswith("livetwin demo: stopped"):
                continue
            with self._lock:
                if line.startswith("Traceback"):
                    self.tracebacks += 1
                more = line[:1].isspace() or line.startswith("Traceback") or in_traceback
                # a traceback's last line ("ValueError: ...") is not indented; it ends it
                in_traceback = line.startswith("Traceback") or (in_traceback and line[:1].isspace())
                if more:
                    if self.first and len(self.first[-1]) < 4000:
                        self.first[-1] += "\n" + line
                    continue
                self.count += 1
                kind = re.sub(r"[-+]?\d[\d.]*", "#", line)[:80]
                self.kinds[kind] += 1
                if self.kinds[kind] == 1 and len(self.first) < KEEP_ERRORS:
                    self.first.append(line)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "count": self.count,
                "tracebacks": self.tracebacks,
                "kinds": dict(self.kinds.most_common(KEEP_ERRORS)),
                "first": list(self.first),
            }


def rss_mb(pid: int) -> float:
    """VmRSS of `pid` and all its descendants, MB (0 for a process that is gone)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return total


def warmup_s(seconds: float) -> float:
    """The warm-up left out of the judgement: 5 minutes, or 10 % of a shorter run."""
    return min(WARMUP_S, WARMUP_SHARE * seconds)


def slope_per_hour(ts: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys over ts (seconds), per hour; None under 3 points."""
    if len(ts) < 3 or max(ts) - min(ts) <= 0:
        return None
    return float(np.polyfit(np.asarray(ts), np.asarray(ys), 1)[0] * 3600.0)


def soak(
    seconds: float,
    *,
    chat_rate: float = CHAT_RATE,
    sample_s: float = SAMPLE_S,
    report_dir: Path | None = Path("reports"),
    progress: Any = None,
) -> dict[str, Any]:
    """Run the show for `seconds` (module doc) and return the report (also written to
    `report_dir`/soak-<UTC>.json unless None). `progress(sample)` sees every sample."""
    started = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="livetwin-soak-") as tmp:
        home = Path(tmp)
        udp = _free_port(socket.SOCK_DGRAM)
        port = _free_port()
        cfg = {"output": {"obs_url": f"udp://127.0.0.1:{udp}?pkt_size=1316"}}
        (home / "livetwin.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
        env = {**os.environ, "LIVETWIN_HOME": str(home), "LIVETWIN_TOKEN": TOKEN}
        work = home / "cwd"  # not the home itself: its demo/ folder would shadow the avatar
        work.mkdir()
        minutes = (seconds + EXTRA_S) / 60.0
        receiver = _Receiver(udp)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "livetwin.cli",
                "--config",
                str(home / "livetwin.yaml"),
                "demo",
                "--minutes",
                f"{minutes:.3f}",
                "--port",
                str(port),
                "--out",
                str(home / "demo.mp4"),
                "--chat-rate",
                f"{chat_rate:g}",
            ],
            env=env,
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        errors = _Log(proc.stderr)
        try:
            report = _run(proc, port, receiver, errors, seconds, chat_rate, sample_s, progress)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            receiver.stop()
            errors.join(5.0)
            time.sleep(0.5)  # the stdout pump reads to the end of the pipe too
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError, ValueError):
                        pipe.close()
    report["started_utc"] = started.isoformat(timespec="seconds")
    report["exit_code"] = proc.returncode
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        path = report_dir / f"soak-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        report["path"] = str(path)
    return report


def _run(
    proc: subprocess.Popen[str],
    port: int,
    receiver: _Receiver,
    errors: _Log,
    seconds: float,
    chat_rate: float,
    sample_s: float,
    progress: Any,
) -> dict[str, Any]:
    try:
        _wait_listening(proc)
    except RuntimeError as exc:
        time.sleep(0.5)  # its last words reach the log
        raise RuntimeError(f"{exc}: " + "; ".join(errors.snapshot()["first"])[:2000]) from None
    ready = time.monotonic()
    receiver.start()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    warm = warmup_s(seconds)
    samples: list[Sample] = []
    by_source: Counter[str] = Counter()
    replies: set[str] = set()
    last_line: str | None = None
    health_last: dict[str, Any] | None = None
    recv_warm = (0, ready)  # receiver offsets index and time when the warm-up ended
    long_gaps: dict[int, float] = {}  # tick -> ms: the daemon keeps its last 50 only
    # A connection idle for a sample period is not reused: the daemon's server (uvicorn)
    # closes keep-alive connections after 5 s idle, and a request sent as it closes one
    # gets "connection reset" (seen with sample_s 5 on a busy machine).
    limits = httpx.Limits(keepalive_expiry=1.0)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=30.0,
                      limits=limits) as client:
        n = 0
        while True:
            due = ready + n * sample_s
            if due > ready + seconds + 1e-6:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            if proc.poll() is not None:
                time.sleep(0.5)  # its last words reach the log
                raise RuntimeError(
                    f"livetwin demo exited early (code {proc.returncode}): "
                    + "; ".join(errors.snapshot()["first"])[:2000]
                )
            h = client.get("/api/health").json()
            new = client.get(
                "/api/transcript", params={"since": last_line} if last_line else None
            ).json()
            for e in new:
                by_source[str(e["source"])] += 1
                if e.get("reply_to"):
                    replies.add(str(e["reply_to"]))
            if new:
                last_line = str(new[-1]["id"])
            o = h["output"]
            long_gaps.update((int(k), float(ms)) for k, ms in o.get("long_gaps", ()))
            s = Sample(
                round(time.monotonic() - ready, 2),
                round(rss_mb(proc.pid), 2),
                int(o["frames"]),
                int(o["late_ticks"]),
                float(o["max_gap_ms"]),
                int(o.get("long_gap_count", 0)),
                float(o["av_offset_s"]),
                sum(by_source.values()),
                h.get("viewers"),
            )
            samples.append(s)
            if "health" in h:
                health_last = h["health"]
            if s.t >= warm and recv_warm[0] == 0:
                recv_warm = (len(receiver.offsets), time.monotonic())
            if progress is not None:
                progress(s)
            n += 1
        fps = int(o["fps"])  # nominal (the health's top-level fps is the measured one)
        decisions = client.get("/api/chat/decisions", params={"n": 2000}).json()
    sent = _sent(chat_rate, seconds, samples[-1].t)
    return _report(
        samples,
        fps=fps,
        warm=warm,
        seconds=seconds,
        chat_rate=chat_rate,
        receiver=receiver,
        recv_warm=recv_warm,
        by_source=by_source,
        replies=len(replies),
        sent=sent,
        decisions=decisions,
        errors=errors,
        output=o,
        health=health_last,
        long_gaps=long_gaps,
    )


def _sent(chat_rate: float, seconds: float, elapsed: float) -> int:
    """Chat events the demo audience sent in `elapsed` seconds (its plan is seeded)."""
    audience = Audience(seconds + EXTRA_S, chat_rate=chat_rate)
    return sum(len(audience.plan(t).events) for t in range(int(elapsed) + 1))


def _report(
    samples: list[Sample],
    *,
    fps: int,
    warm: float,
    seconds: float,
    chat_rate: float,
    receiver: _Receiver,
    recv_warm: tuple[int, float],
    by_source: Counter[str],
    replies: int,
    sent: int,
    decisions: list[dict[str, Any]],
    errors: _Log,
    output: dict[str, Any],
    health: dict[str, Any] | None,
    long_gaps: dict[int, float],
) -> dict[str, Any]:
    after = [s for s in samples if s.t >= warm] or samples[-2:]
    a, b = after[0], after[-1]
    wall = max(b.t - a.t, 1e-9)
    fps_measured = (b.frames - a.frames) / wall
    steps = [(y.frames - x.frames) / (y.t - x.t) for x, y in itertools.pairwise(after) if y.t > x.t]
    rss = [s.rss_mb for s in samples]
    growth = b.rss_mb - a.rss_mb
    slope = slope_per_hour([s.t for s in after], [s.rss_mb for s in after])
    frame_s = 1.0 / fps
    gaps = receiver.gaps(recv_warm[1])
    offsets = receiver.offsets[recv_warm[0] :]
    k = max(5, len(offsets) // 10)
    stream = (
        (float(np.median(offsets[:k])), float(np.median(offsets[-k:])))
        if len(offsets) >= 2 * k
        else None
    )
    drift = stream[1] - stream[0] if stream else None
    daemon_av = [s.av_offset_s for s in after]
    actions = Counter(str(d.get("action")) for d in decisions)
    targets: dict[str, dict[str, Any]] = {
        "rss_growth_mb": {
            "target": f"< {RSS_GROWTH_MB:g}",
            "value": round(growth, 2),
            "pass": growth < RSS_GROWTH_MB,
        },
        "av_drift_frames": {
            "target": f"< {DRIFT_FRAMES:g}",
            "value": None if drift is None else round(abs(drift) / frame_s, 3),
            "pass": drift is not None and abs(drift) < DRIFT_FRAMES * frame_s,
        },
        "fps_error": {
            "target": f"<= {FPS_TOLERANCE:.0%} of {fps}",
            "value": round(abs(fps_measured - fps) / fps, 5),
            "pass": abs(fps_measured - fps) <= FPS_TOLERANCE * fps,
        },
    }
    return {
        "duration_s": round(samples[-1].t, 1),
        "asked_s": seconds,
        "warmup_s": round(warm, 1),
        "judged_s": round(wall, 1),
        "samples": len(samples),
        "chat_rate": chat_rate,
        "rss_mb": {
            "start": rss[0],
            "at_warmup_end": a.rss_mb,
            "end": b.rss_mb,
            "max": max(rss),
            "growth_after_warmup": round(growth, 2),
            "slope_mb_per_hour": None if slope is None else round(slope, 2),
        },
        "fps": {
            "nominal": fps,
            "measured": round(fps_measured, 4),
            "min_interval": round(min(steps), 3) if steps else None,
            "max_interval": round(max(steps), 3) if steps else None,
            "frames": b.frames - a.frames,
            "late_ticks": b.late_ticks - a.late_ticks,
        },
        "max_frame_gap": {
            "daemon_ms_whole_run": output["max_gap_ms"],
            "daemon_periods_whole_run": round(output["max_gap_ms"] / 1000 * fps, 2),
            "daemon_ms_at_warmup_end": a.max_gap_ms,
            # hand-off gaps over 1.5 periods after the warm-up (None: not one)
            "daemon_ms_after_warmup": max(
                (ms for k, ms in long_gaps.items() if k >= a.frames), default=None
            ),
            "daemon_long_gaps_after_warmup": b.long_gaps - a.long_gaps,
            "daemon_long_gaps": output.get("long_gap_count"),
            "receiver_ms": round(max(gaps) * 1000, 1) if gaps else None,
            "receiver_periods": round(max(gaps) * fps, 2) if gaps else None,
            "receiver_p99_periods": round(sorted(gaps)[int(0.99 * (len(gaps) - 1))] * fps, 2)
            if gaps
            else None,
            "receiver_video_packets": len(gaps) + 1 if gaps else 0,
        },
        "av": {
            "frame_s": round(frame_s, 4),
            "stream_offset_start_end_s": None if stream is None else [round(x, 4) for x in stream],
            "stream_drift_s": None if drift is None else round(drift, 4),
            "daemon_offset_range_s": [round(min(daemon_av), 4), round(max(daemon_av), 4)],
            "daemon_drift_s": round(b.av_offset_s - a.av_offset_s, 4),
            "receiver_error": receiver.error,
        },
        "lines_spoken": {
            "total": sum(by_source.values()),
            "by_source": dict(by_source),
            "per_hour": round(sum(by_source.values()) / max(samples[-1].t, 1) * 3600, 1),
        },
        "chat": {"sent": sent, "answered": replies, "last_decisions": dict(actions)},
        "errors": {
            **errors.snapshot(),
            "output_source_errors": output.get("source_errors"),
            "output_resyncs": output.get("resyncs"),
        },
        "health_at_end": health,
        "targets": targets,
        "pass": all(t["pass"] for t in targets.values()),
        "series": [asdict(s) for s in samples],
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m livetwin.runtime.soak [SECONDS]`: run, print and write the report."""
    args = sys.argv[1:] if argv is None else argv
    seconds = float(args[0]) if args else 3600.0
    if not math.isfinite(seconds) or seconds < 30:
        print("error: give the soak's length in seconds, 30 or more.", file=sys.stderr)
        return 2
    report = soak(
        seconds,
        progress=lambda s: print(
            f"soak: t={s.t:.0f}s rss={s.rss_mb:.1f} MB frames={s.frames} lines={s.lines}",
            file=sys.stderr,
            flush=True,
        ),
    )
    print(
        json.dumps({k: v for k, v in report.items() if k != "series"}, indent=2, ensure_ascii=False)
    )
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
