"""A line on its way to the live output. The worker thread synthesises it sentence by
sentence; each sentence becomes a `Segment` (one mouth target per output frame, whether
the twin speaks, and its audio as 16-bit PCM at the output rate), so `LiveTwin.tick`
only slices arrays. A line starts sounding as soon as its first sentence is ready; the
next sentence follows PAUSE_S after the previous one (as in `livetwin say`), or as soon
as it is ready if the voice is slower than the speech."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from livetwin.events import MouthTrack, SpeechAudio, Utterance

F32 = npt.NDArray[np.float32]
I16 = npt.NDArray[np.int16]
PAUSE_S = 0.3  # between the sentences of a line (as `say`)
QUIET_MIN_S = 0.3  # a closed, still stretch this long inside speech lets the body settle

Planner = Callable[[SpeechAudio], MouthTrack]


@dataclass(frozen=True)
class Segment:
    """One sentence on output frames: mouth targets (n, 4), speaking flags (n,), audio
    (int16 mono, exactly the samples of those n frames)."""

    targets: F32
    speaking: npt.NDArray[np.bool_]
    audio: I16
    mouth_source: str
    gestures: Any = None  # render.head_motion.GestureTrack on this segment's frames

    @property
    def frames(self) -> int:
        return len(self.targets)


@dataclass
class LiveLine:
    """A line and the segments synthesised so far. Mutated by the worker and read by the
    tick, both under LiveTwin's lock: `complete` once no segment will follow,
    `cancelled` tells the worker to stop (the line was skipped)."""

    utterance: Utterance
    key: tuple[int, int, int]
    segments: list[Segment] = field(default_factory=list)
    complete: bool = False
    cancelled: bool = False


def tick_start(index: int, fps: int, rate: int) -> int:
    """The first audio sample of tick `index` (docs/live.md: samples_in_tick)."""
    return round(index * rate / fps)


def _quiet_runs(values: F32, closed: F32, min_len: int) -> npt.NDArray[np.bool_]:
    """Frames inside runs of at least `min_len` frames held exactly at the closed mouth
    (the planners make pauses bit-exact): there the body settles toward idle footage."""
    quiet = np.all(values == closed[None, :], axis=1)
    out = np.zeros(len(values), bool)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], quiet.astype(np.int8), [0]))))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a >= min_len:
            out[a:b] = True
    return out


def segment(item: SpeechAudio, fps: int, rate: int, closed: F32, plan: Planner) -> Segment:
    """One synthesised sentence laid on frames. `fps` divides `rate` (checked at start),
    so every frame holds the same number of samples and a segment starting on any tick
    keeps its audio aligned with its mouth."""
    from livetwin.speech.audio import resample

    pcm = resample(np.asarray(item.pcm, np.float32), item.sample_rate, rate)
    spf = rate // fps
    n = max(1, math.ceil(len(pcm) / spf))
    audio = np.zeros(n * spf, np.float32)
    audio[:len(pcm)] = pcm
    track = plan(item)
    m = min(len(track.values), n)
    targets = np.tile(closed.astype(np.float32), (n, 1))
    targets[:m] = track.values[:m]
    speaking = np.ones(n, bool)
    speaking[:m] &= ~_quiet_runs(track.values[:m], closed, round(QUIET_MIN_S * fps))
    pcm16 = (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
    return Segment(targets, speaking, pcm16, track.source)
