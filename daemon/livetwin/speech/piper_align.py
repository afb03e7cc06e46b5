"""Phoneme timings for Piper audio.

Piper voices take IPA codepoints (espeak-ng's phonemes, decomposed) as ids and give no
timings. Two ways to get them, best first:

1. The model has a second output with the frames per phoneme id (`w_ceil`; what
   `piper.patch_voice_with_alignment` exposes): timings are exact, `from_durations`.
2. Otherwise `estimate`: espeak-ng synthesises the same sentence, and its phoneme events
   give a duration per phoneme. The Piper audio's speech region and clause pauses are
   found from its energy; between those anchors the audio is shared out in proportion to
   espeak's durations, and the boundaries are then moved to where the band energies
   change most, by a segmental dynamic programme that keeps each phoneme's length close
   to its expected share (a log-ratio penalty) while preferring boundaries on energy
   changes. The expected length of a phoneme blends espeak's duration (30 %) with its
   count of sounding codepoints (70 %), since Piper spends time per id. Measured on the
   tests' synthetic voice (tests/unit/test_speech_piper.py, 6 en/de sentences at two
   speeds, 372 boundaries): proportional sharing alone is off by median 26 ms, p90 63 ms,
   max 110 ms; with the refinement median 11 ms, p90 78 ms, max 128 ms (65 % within one
   40 ms video frame). The refinement sharpens most boundaries but can jump to the wrong
   energy change inside a multi-codepoint phoneme; the exact path (1.) is preferred.

A phoneme here is one espeak-ng phoneme (IPA, stress marks dropped); "_" is a pause.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from livetwin.events import FloatArray, PhonemeTiming

PAUSE = "_"
STRESS = frozenset("ˈˌ")
SEPARATORS = frozenset(" ")
PUNCTUATION = frozenset(".,;:!?¡¿…—–-\"'()")  # noqa: RUF001

FRAME_S = 0.005  # analysis hop: an eighth of a 25 fps video frame
_SILENCE_DB = 40.0  # below the loudest frame: silence
_MIN_PAUSE_S = 0.04  # shorter quiet runs are closures, not clause pauses
_DURATION_WEIGHT = 2.0  # penalty per squared log-ratio of actual / expected length
_CHANGE_WEIGHT = 1.0  # reward for a boundary on a (normalised) band-energy change
_TOKEN_BLEND = 0.7  # share of the expected length set by the count of sounds, not espeak


@dataclass
class Unit:
    """One phoneme of the sentence: its codepoints in the Piper string and espeak length."""

    name: str
    weight: float  # espeak's duration in seconds (a share, not a time in Piper's audio)
    codepoints: list[int] = field(default_factory=list)


def units(piper_phonemes: Sequence[str], events: Sequence[tuple[str, float]]) -> list[Unit]:
    """Group the Piper codepoints into espeak's phonemes.

    `events` are espeak's phoneme events in order: (IPA name, seconds); an empty name is a
    pause. Every codepoint ends up in exactly one unit, in order; punctuation becomes a
    pause unit; codepoints espeak did not name join their neighbour.
    """
    cps = list(piper_phonemes)
    owner = [-1] * len(cps)
    out: list[Unit] = []
    plain = [i for i, c in enumerate(cps) if c not in STRESS]  # stress marks are no sound
    pos = 0  # index into `plain`
    pending_pause = 0.0

    def close_gap(upto: int) -> None:
        nonlocal pending_pause
        gap = [plain[k] for k in range(pos, upto)]
        punct = [i for i in gap if cps[i] in PUNCTUATION]
        if punct:
            out.append(Unit(PAUSE, pending_pause or 0.1, punct))
            for i in punct:
                owner[i] = len(out) - 1
            pending_pause = 0.0

    for name, seconds in events:
        target = [c for c in name if c not in STRESS]
        if not target:
            pending_pause += seconds
            continue
        found = _find(cps, plain, pos, target)
        if found is None:
            if out:  # espeak said more than the string holds: keep its time
                out[-1].weight += seconds
            continue
        close_gap(found)
        out.append(Unit("".join(c for c in name if c not in STRESS), seconds))
        for k in range(found, found + len(target)):
            owner[plain[k]] = len(out) - 1
        pos = found + len(target)
        pending_pause = 0.0 if pending_pause < _MIN_PAUSE_S else pending_pause
    close_gap(len(plain))
    if not out:
        return []
    _fill_owners(cps, owner)
    for i, k in enumerate(owner):
        out[k].codepoints.append(i)
    return out


def _find(cps: list[str], plain: list[int], pos: int, target: list[str],
          lookahead: int = 8) -> int | None:
    """Where `target` starts in `plain` at or after `pos`, skipping a few codepoints."""
    for start in range(pos, min(pos + lookahead, len(plain) - len(target) + 1)):
        if all(cps[plain[start + k]] == t for k, t in enumerate(target)):
            return start
    return None


def _fill_owners(cps: list[str], owner: list[int]) -> None:
    """Stress marks join the next phoneme, other unnamed codepoints the previous one."""
    nxt = -1
    for i in range(len(owner) - 1, -1, -1):
        if owner[i] >= 0:
            nxt = owner[i]
        elif cps[i] in STRESS and nxt >= 0:
            owner[i] = nxt
    prev = -1
    for i in range(len(owner)):
        if owner[i] >= 0:
            prev = owner[i]
        elif prev >= 0:
            owner[i] = prev
    first = next((k for k in owner if k >= 0), 0)
    for i in range(len(owner)):
        if owner[i] < 0:
            owner[i] = first
    # keep the units contiguous even where espeak and the string disagree in order
    for i in range(1, len(owner)):
        owner[i] = max(owner[i], owner[i - 1])


def from_durations(seq: Sequence[Unit], codepoint_tokens: Sequence[range],
                   token_samples: npt.NDArray[np.int64], total: int, rate: int
                   ) -> tuple[PhonemeTiming, ...]:
    """Exact timings from the samples per phoneme id the model reported.

    `codepoint_tokens[i]` are the token positions of codepoint i (its ids and the pad
    after them); tokens before the first (BOS) and after the last (EOS) are pauses.
    """
    cum = np.concatenate([[0], np.cumsum(token_samples)]).astype(np.int64)
    bounds: list[tuple[str, int, int]] = []
    for unit in seq:
        toks = [t for i in unit.codepoints for t in codepoint_tokens[i]]
        if not toks:
            continue
        bounds.append((unit.name, int(cum[min(toks)]), int(cum[max(toks) + 1])))
    return _with_pauses(bounds, total, rate)


def estimate(pcm: FloatArray, rate: int, seq: Sequence[Unit]) -> tuple[PhonemeTiming, ...]:
    """Timings for `seq` in `pcm` from espeak's durations and the audio (module doc)."""
    hop = max(1, round(rate * FRAME_S))
    n = max(1, len(pcm) // hop)
    db, change = _features(pcm, rate, hop, n)
    loud = db > db.max() - _SILENCE_DB
    if not seq or not loud.any():
        return _with_pauses([], len(pcm), rate)
    first, last = int(np.argmax(loud)), int(n - np.argmax(loud[::-1]))
    items = list(seq)
    while items and items[0].name == PAUSE:
        items.pop(0)
    while items and items[-1].name == PAUSE:
        items.pop()
    edges = _anchor_pauses(items, first, last, _quiet_runs(~loud, round(_MIN_PAUSE_S / FRAME_S)))
    frames: list[tuple[str, int, int]] = []
    for lo, hi, a, b in edges:  # chunks of named phonemes between anchors
        cut = _segment(change, a, b, [u.weight for u in items[lo:hi]],
                       [_sounding(u) for u in items[lo:hi]])
        frames += [(u.name, s, e) for u, s, e in zip(items[lo:hi], cut[:-1], cut[1:],
                                                     strict=True)]
    bounds = [(name, s * hop, e * hop) for name, s, e in frames]
    return _with_pauses(bounds, len(pcm), rate)


def _features(pcm: FloatArray, rate: int, hop: int, n: int
              ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per frame: level in dB, and how much the log band energies change across it."""
    win = 4 * hop
    padded = np.concatenate([np.zeros(win // 2, np.float32), pcm.astype(np.float32),
                             np.zeros(win, np.float32)])
    idx = np.arange(n)[:, None] * hop + np.arange(win)[None, :]
    frames = padded[idx] * np.hanning(win)[None, :]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    db = 10.0 * np.log10(power.sum(axis=1) + 1e-10)
    freqs = np.fft.rfftfreq(win, 1.0 / rate)
    edges = np.geomspace(80.0, rate / 2.0, 17)
    band = np.stack([power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1)
                     for lo, hi in itertools.pairwise(edges)], axis=1)
    logb = np.log10(band + 1e-8 * power.max() + 1e-12)
    shift = 2
    diff = np.zeros(n)
    if n > 2 * shift:
        diff[shift:n - shift] = np.abs(logb[2 * shift:] - logb[:-2 * shift]).sum(axis=1)
    top = np.percentile(diff, 98) if n else 1.0
    return db, np.clip(diff / (top + 1e-9), 0.0, 1.0)


def _sounding(unit: Unit) -> int:
    return max(1, len([c for c in unit.name if not unicodedata.combining(c)]))


def _quiet_runs(quiet: npt.NDArray[np.bool_], min_len: int) -> list[tuple[int, int]]:
    """[start, end) of the runs of quiet frames at least `min_len` long."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, q in enumerate([*quiet.tolist(), False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start >= min_len:
                runs.append((start, i))
            start = None
    return runs


def _anchor_pauses(items: list[Unit], first: int, last: int, runs: list[tuple[int, int]]
                   ) -> list[tuple[int, int, int, int]]:
    """Split `items` at its pause units placed on the audio's quiet runs.

    Returns chunks (lo, hi, start frame, end frame) of non-pause units; a pause with no
    quiet run near its proportional place is dropped and its time shared out.
    """
    total = sum(u.weight for u in items) or 1.0
    cum = np.cumsum([0.0, *[u.weight for u in items]]) / total
    inner = [r for r in runs if r[0] > first and r[1] < last]
    chunks: list[tuple[int, int, int, int]] = []
    lo, start = 0, first
    for k, unit in enumerate(items):
        if unit.name != PAUSE:
            continue
        guess = first + (cum[k] + cum[k + 1]) / 2 * (last - first)
        near = [r for r in inner if r[0] > start
                and abs((r[0] + r[1]) / 2 - guess) < 0.25 * (last - first)]
        if near:
            run = min(near, key=lambda r: abs((r[0] + r[1]) / 2 - guess))
            if k > lo:
                chunks.append((lo, k, start, run[0]))
            chunks.append((k, k + 1, run[0], run[1]))
            lo, start = k + 1, run[1]
    chunks.append((lo, len(items), start, last))
    return [c for c in chunks if c[1] > c[0] and c[3] > c[2]]


def _segment(change: npt.NDArray[np.float64], a: int, b: int, weights: Sequence[float],
             sizes: Sequence[int] | None = None) -> list[int]:
    """Boundaries a = t0 < t1 < ... < tm = b maximising change at the inner boundaries
    minus the squared log-ratio of each length to its share of b - a."""
    m = len(weights)
    span = b - a
    if m == 1 or span < m:
        return [a + round(span * i / m) for i in range(m + 1)]
    w = np.maximum(np.asarray(weights, np.float64), 1e-3)
    if sizes is not None and _TOKEN_BLEND > 0:
        sz = np.asarray(sizes, np.float64)
        w = (1 - _TOKEN_BLEND) * w / w.sum() + _TOKEN_BLEND * sz / max(sz.sum(), 1.0)
    expect = w / w.sum() * span
    neg = -1e18
    score = np.full(span + 1, neg)
    score[0] = 0.0
    back = np.zeros((m, span + 1), np.int64)
    local = change[a:b + 1] * _CHANGE_WEIGHT
    for j in range(m):
        dmax = min(span, int(np.ceil(4.0 * expect[j])) + 2)
        d = np.arange(1, dmax + 1)
        prior = -_DURATION_WEIGHT * np.log(d / expect[j]) ** 2
        new = np.full(span + 1, neg)
        arg = np.zeros(span + 1, np.int64)
        for k, dd in enumerate(d):
            cand = np.full(span + 1, neg)
            cand[dd:] = score[:-dd] + prior[k]
            better = cand > new
            new[better], arg[better] = cand[better], dd
        if j < m - 1:
            new = new + local
        score, back[j] = new, arg
    cuts = [span]
    for j in range(m - 1, -1, -1):
        cuts.append(cuts[-1] - int(back[j][cuts[-1]]))
    return [a + c for c in reversed(cuts)]


def _with_pauses(bounds: list[tuple[str, int, int]], total: int, rate: int
                 ) -> tuple[PhonemeTiming, ...]:
    """Timings in seconds that cover [0, total) without gaps: gaps become pauses."""
    out: list[PhonemeTiming] = []
    t = 0
    for name, s, e in bounds:
        s, e = max(s, t), min(max(e, s), total)
        if s > t:
            _append(out, PAUSE, t, s, rate)
        if e > s:
            _append(out, name, s, e, rate)
        t = max(t, e)
    if t < total:
        _append(out, PAUSE, t, total, rate)
    return tuple(out)


def _append(out: list[PhonemeTiming], name: str, s: int, e: int, rate: int) -> None:
    if name == PAUSE and out and out[-1].phoneme == PAUSE:
        out[-1] = PhonemeTiming(PAUSE, out[-1].start, e / rate)
    else:
        out.append(PhonemeTiming(name, s / rate, e / rate))
