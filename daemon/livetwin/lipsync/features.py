"""Audio features per video frame for the person audio-to-mouth model.

Used at clone time (training on the person's own footage) and at run time (TTS audio),
so everything is numpy/scipy, cheap, and local in time: a frame's features depend only on
the audio within its context window, plus one loudness reference level that is measured
on the whole input unless the caller fixes it (`ref_db`, for chunked streaming).

Features per frame are log-mel bands (16 kHz, 25 ms window, 10 ms hop) sampled at fixed
time offsets around the frame's time stamp, in dB relative to the loudness reference, so
a recording's level does not matter and silence stays silence. Frame times are seconds
from the start of `pcm` and may be spaced irregularly (variable frame rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

SAMPLE_RATE = 16000
WIN = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
HOP_S = HOP / SAMPLE_RATE
# Speech level is measured as this percentile of the 10 ms frame energies: high enough to
# sit on voiced speech, low enough to ignore a few clicks.
REF_PERCENTILE = 95.0
# A reference level below this (dB re full scale, power) means the input holds no speech;
# clamping keeps silence quiet instead of amplifying it to speech level.
MIN_REF_DB = -45.0
# Everything more than this below the reference is treated as the same silence.
FLOOR_DB = -60.0


@dataclass(frozen=True)
class FeatureConfig:
    """How features are computed; stored with a trained model so run time matches."""

    n_mels: int = 40
    fmin: float = 60.0
    fmax: float = 7600.0
    # Context around each frame's time stamp, in 10 ms steps: 150 ms of past and of
    # future (mouths move ahead of the sound they make: onsets lead by ~100 ms). Measured
    # on the first 82 % -> last 18 % of three clips (3-seed ensembles, held-out r):
    # +-250 ms 0.42 / 0.65 / 0.71, +-150 ms 0.54 / 0.65 / 0.71, +-100 ms 0.45 / 0.63 / 0.65;
    # a wider window overfits 15-30 s of footage.
    past_steps: int = 15
    future_steps: int = 15

    @property
    def n_steps(self) -> int:
        """Number of 10 ms steps in a frame's context window."""
        return self.past_steps + 1 + self.future_steps


@dataclass(frozen=True)
class FrameFeatures:
    """Features of one recording, one row per video frame."""

    mel: F32  # (n, n_steps, n_mels) dB re `ref_db`, floored at FLOOR_DB
    envelope: F32  # (n,) RMS of the audio over each frame's duration
    frame_times: F64  # (n,) seconds from the start of the audio
    ref_db: float  # loudness reference the mel bands are relative to
    config: FeatureConfig

    def __len__(self) -> int:
        return len(self.frame_times)


def compute_features(
    pcm: npt.NDArray[np.floating],
    sample_rate: int,
    frame_times: npt.ArrayLike,
    config: FeatureConfig | None = None,
    ref_db: float | None = None,
) -> FrameFeatures:
    """Log-mel context and RMS envelope for every video frame of a recording."""
    cfg = config or FeatureConfig()
    x = to_16k(pcm, sample_rate)
    ref = reference_db(x) if ref_db is None else float(ref_db)
    t = np.asarray(frame_times, dtype=np.float64).reshape(-1)
    return FrameFeatures(
        mel=mel_context(x, t, cfg, ref),
        envelope=rms_envelope(x, SAMPLE_RATE, t),
        frame_times=t,
        ref_db=ref,
        config=cfg,
    )


def to_16k(pcm: npt.NDArray[np.floating], sample_rate: int) -> F32:
    """Mono float audio resampled to 16 kHz (float32)."""
    x = np.asarray(pcm, dtype=np.float32).reshape(-1)
    if sample_rate == SAMPLE_RATE:
        return x
    g = gcd(SAMPLE_RATE, int(sample_rate))
    return resample_poly(x, SAMPLE_RATE // g, int(sample_rate) // g).astype(np.float32)


def mel_filterbank(cfg: FeatureConfig) -> F32:
    """Triangular HTK-mel filters, (n_mels, N_FFT // 2 + 1), each summing to 1."""
    lo_mel, hi_mel = (2595.0 * np.log10(1.0 + f / 700.0) for f in (cfg.fmin, cfg.fmax))
    edges = 700.0 * (10.0 ** (np.linspace(lo_mel, hi_mel, cfg.n_mels + 2) / 2595.0) - 1.0)
    bins = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins[None, :] - lo) / (mid - lo)
    down = (hi - bins[None, :]) / (hi - mid)
    fb = np.maximum(0.0, np.minimum(up, down))
    fb /= np.maximum(fb.sum(axis=1, keepdims=True), 1e-12)
    return fb.astype(np.float32)


