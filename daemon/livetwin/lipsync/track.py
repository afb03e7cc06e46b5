"""The mouth track: per output frame, target mouth descriptors (ARCHITECTURE.md §4) from
phoneme timings, from the person audio-to-mouth model, or from the audio energy.

Frame i of a track at `fps` is shown from i/fps to (i+1)/fps. Phoneme targets are
sampled at the middle of that interval, as the §4 envelope is measured over it.

Coarticulation follows Cohen & Massaro (1993): every phoneme segment exerts a dominance
over each descriptor column that is flat inside the segment and decays exponentially
before it (anticipation) and after it (carry-over); a frame's target is the
dominance-weighted mean of the segment targets. Lips dominate where they articulate
(bilabials, labiodentals, rounding), tongue consonants leave width and rounding to the
vowels around them, and rounding is anticipated ~200 ms ahead. Bilabials are then forced
fully shut on at least one frame however short they are, and silence is made exactly
still.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from livetwin.errors import BundleError
from livetwin.events import MouthTrack, PhonemeTiming, SpeechAudio
from livetwin.lipsync.features import rms_envelope
from livetwin.lipsync.person_onnx import PersonMouthModel
from livetwin.lipsync.stats import pearson
from livetwin.lipsync.visemes import SHAPES, Viseme, visemes

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

SOURCE_PHONEMES = "phonemes"
SOURCE_MODEL = "person-model"
SOURCE_ENERGY = "energy"

# Visible articulation leads the sound. Viewers notice video lagging audio much sooner
# than video leading it (ITU-R BT.1359: +45 ms / -125 ms detectability), so the shapes
# are shown 20 ms (half a frame at 25 fps) ahead of their sound: safely on the tolerant
# side, and within a frame of the envelope so the §4 timeline check stays at lag 0..-1.
LEAD_S = 0.02
# Around silence the lips open before the sound starts (visual onsets lead acoustic ones
# by 100-300 ms, Chandrasekaran et al. 2009) and close after it ends; outside those
# ramps a pause is exactly still.
ONSET_S = 0.15
RELEASE_S = 0.12
# A bilabial's closure spreads this far beyond its segment (release of the lips).
CLOSURE_DECAY_S = 0.02
# The person's range of motion: percentiles of the usable frames of the source footage.
LOW_PERCENTILE = 5.0
HIGH_PERCENTILE = 95.0
CLOSED_PERCENTILE = 10.0  # frames at or below this aperture percentile are "closed"
# Energy baseline: the speech level is this percentile of the frame RMS; frames more than
# REL_FLOOR_DB below it, or below ABS_FLOOR_DBFS, are silence and close the mouth.
ENERGY_REF_PERCENTILE = 95.0
REL_FLOOR_DB = -30.0
ABS_FLOOR_DBFS = -55.0
# Pauses at least this long close the mouth of a person-model track (voice_activity).
# Shorter ones are left to the model: many speakers keep the lips apart between phrases
# (tedlieu's held-out re-dub r drops from 0.71 to 0.57 when 0.2 s pauses are shut).
PAUSE_MIN_S = 0.8
# The person model is judged on aperture and learns it best; the width, rounding and teeth
# it predicts from 15-60 s of footage are weak, and patches picked to match them stray
# from the aperture. A model track therefore moves those three columns SHAPE_SHARE of the
# way to the person's own mean at the predicted aperture (a quadratic in aperture, fitted
# on the footage's usable frames with aperture held within SHAPE_PERCENTILES). Re-dub,
# one clone per video, mean over 5 loop walks, rendered r (distinct patches shown) with
# share 0 / 0.5 / 1: sweater .349 (28) / .541 (26) / .475 (19), woman .646 (49) / .668
# (40) / .707 (16), ted .619 (72) / .638 (44) / .641 (24). The whole way shows few
# patches, one for 61 of woman's 175 frames; half keeps the mouth varied.
SHAPE_SHARE = 0.5
SHAPE_PERCENTILES = (1.0, 99.0)
SHAPE_MIN_FRAMES = 30


@dataclass(frozen=True, eq=False)
class MouthRange:
    """The person's own range of motion in descriptor units: the closed mouth, and per
    column the low and high end of what the source footage (hence the atlas) shows."""

    closed: F32  # (4,)
    low: F32  # (4,) relative 0; low[0] is the closed aperture
    high: F32  # (4,) relative 1
    # Quadratics in aperture giving the footage's mean width, rounding and teeth (3, 3),
    # and the aperture span they were fitted on; None without footage (photo, default).
    shape: F64 | None = None
    shape_span: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def from_descriptors(cls, mouth: npt.ArrayLike, usable: npt.ArrayLike | None = None
                         ) -> MouthRange:
        """Range of the usable, finite rows of an (n, 4) descriptor array."""
        y = np.asarray(mouth, dtype=np.float64).reshape(-1, 4)
        ok = np.isfinite(y).all(axis=1)
        if usable is not None:
            ok &= np.asarray(usable, dtype=bool).reshape(-1)
        y = y[ok]
        if len(y) < 10:
            raise ValueError(f"only {len(y)} usable mouth descriptors; need at least 10")
        low = np.percentile(y, LOW_PERCENTILE, axis=0)
        high = np.percentile(y, HIGH_PERCENTILE, axis=0)
        shut = y[:, 0] <= np.percentile(y[:, 0], CLOSED_PERCENTILE)
        closed = np.median(y[shut], axis=0)
        # A closed mouth shows no teeth; tracking noise can say otherwise.
        closed[3] = low[3]
        low[0] = closed[0]
        high = np.maximum(high, low + 1e-4)
        shape, span = _shape_fit(y)
        return cls(closed.astype(np.float32), low.astype(np.float32), high.astype(np.float32),
                   shape, span)

    @classmethod
    def from_bundle(cls, path: str | Path) -> MouthRange:
        """Range of an avatar bundle (`NAME.twin/` or its track.npz)."""
        p = Path(path)
        if p.is_dir() and (p / "photo.npz").is_file():
            return cls.from_photo(p / "photo.npz")
        npz = p / "track.npz" if p.is_dir() else p
        try:
            with np.load(npz) as data:
                return cls.from_descriptors(data["mouth"], data["usable"])
        except (OSError, KeyError, ValueError) as exc:
            raise BundleError(f"cannot read the mouth track of {p} ({exc}); clone the avatar "
                              "again.") from None

    @classmethod
    def from_photo(cls, npz: Path) -> MouthRange:
        """Range of a photo avatar: the typical range (`default`) moved to the photo's own
        mouth, which is the rest shape (`closed`: what the animator shows unchanged). The
        aperture still reaches fully closed lips, and opens well beyond the rest."""
        try:
            with np.load(npz) as data:
                rest = np.asarray(data["mouth"], np.float32).reshape(4)
        except (OSError, KeyError, ValueError) as exc:
            raise BundleError(f"cannot read the photo data {npz} ({exc}); clone the avatar "
                              "again.") from None
        d = cls.default()
        rest = np.where(np.isfinite(rest), rest, d.closed).astype(np.float32)
        scale = rest[1] / d.closed[1]  # a smiling photo has a wider mouth
        low = np.array([d.low[0], d.low[1] * scale, d.low[2] - d.closed[2] + rest[2], 0.0])
        high = np.array([max(d.high[0], rest[0] + 0.12), d.high[1] * scale,
                         d.high[2] - d.closed[2] + rest[2], max(d.high[3], rest[3])])
        return cls(rest, low.astype(np.float32), np.maximum(high, low + 1e-4).astype(np.float32))

    @classmethod
    def default(cls) -> MouthRange:
        """A typical adult range (measured on the shared talking-head clips), for when no
        bundle is at hand."""
        # Medians over tedlieu_60s, man_black_sweater_20s and woman_expressive_34s.
        return cls(np.array([0.002, 0.505, 0.180, 0.0], np.float32),
                   np.array([0.002, 0.451, 0.166, 0.0], np.float32),
                   np.array([0.188, 0.576, 0.196, 0.53], np.float32))

    def along_aperture(self, values: npt.ArrayLike, share: float = SHAPE_SHARE) -> F32:
        """(n, 4) descriptors with width, rounding and teeth moved `share` of the way to
        the footage's mean at each row's aperture (SHAPE_PERCENTILES); unchanged without a
        fitted shape."""
        v = np.array(values, dtype=np.float32).reshape(-1, 4)
        if self.shape is None:
            return v
        ap = np.clip(v[:, 0].astype(np.float64), *self.shape_span)
        for c in range(3):
            mean = np.polyval(self.shape[c], ap)
            v[:, c + 1] += np.float32(share) * (mean - v[:, c + 1]).astype(np.float32)
        return v

    def to_descriptor(self, relative: npt.ArrayLike) -> F32:
        """Descriptor units from relative units (0 = low end, 1 = high end)."""
        rel = np.asarray(relative, dtype=np.float32)
        return (self.low + rel * (self.high - self.low)).astype(np.float32)

    def relative(self, descriptor: npt.ArrayLike) -> F32:
        """Relative units from descriptor units."""
        d = np.asarray(descriptor, dtype=np.float32)
        return ((d - self.low) / (self.high - self.low)).astype(np.float32)


def _shape_fit(y: F64) -> tuple[F64 | None, tuple[float, float]]:
    """MouthRange.shape and shape_span from the usable (n, 4) descriptors."""
    lo, hi = (float(p) for p in np.percentile(y[:, 0], SHAPE_PERCENTILES))
    if len(y) < SHAPE_MIN_FRAMES or hi - lo < 1e-3:
        return None, (0.0, 0.0)
    ap = np.clip(y[:, 0], lo, hi)
    return np.stack([np.polyfit(ap, y[:, c], 2) for c in (1, 2, 3)]), (lo, hi)


def frame_count(duration: float, fps: float) -> int:
    """Frames of a track covering `duration` seconds (rounded, so back-to-back sentences
    do not drift)."""
    return max(0, round(duration * fps))


@dataclass(frozen=True)
class _Segments:
    """Visible phoneme elements in time (seconds of sound), one row each."""

    start: F64
    end: F64
    kind: tuple[Viseme, ...]


def _segments(phonemes: Sequence[PhonemeTiming]) -> _Segments:
    """Split each phoneme into its viseme elements (diphthongs: equal shares), dropping
    silence and empty spans."""
    starts: list[float] = []
    ends: list[float] = []
    kinds: list[Viseme] = []
    for ph in sorted(phonemes, key=lambda p: p.start):
        if not (math.isfinite(ph.start) and math.isfinite(ph.end)) or ph.end <= ph.start:
            continue
        parts = visemes(ph.phoneme)
        if parts == (Viseme.SILENCE,):
            continue
        step = (ph.end - ph.start) / len(parts)
        for k, v in enumerate(parts):
            starts.append(ph.start + k * step)
            ends.append(ph.start + (k + 1) * step)
            kinds.append(v)
    return _Segments(np.array(starts, np.float64), np.array(ends, np.float64), tuple(kinds))


def _with_silences(seg: _Segments) -> _Segments:
    """Add closed-mouth segments for the time before, between (gaps) and after the
    visible ones, so pauses pull the blend towards closed."""
    far = 1e6
    bounds = [(-far, float(seg.start[0]))]
    gaps = np.nonzero(seg.start[1:] > seg.end[:-1] + 1e-6)[0]
    bounds += [(float(seg.end[i]), float(seg.start[i + 1])) for i in gaps]
    bounds.append((float(seg.end.max()), far))
    return _Segments(
        np.concatenate([seg.start, [b[0] for b in bounds]]),
        np.concatenate([seg.end, [b[1] for b in bounds]]),
        seg.kind + (Viseme.SILENCE,) * len(bounds),
    )


def _blend(seg: _Segments, t: F64, closed_rel: F32) -> F64:
    """Dominance-weighted targets (n, 4) in relative units at sound times `t`."""
    shapes = [SHAPES[k] for k in seg.kind]
    targets = np.array([closed_rel if k == Viseme.SILENCE else s.target
                        for k, s in zip(seg.kind, shapes, strict=True)], np.float64)
    strength = np.array([s.strength for s in shapes], np.float64)
    ahead = np.array([s.anticipation_s for s in shapes], np.float64)
    behind = np.array([s.carryover_s for s in shapes], np.float64)
    before = np.clip(seg.start[None, :] - t[:, None], 0.0, None)[..., None]  # (n, m, 1)
    after = np.clip(t[:, None] - seg.end[None, :], 0.0, None)[..., None]
    dom = strength[None] * np.exp(-before / ahead[None] - after / behind[None, :, None])
    return (dom * targets[None]).sum(axis=1) / np.maximum(dom.sum(axis=1), 1e-300)


def _closure(seg: _Segments, t: F64, fps: float) -> F64:
    """1 where a bilabial holds the lips shut, decaying after; every bilabial covers at
    least one frame's sample, so even a 20 ms /b/ closes the mouth fully."""
    lips = np.array([k == Viseme.BILABIAL for k in seg.kind])
    if not lips.any():
        return np.zeros(len(t))
    centre = 0.5 * (seg.start[lips] + seg.end[lips])
    half = np.maximum(0.5 * (seg.end[lips] - seg.start[lips]), 0.5 / fps + 1e-9)
    outside = np.clip(np.abs(t[:, None] - centre[None, :]) - half[None, :], 0.0, None)
    return np.asarray(np.exp(-outside / CLOSURE_DECAY_S).max(axis=1), np.float64)


