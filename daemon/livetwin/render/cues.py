"""On-screen cues: an animated arrow toward the platform's follow button (top corner) or
cart (bottom corner), the fallback for a pointing gesture the avatar has no clip for.

The arrow fades in, bounces along its direction twice per second with its furthest
point at the cue's stroke, and fades out; white with a dark outline so it reads on any
footage. It is drawn on the avatar frame (before the canvas), in the left third where the
follow button and cart sit on the common vertical live apps, at a size relative to the
frame. Drawing costs well under a millisecond (a filled polygon in a small rectangle)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
FADE_S = 0.2
BOUNCE_HZ = 2.0
OPACITY = 0.85


@dataclass(frozen=True, slots=True)
class CueStyle:
    """Where and which way an arrow points: (x, y) of its tip as a fraction of the frame,
    and its direction (unit vector, screen coordinates)."""

    tip: tuple[float, float]
    direction: tuple[float, float]


CUES: dict[str, CueStyle] = {
    "cue_follow": CueStyle(tip=(0.14, 0.07), direction=(0.0, -1.0)),
    "cue_cart": CueStyle(tip=(0.14, 0.93), direction=(0.0, 1.0)),
}


@dataclass(frozen=True, slots=True)
class Cue:
    """One arrow on the render timeline (seconds)."""

    name: str
    start: float
    stroke: float
    end: float

    def strength(self, t: float) -> tuple[float, float]:
        """(opacity 0..1, bounce offset 0..1) at `t`."""
        if not self.start < t < self.end:
            return 0.0, 0.0
        fade = min(1.0, (t - self.start) / FADE_S, (self.end - t) / FADE_S)
        bounce = 0.5 + 0.5 * math.cos(2 * math.pi * BOUNCE_HZ * (t - self.stroke))
        return max(0.0, fade), bounce


def _arrow(style: CueStyle, w: int, h: int, bounce: float) -> npt.NDArray[np.int32]:
    """The arrow's outline (7 points) in pixels."""
    size = 0.09 * min(w, h)
    dx, dy = style.direction
    px, py = -dy, dx  # perpendicular
    tip_x = style.tip[0] * w + dx * 0.3 * size * (bounce - 1.0)
    tip_y = style.tip[1] * h + dy * 0.3 * size * (bounce - 1.0)
    head, half, shaft = 0.5 * size, 0.45 * size, 0.16 * size

    def at(along: float, side: float) -> tuple[float, float]:
        return tip_x - dx * along + px * side, tip_y - dy * along + py * side

    pts = [at(0, 0), at(head, half), at(head, shaft), at(size * 1.4, shaft),
           at(size * 1.4, -shaft), at(head, -shaft), at(head, -half)]
    return np.round(np.array(pts)).astype(np.int32)


def draw(frame: U8, cues: Iterable[Cue], t: float
         ) -> tuple[U8, tuple[int, int, int, int] | None]:
    """`frame` with the cues active at `t` drawn on it (a copy), and the changed
    rectangle; the frame itself when none is active."""
    h, w = frame.shape[:2]
    out: U8 | None = None
    box: list[int] = []
    for cue in cues:
        alpha, bounce = cue.strength(t)
        if alpha <= 0.0:
            continue
        pts = _arrow(CUES[cue.name], w, h, bounce)
        pad = max(3, round(0.008 * min(w, h)))
        x0, y0 = np.maximum(pts.min(axis=0) - pad, 0)
        x1, y1 = np.minimum(pts.max(axis=0) + pad + 1, [w, h])
        if x1 <= x0 or y1 <= y0:
            continue
        if out is None:
            out = frame.copy()
        roi = out[y0:y1, x0:x1]
        layer = roi.copy()
        local = pts - np.array([x0, y0], np.int32)
        cv2.polylines(layer, [local], True, (20, 20, 20), thickness=pad, lineType=cv2.LINE_AA)
        cv2.fillPoly(layer, [local], (255, 255, 255), lineType=cv2.LINE_AA)
        a = OPACITY * alpha
        roi[:] = cv2.addWeighted(layer, a, roi, 1.0 - a, 0.0)
        box = [min(box[0], x0), min(box[1], y0), max(box[2], x1), max(box[3], y1)] if box \
            else [int(x0), int(y0), int(x1), int(y1)]
    if out is None:
        return frame, None
    return out, (box[0], box[1], box[2], box[3])
