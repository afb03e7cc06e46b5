"""Suggest the gesture marks of a recorded take from what the hands do (mediapipe hands),
so the clip times of `clone --gestures` follow the take rather than the guide's clock.

The take is sampled at SAMPLE_FPS; a sample is "active" when mediapipe finds a hand in
the picture (in the guide's rest pose the hands are down, out of the frame or still at
the bottom edge) and it is above the lowest REST_BAND of the frame. For each shot of the
guide, the longest active run inside the shot's window (its clip time, widened by SLACK_S
on both sides, as streamers start early or late) becomes the clip, padded by PAD_S; a
shot whose gesture uses no hands (a nod, a smile), or where no hand was seen, keeps the
guide's times and is reported as not found. Without a guide every active run of at least
MIN_RUN_S is reported as `hand_N` for the user to name."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from livetwin.errors import MediaError
from livetwin.gesture.library import Library, default_library

SAMPLE_FPS = 10.0
MAX_SIDE = 480
REST_BAND = 0.12
SLACK_S = 1.0
PAD_S = 0.2
MIN_RUN_S = 0.4


@dataclass(frozen=True, slots=True)
class Mark:
    """A suggested clip: `found` False where the guide's times were kept."""

    id: str
    start: float
    end: float
    found: bool


def hand_activity(video: Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """(sample times in seconds, hand active per sample) for `video` (module doc)."""
    import mediapipe as mp

    times: list[float] = []
    active: list[bool] = []
    with mp.solutions.hands.Hands(static_image_mode=False, max_num_hands=2,
                                  model_complexity=0, min_detection_confidence=0.5) as hands:
        for t, rgb in _frames(video):
            res = hands.process(rgb)
            up = False
            for hand in res.multi_hand_landmarks or []:
                ys = [p.y for p in hand.landmark]
                up = up or min(ys) < 1.0 - REST_BAND
            times.append(t)
            active.append(up)
    return np.asarray(times), np.asarray(active, bool)


def _frames(video: Path) -> Iterator[tuple[float, npt.NDArray[np.uint8]]]:
    import av
    import cv2

    if not video.is_file():
        raise MediaError(f"{video}: no such file; check the path.")
    try:
        with av.open(str(video)) as c:
            if not c.streams.video:
                raise MediaError(f"{video} has no video stream; give the recorded take.")
            stream = c.streams.video[0]
            next_t = 0.0
            for frame in c.decode(stream):
                t = float(frame.time or 0.0)
                if t + 1e-6 < next_t:
                    continue
                next_t = t + 1.0 / SAMPLE_FPS
                rgb = frame.to_ndarray(format="rgb24")
                h, w = rgb.shape[:2]
                k = MAX_SIDE / max(h, w)
                if k < 1:
                    rgb = cv2.resize(rgb, (round(w * k), round(h * k)),
                                     interpolation=cv2.INTER_AREA)
                yield t, rgb
    except av.error.FFmpegError:
        raise MediaError(f"{video}: cannot read this file as video; export the take again "
                         "as MP4.") from None


def runs(times: npt.NDArray[np.float64], active: npt.NDArray[np.bool_]
         ) -> list[tuple[float, float]]:
    """The active runs as (start, end) seconds (end: the sample after the last active)."""
    out: list[tuple[float, float]] = []
    step = 1.0 / SAMPLE_FPS
    k = 0
    while k < len(active):
        if not active[k]:
            k += 1
            continue
        e = k
        while e < len(active) and active[e]:
            e += 1
        out.append((float(times[k]), float(times[e - 1]) + step))
        k = e
    return out


def suggest(times: npt.NDArray[np.float64], active: npt.NDArray[np.bool_],
            guide: dict[str, dict[str, float]] | None, library: Library | None = None
            ) -> list[Mark]:
    """Marks from the hand activity, shot by shot of `guide` (id -> start/end, the
    sidecar the guide wrote), or every run when there is no guide."""
    found = runs(times, active)
    if guide is None:
        return [Mark(f"hand_{n}", round(max(0.0, a - PAD_S), 2), round(b + PAD_S, 2), True)
                for n, (a, b) in enumerate(((a, b) for a, b in found if b - a >= MIN_RUN_S),
                                           start=1)]
    lib = library or default_library()
    out: list[Mark] = []
    for gid, span in guide.items():
        a0, b0 = float(span["start"]), float(span["end"])
        hands = gid in lib and lib[gid].uses_hands
        inside = [(max(a, a0 - SLACK_S), min(b, b0 + SLACK_S)) for a, b in found
                  if a < b0 + SLACK_S and b > a0 - SLACK_S] if hands else []
        best = max(inside, key=lambda r: r[1] - r[0], default=None)
        if best is None or best[1] - best[0] < MIN_RUN_S:
            out.append(Mark(gid, a0, b0, False))
            continue
        out.append(Mark(gid, round(max(0.0, best[0] - PAD_S), 2), round(best[1] + PAD_S, 2),
                        True))
    return out
