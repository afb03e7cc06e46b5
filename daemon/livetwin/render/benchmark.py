"""Render figures for `livetwin bench`, on bundles cloned in the same run:

- the compositor alone (no canvas, no encoding), ms per frame per stage, one thread;
- `livetwin say` of a fixed paragraph at 1280x720, 25 and 30 fps, in a child process
  pinned to ONE core (sched_setaffinity; cv2 and x264 on one thread): the per-stage
  frame-time budget (base frame, patch select, warp, colour, blend, canvas place, label,
  RGB -> I420, encode), the real-time factor including H.264 encoding and the file's
  bitrate; also for the embedded demo (photo) avatar;
- the same `say` with every core, for comparison.

Run the one-core part by hand with
`python -m livetwin.render.benchmark BUNDLE OUT_DIR FPS`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

BENCH_TEXT = (
    "Welcome back, everyone! This green tea set is ninety-nine yuan today, and the "
    "link is right below. Ask me anything about it in the chat."
)
FRAMES = 500
SIZE = (1280, 720)
CHILD_TIMEOUT_S = 600


def _rounded(stages: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {s: {q: round(v, 3) for q, v in t.items()} for s, t in stages.items()}


def compositor_figures(bundle: Path, frames: int = FRAMES) -> dict[str, Any]:
    """Render `frames` frames driven by the footage's own descriptors taken from other
    moments (so the patch changes as in speech); per-stage p50/p99 in ms."""
    import cv2

    from livetwin.render.engine import VideoTwin

    cv2.setNumThreads(1)
    twin = VideoTwin(bundle, max_side=max(SIZE), fps=25)
    with np.load(bundle / "track.npz") as z:
        mouth, usable = z["mouth"], z["usable"]
    targets = mouth[np.flatnonzero(usable)][::-1]
    for k in range(frames):
        twin.frame(targets[k % len(targets)], True)
    return {"frames": frames, "size": list(twin.size), "ms_per_frame": _rounded(twin.timing())}


def say_figures(bundle: Path | str, out_dir: Path, fps: int = 25, *,
                one_thread: bool = False) -> dict[str, Any]:
    """`livetwin say` of BENCH_TEXT at 1280x720, H.264 included."""
    from livetwin.render.say import SayRequest, say

    req = SayRequest(out=out_dir / f"bench-{fps}.mp4", text=BENCH_TEXT, size=SIZE, fps=fps,
                     encoder_threads=1 if one_thread else None)
    res = say(bundle, req)
    return {"fps": fps, "video_s": round(res.duration_s, 2), "render_s": round(res.render_s, 2),
            "render_fps": round(res.render_fps, 1),
            "realtime_factor_with_encoding": round(res.realtime_factor, 2),
            "mouth_source": res.mouth_source,
            "video_kbps": round(res.path.stat().st_size * 8 / res.duration_s / 1000),
            "ms_per_frame": _rounded(res.stages)}


def say_one_core(bundle: Path | str, out_dir: Path, fps: int) -> dict[str, Any]:
    """say_figures in a child process pinned to one CPU core."""
    cmd = [sys.executable, "-m", "livetwin.render.benchmark", str(bundle), str(out_dir),
           str(fps)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                          check=False)
    if proc.returncode != 0:
        return {"fps": fps, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    fig: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return fig


def _rss_mb() -> float:
    """Resident set size of this process now, in MB (Linux /proc; NaN elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def soak_figures(bundle: Path, out_dir: Path, minutes: float = 10.0, fps: int = 25,
                 warmup_s: float = 30.0) -> dict[str, Any]:
    """Render `minutes` of continuous output at 1280x720 (twin + canvas + H.264 into an
    MPEG-TS file), alternating 4 s of speech-like mouth targets and 2 s of closed-mouth
    silence; RSS after `warmup_s` of output (every cache filled) and at the end."""
    from livetwin.lipsync.track import MouthRange
    from livetwin.render.canvas import Canvas
    from livetwin.render.engine import open_twin
    from livetwin.render.say import Mp4Writer

    twin = open_twin(bundle, max_side=max(SIZE), fps=fps)
    canvas = Canvas(twin.size, SIZE)
    rng = MouthRange.from_bundle(bundle)
    with np.load(bundle / "track.npz") as z:
        mouth, usable = z["mouth"], z["usable"]
    speech = mouth[np.flatnonzero(usable)].astype(np.float32)
    n = round(minutes * 60 * fps)
    warm = round(warmup_s * fps)
    rss: list[tuple[float, float]] = []
    path = out_dir / "soak.mp4"
    writer = Mp4Writer(path, SIZE, fps)
    silence = np.zeros(48_000 // fps, np.float32)
    t0 = time.perf_counter()
    rss_start = 0.0
    try:
        for k in range(n):
            speaking = (k % (6 * fps)) < 4 * fps
            target = speech[k % len(speech)] if speaking else rng.closed
            writer.audio(silence)
            rgb = twin.frame(target, speaking)
            writer.video_i420(canvas.compose_i420(rgb, getattr(twin, "dirty", None)))
            if k + 1 == warm:
                rss_start = _rss_mb()
            if (k + 1) % (60 * fps) == 0:
                rss.append(((k + 1) / fps, round(_rss_mb(), 1)))
    finally:
        writer.close()
    wall = time.perf_counter() - t0
    rss_end = _rss_mb()
    return {"output_minutes": minutes, "frames": n, "wall_s": round(wall, 1),
            "rss_mb_after_warmup": round(rss_start, 1), "rss_mb_end": round(rss_end, 1),
            "rss_growth_mb": round(rss_end - rss_start, 1),
            "rss_mb_each_minute": rss, "file_mb": round(path.stat().st_size / 2**20, 1)}


def render_figures(videos: list[Path], *, photo: bool = True) -> dict[str, Any]:
    """Clone each video, then measure the compositor and `say` on it; also `say` with the
    embedded demo (photo) avatar."""
    from livetwin.avatar.clone import clone
    from livetwin.bench import BENCH_CONSENT

    out: dict[str, Any] = {"size": list(SIZE)}
    with tempfile.TemporaryDirectory(prefix="livetwin-bench-render-") as tmp_s:
        tmp = Path(tmp_s)
        consent = tmp / "consent.yaml"
        consent.write_text(yaml.safe_dump(BENCH_CONSENT), encoding="utf-8")
        for video in videos:
            bundle = clone(video, "bench", consent, out_dir=tmp, force=True).path
            out[video.stem] = {
                "compositor_only": compositor_figures(bundle),
                "say_one_core": [say_one_core(bundle, tmp, fps) for fps in (25, 30)],
                "say_all_cores": say_figures(bundle, tmp, 25),
            }
            if video == videos[0]:
                out[video.stem]["soak_10_min"] = soak_figures(bundle, tmp)
        if photo:
            out["demo_photo_avatar"] = {"say_one_core": [say_one_core("demo", tmp, fps)
                                                         for fps in (25, 30)]}
    return out


def _main(argv: list[str]) -> int:
    import cv2

    bundle, out_dir, fps = argv
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cpus:
        os.sched_setaffinity(0, {cpus[-1]})
    cv2.setNumThreads(1)
    fig = say_figures(bundle if bundle == "demo" else Path(bundle), Path(out_dir), int(fps),
                      one_thread=True)
    fig["cores"] = 1 if cpus else None
    print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