def _activity(seg: _Segments, t: F64) -> F64:
    """1 during speech, raised-cosine ramps ONSET_S before and RELEASE_S after each
    stretch of speech, exactly 0 (a still mouth) elsewhere."""
    inside = ((t[:, None] >= seg.start[None, :]) & (t[:, None] <= seg.end[None, :])).any(axis=1)
    since = t[:, None] - seg.end[None, :]
    until = seg.start[None, :] - t[:, None]
    since_end = np.where(since >= 0, since, np.inf).min(axis=1)
    until_start = np.where(until >= 0, until, np.inf).min(axis=1)

    def ramp(d: F64, span: float) -> F64:
        x = np.clip(d / span, 0.0, 1.0)
        return np.asarray(0.5 * (1.0 + np.cos(np.pi * x)), np.float64)

    w = np.maximum(ramp(since_end, RELEASE_S), ramp(until_start, ONSET_S))
    return np.where(inside, 1.0, w)


def track_from_phonemes(phonemes: Sequence[PhonemeTiming], duration: float, fps: float,
                        mouth_range: MouthRange | None = None) -> MouthTrack:
    """Mouth targets from phoneme timings (any alphabet `visemes` parses; IPA from espeak)
    for `duration` seconds at `fps`."""
    rng = mouth_range or MouthRange.default()
    n = frame_count(duration, fps)
    closed_rel = rng.relative(rng.closed)
    seg = _segments(phonemes)
    if n == 0 or len(seg.kind) == 0:
        return MouthTrack(fps, np.tile(rng.closed, (n, 1)).astype(np.float32), SOURCE_PHONEMES)
    # Sound time each frame shows: the middle of its display interval, LEAD_S ahead.
    t = (np.arange(n) + 0.5) / fps + LEAD_S
    rel = _blend(_with_silences(seg), t, closed_rel)
    shut = _closure(seg, t, fps)
    rel[:, 0] *= 1.0 - shut
    rel[:, 3] *= 1.0 - shut
    rel = np.clip(rel, 0.0, 1.0)
    w = _activity(seg, t)[:, None]
    values = rng.to_descriptor(closed_rel + w * (rel - closed_rel))
    values[w[:, 0] == 0.0] = rng.closed  # bit-exact stillness in pauses
    return MouthTrack(fps, values.astype(np.float32), SOURCE_PHONEMES)


