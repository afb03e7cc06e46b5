"""Random access to a bundle's base frames: the footage decoded once, at render scale, into
memory, with its tracked landmarks scaled to match.

Decoding on demand is too slow for a 24/7 renderer that jumps around the loop graph
(a long-GOP H.264/HEVC seek costs tens of ms), so the whole clip is held as RGB uint8:
about 3 bytes per pixel per frame (60 s of 256x256 at 25 fps: ~300 MB; 20 s of 1080x1920
at max_side 1280: ~1.7 GB)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from livetwin.avatar import ingest
from livetwin.avatar.bundle import read_manifest
from livetwin.errors import BundleError

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
DEFAULT_MAX_SIDE = 1280


@dataclass(frozen=True)
class Footage:
    """Base frames (n, h, w, 3) RGB at render scale with their landmarks (n, 478, 3) in
    the same pixels (NaN where the face was lost), mouth descriptors and usable flags."""

    frames: U8
    landmarks: F32
    mouth: F32
    usable: npt.NDArray[np.bool_]
    times: npt.NDArray[np.float64]
    fps: float
    scale: float  # render pixels per source pixel

    @property
    def n(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of a frame."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes + self.landmarks.nbytes)

    def frame(self, index: int) -> U8:
        """The base frame `index` (a view; copy before drawing on it)."""
        return self.frames[index]

    @classmethod
    def load(cls, bundle_dir: Path, *, max_side: int = DEFAULT_MAX_SIDE) -> Footage:
        """Decode the bundle's footage once, scaled so its long side is at most
        `max_side` (never enlarged)."""
        manifest = read_manifest(bundle_dir)
        name = manifest.get("footage")
        if not isinstance(name, str) or not (bundle_dir / name).is_file():
            raise BundleError(f"{bundle_dir} has no footage file; clone again.")
        with np.load(bundle_dir / "track.npz") as z:
            landmarks = z["landmarks"].astype(np.float32)
            mouth, usable, times = z["mouth"], z["usable"].astype(bool), z["times"]
        info = ingest.probe(bundle_dir / name)
        n = len(times)
        frames: U8 | None = None
        scale = 1.0
        count = 0
        for fr in ingest.iter_frames(info, max_side):
            if fr.index >= n:
                break
            if frames is None:
                # One preallocated block: no list of arrays plus a stacked copy at load.
                frames = np.empty((n, *fr.rgb.shape), np.uint8)
                scale = fr.rgb.shape[1] / info.width
            frames[fr.index] = fr.rgb
            count = fr.index + 1
        if frames is None or count < n:
            raise BundleError(f"{bundle_dir / name} decodes to {count} frames but the track "
                              f"has {n}; the bundle is damaged: clone again.")
        return cls(frames=frames, landmarks=landmarks * np.float32(scale),
                   mouth=mouth.astype(np.float32), usable=usable, times=times,
                   fps=float(info.fps), scale=float(scale))
