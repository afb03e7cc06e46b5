"""`livetwin bench`: the performance figures, measured in one run so they compare."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

Log = Callable[[str], None] | None
CHILD_TIMEOUT_S = 900.0
BENCH_CONSENT = {
    "subject": "benchmark clip",
    "statement": "Used only to measure livetwin's clone speed on internal test footage.",
    "date": "2026-01-01",
    "contact": "maintainers",
}


def shared_media() -> Path | None:
    """The shared test media folder, if this checkout has one beside it."""
    env = os.environ.get("LIVETWIN_SHARED")
    roots = [Path(env)] if env else []
    roots += [Path.cwd().parent / "shared", Path(__file__).resolve().parents[3] / "shared"]
    for r in roots:
        if (r / "media").is_dir():
            return r / "media"
    return None


def _run_measured(cmd: list[str], err_path: Path) -> tuple[float, int, int, str]:
    """Run a child; its own wall time, peak RSS (kB, from wait4) and exit code."""
    with err_path.open("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        watchdog = threading.Timer(CHILD_TIMEOUT_S, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return wall, usage.ru_maxrss, proc.returncode, err.read()


def bench_clone(video: Path, log: Log = None) -> dict[str, Any]:
    """Clone `video` in a child process: wall time, real-time factor, peak RSS, model r."""
    with tempfile.TemporaryDirectory(prefix="livetwin-bench-") as tmp:
        consent = Path(tmp) / "consent.yaml"
        consent.write_text(yaml.safe_dump(BENCH_CONSENT), encoding="utf-8")
        cmd = [sys.executable, "-m", "livetwin.cli", "clone", str(video), "--name", "bench",
               "--consent", str(consent), "--out", tmp]
        wall, peak_kb, code, errtext = _run_measured(cmd, Path(tmp) / "stderr.txt")
        if code != 0:
            return {"video": video.name, "error": errtext.strip().splitlines()[-1:]}
        manifest = yaml.safe_load((Path(tmp) / "bench.twin" / "manifest.yaml").read_text())
    q, pm = manifest["quality"], manifest.get("person_model") or {}
    dur = manifest["source"]["duration_s"]
    fig = {
        "video": video.name,
        "duration_s": dur,
        "wall_s": round(wall, 2),
        "realtime_factor": round(wall / dur, 3),
        "in_process_s": q["clone_seconds"],
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "steps_s": manifest.get("timings_s", {}),
        "person_model_val_r": pm.get("val_r"),
        "energy_baseline_r": pm.get("energy_r"),
        "ridge_baseline_r": pm.get("ridge_r"),
        "atlas_patches": q.get("atlas_patches"),
        "atlas_coverage": q.get("atlas_coverage"),
        "atlas_bytes": q.get("atlas_bytes"),
    }
    if log:
        log(f"clone {video.name}: {fig['wall_s']} s for {dur} s "
            f"({fig['realtime_factor']}x), peak {fig['peak_rss_mb']} MB")
    return fig


CLONE_CLIPS = ("tedlieu_60s_edtalk_pose_source2.mp4", "man_black_sweater_20s_latentsync_demo2.mp4")


def _clone_figures(log: Log, videos: list[Path] | None = None) -> dict[str, Any]:
    if not videos:
        media = shared_media()
        if media is None:
            return {"skipped": "no ../shared/media beside this checkout; pass --video"}
        videos = [media / c for c in CLONE_CLIPS if (media / c).exists()]
    return {v.stem: bench_clone(v, log) for v in videos}


def _speech_figures(log: Log, videos: list[Path] | None = None) -> dict[str, Any]:
    from livetwin.speech.benchmark import speech_figures

    return speech_figures()


def _lipsync_figures(log: Log, videos: list[Path] | None = None) -> dict[str, Any]:
    from livetwin.lipsync.benchmark import lipsync_figures

    return lipsync_figures(clips=videos)


def _render_figures(log: Log, videos: list[Path] | None = None) -> dict[str, Any]:
    from livetwin.render.benchmark import render_figures

    if not videos:
        media = shared_media()
        if media is None:
            return {"skipped": "no ../shared/media beside this checkout; pass --video"}
        videos = [media / c for c in CLONE_CLIPS if (media / c).exists()]
    return render_figures(videos)


def _redub_figures(log: Log, videos: list[Path] | None = None) -> dict[str, Any]:
    from livetwin.errors import InputError
    from livetwin.render.redub import redub_figures, suitable_videos

    if not videos:
        media = shared_media()
        if media is None:
            return {"skipped": "no ../shared/media beside this checkout; pass --video"}
        videos = suitable_videos(media)
    out: dict[str, Any] = {}
    for v in videos:
        with tempfile.TemporaryDirectory(prefix="livetwin-bench-redub-") as tmp:
            try:
                out[v.stem] = redub_figures(v, Path(tmp))
            except InputError as exc:
                out[v.stem] = {"skipped": str(exc)}
        if log and "tracks" in out[v.stem]:
            t = out[v.stem]["tracks"]
            log(f"redub {v.name}: r {t['product']['r']} (energy {t['energy']['r']}, "
                f"random {t['random']['r']}), lag {t['product']['lag_ms']} ms")
    return out


LIVE_SECONDS_ENV = "LIVETWIN_BENCH_LIVE_S"  # e.g. 600 for the 10-minute run


def _live_figures(log: Log, videos: list[Path] | None = None) -> dict[str, Any]:
    from livetwin.runtime.benchmark import live_figures

    fig = live_figures(float(os.environ.get(LIVE_SECONDS_ENV, "60")))
    if log:
        talk, stress = fig["phases"]["talking"], fig["phases"]["stress"]
        log(f"live: {talk['cpu_cores']} cores while talking, max frame gap "
            f"{fig['max_gap_frames']} frames (receiver {stress['received_max_gap_frames']}), "
            f"A/V offset max {fig['av_offset_max_abs_s']} s under a hanging TTS and "
            f"{stress['chat_accepted']} chat messages")
    return fig


def _fault_figures(log: Log, videos: list[Path] | None = None) -> dict[str, Any]:
    from livetwin.runtime.faults import fault_figures

    return fault_figures(log)


def _gesture_figures(log: Log, videos: list[Path] | None = None) -> dict[str, Any]:
    from livetwin.gesture.benchmark import gesture_figures

    fig = gesture_figures()
    if log:
        t = fig["all_clips"]["given_timings"]
        log(f"gestures: planning {t['p50_ms']} ms p50, {t['p99_ms']} ms p99 per utterance")
    return fig


BENCHMARKS: dict[str, Callable[[Log, list[Path] | None], dict[str, Any]]] = {
    "clone": _clone_figures,
    "render": _render_figures,
    "speech": _speech_figures,
    "lipsync": _lipsync_figures,
    "redub": _redub_figures,
    "live": _live_figures,
    "gestures": _gesture_figures,
    "faults": _fault_figures,
}


def run_benchmarks(only: list[str] | None = None, log: Log = None,
                   videos: list[Path] | None = None) -> dict[str, Any]:
    """Run the selected benchmarks (all by default); `videos` replaces the shared clips."""
    figures: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
    }
    for name, fn in BENCHMARKS.items():
        if not only or name in only:
            figures[name] = fn(log, videos)
    return figures
