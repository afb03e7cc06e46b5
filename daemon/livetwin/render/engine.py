"""The twin as a frame source: one call per output frame gives the next picture of the
twin with the requested mouth shape. Two kinds of avatar bundle sit behind it:

- a video clone (`VideoTwin`): base frames from the loop walker over the bundle's loop
  graph (stepping at the footage rate whatever the output rate), toward idle frames while
  silent, mouth from the compositor;
- a photo avatar (`livetwin.render.photo.PhotoAnimator`): one portrait animated by
  landmark-driven mesh warping.

`open_twin` reads the bundle manifest's `kind` and returns the right one. `say`, the live
pipeline and the benchmarks all render through this interface."""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from livetwin.avatar.bundle import read_manifest

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
TIMING_WINDOW = 10_000


class TwinSource(Protocol):
    """What a renderer of the twin offers the pipelines."""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames `frame` returns."""
        ...

    def frame(self, target: F32, speaking: bool, upcoming: F32 | None = None) -> U8:
        """The next output frame (RGB uint8, `size`), mouth shaped like `target` (the
        4-vector mouth descriptor of avatar.face.mouth_geometry); `speaking` False lets the
        body settle toward idle; `upcoming` (m, 4), the next frames' targets where known,
        lets the renderer look ahead."""
        ...

    def timing(self) -> dict[str, dict[str, float]]:
        """Per-stage and total ms per frame, p50 and p99 over the recent frames."""
        ...


class VideoTwin:
    """A video clone: loop walker + compositor (module doc)."""

    def __init__(self, bundle_dir: Path, *, max_side: int, fps: float, seed: int = 0) -> None:
        from livetwin.avatar.loops import LoopGraph
        from livetwin.render.compositor import Compositor
        from livetwin.render.gestures import GesturePlayer, load_clips
        from livetwin.render.loop_walker import LoopWalker

        self.compositor = Compositor(bundle_dir, max_side=max_side)
        self.graph = LoopGraph.load(bundle_dir / "loops.npz")
        self.walker = LoopWalker(self.graph, np.random.default_rng(seed), prefer_idle=True)
        # Steps the walker, or a gesture clip entered and left through the graph.
        self.player = GesturePlayer(self.walker, load_clips(bundle_dir))
        self.fps = float(fps)
        self._k = 0  # output frames so far
        self._steps = 0  # walker steps so far
        self._base = self.walker.current
        self.base_times: deque[float] = deque(maxlen=TIMING_WINDOW)

    @property
    def size(self) -> tuple[int, int]:
        return self.compositor.footage.size

    @property
    def base_index(self) -> int:
        """The footage frame shown by the last `frame` call."""
        return self._base

    def frame(self, target: F32, speaking: bool, upcoming: F32 | None = None) -> U8:
        t0 = time.perf_counter()
        self.player.prefer_idle = not speaking
        # The walker steps at the footage rate whatever the output rate.
        due = math.floor(self._k * self.graph.fps / self.fps) + 1
        while self._steps < due:
            self._base = self.player.next()
            self._steps += 1
        self._k += 1
        self.base_times.append((time.perf_counter() - t0) * 1e3)
        return self.compositor.render(self._base, target, upcoming)

    @property
    def gestures(self) -> list[str]:
        """The ids of the bundle's gesture clips."""
        return sorted(self.player.clips)

    def play_gesture(self, gesture_id: str) -> bool:
        """Play gesture clip `gesture_id` soon (within the player's default wait), lip sync
        going on over it; False if refused (clips already queued). KeyError if unknown."""
        return self.player.request(gesture_id)

    def timing(self) -> dict[str, dict[str, float]]:
        out = self.compositor.timing()
        if not self.base_times:
            return out
        base = np.array(self.base_times)
        out["base"] = {"p50": float(np.percentile(base, 50)),
                       "p99": float(np.percentile(base, 99))}
        return out


def bundle_kind(bundle_dir: Path) -> str:
    """'video' or 'photo' (manifests written before photo avatars have no kind)."""
    kind = read_manifest(bundle_dir).get("kind", "video")
    return str(kind)


def open_twin(bundle_dir: Path, *, max_side: int, fps: float, seed: int = 0) -> TwinSource:
    """The frame source for the bundle at `bundle_dir` (module doc)."""
    if bundle_kind(bundle_dir) == "photo":
        from livetwin.render.photo import PhotoAnimator

        return PhotoAnimator(bundle_dir, max_side=max_side, fps=fps, seed=seed)
    return VideoTwin(bundle_dir, max_side=max_side, fps=fps, seed=seed)
