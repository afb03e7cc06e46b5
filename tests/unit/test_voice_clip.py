"""The voice reference clip is cut from the cleanest speech, at pauses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from livetwin.avatar import voice

RATE = 16000


def _speechlike(rng: np.random.Generator, seconds: float, noise: float) -> np.ndarray:
    """Bursts of voiced sound (syllables) with short pauses, over background noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    env = (np.sin(2 * np.pi * 3.0 * t) > -0.3).astype(np.float32)
    pauses = (np.floor(t / 2.5) % 2 == 1) & ((t % 2.5) < 0.4)
    env[pauses] = 0
    tone = 0.3 * np.sin(2 * np.pi * 140 * t) * env
    return (tone + rng.normal(0, noise, t.shape)).astype(np.float32)


def test_picks_the_clean_part_and_writes_a_normalised_wav(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noisy = _speechlike(rng, 30, 0.08)
    clean = _speechlike(rng, 30, 0.002)
    pcm = np.concatenate([noisy, clean])
    clip = voice.find_clip(pcm, RATE)
    assert clip is not None
    assert clip.start >= 29.0, clip  # inside the clean half
    assert voice.MIN_S <= clip.end - clip.start <= voice.MAX_S + 1.5
    out = tmp_path / "ref.wav"
    voice.write_clip(pcm, RATE, clip, out)
    with out.open("rb") as fh:
        seg = voice._pydub().AudioSegment.from_wav(fh)
    assert abs(seg.duration_seconds - (clip.end - clip.start)) < 0.05
    assert seg.max_dBFS <= -0.9
    assert -21.5 < seg.dBFS < -18.5 or seg.max_dBFS > -1.1


def test_no_clip_from_silence_or_short_audio() -> None:
    rng = np.random.default_rng(1)
    assert voice.find_clip(rng.normal(0, 1e-4, RATE * 30).astype(np.float32), RATE) is None
    assert voice.find_clip(_speechlike(rng, 5, 0.002), RATE) is None
