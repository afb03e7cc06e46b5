"""The voice reference clip: the cleanest 8-20 s of the person's speech, for
voice-cloning TTS backends."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MIN_S, MAX_S, IDEAL_S = 8.0, 20.0, 12.0
HOP_S = 0.03
TARGET_DBFS = -20.0
FADE_MS = 30


@dataclass(frozen=True)
class VoiceClip:
    """Where the reference clip was taken and how clean it is."""

    start: float
    end: float
    speech_share: float
    snr_db: float


def _pydub() -> Any:
    # pydub warns at import when no ffmpeg is on PATH; imageio-ffmpeg ships one.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        import pydub
    import imageio_ffmpeg

    pydub.AudioSegment.converter = imageio_ffmpeg.get_ffmpeg_exe()
    return pydub


def find_clip(pcm: npt.NDArray[np.float32], rate: int) -> VoiceClip | None:
    """Choose the window with the most speech, least noise and no clipping; cut at pauses."""
    hop = int(HOP_S * rate)
    n = len(pcm) // hop
    if n * HOP_S < MIN_S:
        return None
    frames = pcm[: n * hop].reshape(n, hop).astype(np.float64)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    # A frame counts as clipped when over 1% of its samples sit at full scale.
    clipped = np.mean(np.abs(frames) > 0.98, axis=1) > 0.01
    floor = float(np.percentile(db, 10))
    speech = db > floor + 12.0
    pauses = np.flatnonzero(~speech)
    starts = pauses if len(pauses) else np.array([0])
    best: tuple[float, VoiceClip] | None = None
    for a in starts[:: max(len(starts) // 400, 1)]:
        for length in (IDEAL_S, MIN_S, 16.0, MAX_S):
            b = a + int(length / HOP_S)
            if b > n:
                continue
            b = _to_pause(speech, b, n)
            share = float(speech[a:b].mean())
            if clipped[a:b].mean() > 0.01 or share < 0.4:
                continue
            snr = float(np.mean(db[a:b][speech[a:b]]) - floor)
            score = share + 0.02 * min(snr, 40.0) - 0.01 * abs((b - a) * HOP_S - IDEAL_S)
            if best is None or score > best[0]:
                best = (score, VoiceClip(a * HOP_S, b * HOP_S, share, snr))
    return best[1] if best else None


def _to_pause(speech: npt.NDArray[np.bool_], b: int, n: int) -> int:
    """Move an end point forward (up to 1.5 s) to the next pause, not mid-word."""
    limit = min(n, b + int(1.5 / HOP_S))
    while b < limit and speech[b - 1]:
        b += 1
    return b


def write_clip(pcm: npt.NDArray[np.float32], rate: int, clip: VoiceClip, path: Path) -> None:
    """Cut, loudness-normalise, fade and save the clip as 16-bit mono WAV."""
    pydub = _pydub()
    seg = pcm[int(clip.start * rate) : int(clip.end * rate)]
    seg = seg / max(1.0, float(np.abs(seg).max()))  # decoded AAC can exceed full scale
    ints = (seg * 32767).astype("<i2")
    audio = pydub.AudioSegment(ints.tobytes(), frame_rate=rate, sample_width=2, channels=1)
    gain = min(TARGET_DBFS - audio.dBFS, -1.0 - audio.max_dBFS)  # never clip
    audio = audio.apply_gain(gain).fade_in(FADE_MS).fade_out(FADE_MS)
    with path.open("wb") as fh:  # pydub leaves a path it opened itself unclosed
        audio.export(fh, format="wav")