def _silence_floor(env: F64) -> float:
    ref = float(np.percentile(env, ENERGY_REF_PERCENTILE)) if len(env) else 0.0
    return max(10.0 ** (ABS_FLOOR_DBFS / 20.0), ref * 10.0 ** (REL_FLOOR_DB / 20.0))


def voice_activity(pcm: npt.NDArray[np.floating], sample_rate: int, fps: float, n: int
                   ) -> F64:
    """Per frame: 1 while the person speaks, 0 in pauses of at least PAUSE_MIN_S (below
    the energy baseline's silence floor), raised-cosine ramps ONSET_S before and
    RELEASE_S after speech. Shorter dips (stop closures, breaths between words) count as
    speech: the mouth track handles those itself."""
    if n == 0:
        return np.zeros(0)
    env = rms_envelope(pcm, sample_rate, np.arange(n) / fps).astype(np.float64)
    voiced = env > _silence_floor(env)
    # fill silent runs shorter than PAUSE_MIN_S that lie between voiced frames
    idx = np.flatnonzero(voiced)
    if len(idx) == 0:
        return np.zeros(n)
    gaps = np.flatnonzero(np.diff(idx) > 1)
    for g in gaps:
        a, b = idx[g] + 1, idx[g + 1]
        if (b - a) / fps < PAUSE_MIN_S:
            voiced[a:b] = True
    t = np.arange(n) / fps
    on = t[voiced]
    # distance to the next voiced frame (onset ramp) and from the last one (release)
    nxt = np.searchsorted(on, t, side="left")
    until = np.where(nxt < len(on), on[np.minimum(nxt, len(on) - 1)] - t, np.inf)
    prv = np.searchsorted(on, t, side="right") - 1
    since = np.where(prv >= 0, t - on[np.maximum(prv, 0)], np.inf)

    def ramp(d: F64, span: float) -> F64:
        x = np.clip(d / span, 0.0, 1.0)
        return np.asarray(0.5 * (1.0 + np.cos(np.pi * x)), np.float64)

    return np.where(voiced, 1.0, np.maximum(ramp(until, ONSET_S), ramp(since, RELEASE_S)))


