"""Render figures for `livetwin bench`: compositor ms per frame and `say` real-time factor,
at 1280x720 / 25 fps on one thread, on a bundle cloned in the same run."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

BENCH_TEXT = (
    "Welcome back, everyone! This green tea set is ninety-nine yuan today, and the "
    "link is right below. Ask me anything about it in the chat."
)
FRAMES = 500


def compositor_figures(bundle: Path, frames: int = FRAMES) -> dict[str, Any]:
    """Render `frames` frames driven by the footage's own descriptors taken from other
    moments (so the patch changes as in speech); per-stage p50/p99 in ms."""
    import cv2

    from livetwin.avatar.loops import LoopGraph
    from livetwin.render.compositor import Compositor
    from livetwin.render.loop_walker import LoopWalker

    cv2.setNumThreads(1)
    comp = Compositor(bundle)
    with np.load(bundle / "track.npz") as z:
        mouth, usable = z["mouth"], z["usable"]
    targets = mouth[np.flatnonzero(usable)][::-1]
    walker = LoopWalker(LoopGraph.load(bundle / "loops.npz"), np.random.default_rng(0),
                        prefer_idle=False)
    for k in range(frames):
        comp.render(walker.next(), targets[k % len(targets)])
    return {"frames": frames, "size": list(comp.footage.size),
            "ms_per_frame": {s: {q: round(v, 3) for q, v in t.items()}
                             for s, t in comp.timing().items()}}


def say_figures(bundle: Path, out_dir: Path) -> dict[str, Any]:
    """`livetwin say` of a fixed paragraph at 1280x720 / 25 fps, H.264 included."""
    from livetwin.render.say import SayRequest, say

    res = say(bundle, SayRequest(out=out_dir / "bench.mp4", text=BENCH_TEXT,
                                 size=(1280, 720), fps=25))
    return {"video_s": round(res.duration_s, 2), "render_s": round(res.render_s, 2),
            "render_fps": round(res.render_fps, 1),
            "realtime_factor_with_encoding": round(res.realtime_factor, 2),
            "mouth_source": res.mouth_source}


def render_figures(video: Path) -> dict[str, Any]:
    """Clone `video`, then measure the compositor and `say` on it."""
    from livetwin.avatar.clone import clone
    from livetwin.bench import BENCH_CONSENT

    with tempfile.TemporaryDirectory(prefix="livetwin-bench-render-") as tmp:
        consent = Path(tmp) / "consent.yaml"
        consent.write_text(yaml.safe_dump(BENCH_CONSENT), encoding="utf-8")
        bundle = clone(video, "bench", consent, out_dir=Path(tmp)).path
        return {"video": video.name, "compositor": compositor_figures(bundle),
                "say": say_figures(bundle, Path(tmp))}