def mel_power_db(pcm16k: F32, cfg: FeatureConfig) -> F32:
    """Mel power in dB re full scale, (n_hops, n_mels); hop i is centred at i * 10 ms."""
    pad = np.zeros(WIN // 2, np.float32)
    x = np.concatenate([pad, pcm16k, pad])
    n = max(0, (len(x) - WIN) // HOP + 1)
    if n == 0:
        return np.zeros((0, cfg.n_mels), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, WIN)[::HOP][:n]
    spec = np.fft.rfft(frames * np.hanning(WIN).astype(np.float32), n=N_FFT, axis=1)
    power = ((spec.real**2 + spec.imag**2) / float(WIN)).astype(np.float32)
    return (10.0 * np.log10(power @ mel_filterbank(cfg).T + 1e-10)).astype(np.float32)


def reference_db(pcm16k: F32) -> float:
    """Speech loudness reference (dB re full scale), clamped so silence stays quiet."""
    if len(pcm16k) < WIN:
        return MIN_REF_DB
    frames = np.lib.stride_tricks.sliding_window_view(pcm16k, WIN)[::HOP]
    energy_db = 10.0 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    return max(float(np.percentile(energy_db, REF_PERCENTILE)), MIN_REF_DB)


def mel_context(pcm16k: F32, frame_times: F64, cfg: FeatureConfig, ref_db: float) -> F32:
    """Log-mel context per frame, (n_frames, n_steps, n_mels), in dB re `ref_db`, floored
    at FLOOR_DB; steps outside the audio read as silence."""
    mel = np.maximum(mel_power_db(pcm16k, cfg) - ref_db, FLOOR_DB)
    margin = max(cfg.past_steps, cfg.future_steps) + 1
    silence = np.full((margin, cfg.n_mels), FLOOR_DB, np.float32)
    padded = np.concatenate([silence, mel, silence])
    centre = np.rint(frame_times / HOP_S).astype(np.int64)
    steps = np.arange(-cfg.past_steps, cfg.future_steps + 1)
    # Clipping lands out-of-range steps in the silence rows.
    idx = np.clip(centre[:, None] + steps[None, :] + margin, 0, len(padded) - 1)
    return padded[idx].astype(np.float32)


def frame_durations(frame_times: npt.ArrayLike) -> F64:
    """Each frame's duration: the next time stamp minus this one (the last: the median)."""
    t = np.asarray(frame_times, dtype=np.float64).reshape(-1)
    if len(t) < 2:
        return np.full(len(t), 1.0 / 25.0)
    d = np.diff(t)
    return np.append(d, np.median(d))


def rms_envelope(
    pcm: npt.NDArray[np.floating], sample_rate: int, frame_times: npt.ArrayLike
) -> F32:
    """RMS of the audio over each video frame's duration (ARCHITECTURE.md §4), (n_frames,)."""
    x = np.asarray(pcm, dtype=np.float64).reshape(-1)
    t = np.asarray(frame_times, dtype=np.float64).reshape(-1)
    cum = np.concatenate([[0.0], np.cumsum(x * x)])
    start = np.clip(np.rint(t * sample_rate).astype(np.int64), 0, len(x))
    end = np.clip(np.rint((t + frame_durations(t)) * sample_rate).astype(np.int64), 0, len(x))
    return np.sqrt((cum[end] - cum[start]).clip(min=0.0) / np.maximum(end - start, 1)).astype(
        np.float32
    )