def track_from_model(model: PersonMouthModel, pcm: npt.NDArray[np.floating],
                     sample_rate: int, fps: float, mouth_range: MouthRange | None = None
                     ) -> MouthTrack:
    """Mouth targets from the person audio-to-mouth model (backends without timings).
    Frames are stamped with their start time, as the model was trained on source frames.
    The aperture is the model's; the other columns lean towards the person's own shape at
    that aperture (MouthRange.along_aperture).
    Pauses (voice_activity) close the mouth and hold it exactly still: the model alone
    keeps mumbling through room noise."""
    rng = mouth_range or MouthRange.default()
    n = frame_count(len(pcm) / float(sample_rate), fps)
    values = model.predict(pcm, sample_rate, np.arange(n) / fps)
    values = rng.along_aperture(values).astype(np.float64)
    w = voice_activity(pcm, sample_rate, fps, n)[:, None]
    closed = rng.closed.astype(np.float64)[None]
    values = closed + w * (values - closed)
    values[w[:, 0] == 0.0] = rng.closed
    return MouthTrack(fps, values.astype(np.float32), SOURCE_MODEL)


def track_from_energy(pcm: npt.NDArray[np.floating], sample_rate: int, fps: float,
                      mouth_range: MouthRange | None = None) -> MouthTrack:
    """The energy baseline of §4: aperture proportional to each frame's RMS above a noise
    floor, closed below it; the other columns stay at the closed mouth's."""
    rng = mouth_range or MouthRange.default()
    n = frame_count(len(pcm) / float(sample_rate), fps)
    env = rms_envelope(pcm, sample_rate, np.arange(n) / fps).astype(np.float64)
    ref = float(np.percentile(env, ENERGY_REF_PERCENTILE)) if n else 0.0
    floor = _silence_floor(env)
    opening = np.clip((env - floor) / (ref - floor), 0.0, 1.0) if ref > floor else np.zeros(n)
    rel = np.tile(rng.relative(rng.closed), (n, 1)).astype(np.float64)
    rel[:, 0] = opening
    rel[:, 3] = np.maximum(rel[:, 3], 0.5 * opening)
    values = rng.to_descriptor(rel)
    values[opening == 0.0] = rng.closed
    return MouthTrack(fps, values.astype(np.float32), SOURCE_ENERGY)


def plan_mouth(speech: SpeechAudio, fps: float, mouth_range: MouthRange | None = None,
               model: PersonMouthModel | None = None) -> MouthTrack:
    """The best track the speech allows: its phoneme timings, else the person model, else
    the energy baseline (`MouthTrack.source` says which)."""
    if speech.phonemes:
        return track_from_phonemes(speech.phonemes, speech.duration, fps, mouth_range)
    if model is not None:
        return track_from_model(model, speech.pcm, speech.sample_rate, fps, mouth_range)
    return track_from_energy(speech.pcm, speech.sample_rate, fps, mouth_range)


def envelope_lag(track: MouthTrack, pcm: npt.NDArray[np.floating], sample_rate: int,
                 max_lag_s: float = 0.4) -> float:
    """§4's timeline check: the shift in seconds (|shift| <= max_lag_s) that maximises the
    correlation of the track's aperture with the audio's RMS per video frame; positive
    when the mouth moves after the sound. Refined between frames by a parabola through
    the peak; nan when nothing correlates."""
    ap = np.asarray(track.values[:, 0], np.float64)
    n = len(ap)
    env = rms_envelope(pcm, sample_rate, np.arange(n) / track.fps).astype(np.float64)
    k_max = min(int(max_lag_s * track.fps), max(n - 3, 0))
    lags = np.arange(-k_max, k_max + 1)
    r = np.array([pearson(ap[max(k, 0):n + min(k, 0)], env[max(-k, 0):n - max(k, 0)])
                  for k in lags])
    if not np.isfinite(r).any():
        return float("nan")
    i = int(np.nanargmax(r))
    shift = float(lags[i])
    if 0 < i < len(r) - 1 and np.isfinite(r[i - 1]) and np.isfinite(r[i + 1]):
        den = r[i - 1] - 2.0 * r[i] + r[i + 1]
        if den < 0:
            shift += float(np.clip(0.5 * (r[i - 1] - r[i + 1]) / den, -0.5, 0.5))
    return shift / track.fps
