"""Audio helpers for speech: resampling, loudness (ITU-R BS.1770-4) normalisation to a
broadcast target, short fades, and pydub conversion for file formats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage, signal

from livetwin.events import FloatArray

if TYPE_CHECKING:
    from pydub import AudioSegment

TARGET_LUFS = -16.0  # streaming-platform speech target
PEAK_CEILING_DBFS = -1.0
_BLOCK_S, _OVERLAP = 0.4, 0.75
_ABS_GATE, _REL_GATE = -70.0, -10.0


def resample(pcm: FloatArray, sr_from: int, sr_to: int) -> FloatArray:
    """Polyphase resampling (band-limited, no phase shift)."""
    if sr_from == sr_to or len(pcm) == 0:
        return pcm.astype(np.float32, copy=False)
    g = np.gcd(sr_from, sr_to)
    out = signal.resample_poly(pcm.astype(np.float64), sr_to // g, sr_from // g)
    return out.astype(np.float32)


def _biquad(b: tuple[float, float, float], a: tuple[float, float, float]
            ) -> tuple[np.ndarray, np.ndarray]:
    return np.array(b) / a[0], np.array(a) / a[0]


def _k_weighting(sr: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """BS.1770 K-weighting (high shelf + RLB high-pass) designed for any sample rate."""
    # high shelf: +4 dB above ~1.7 kHz (the head's acoustic effect)
    g_db, q, fc = 3.99984385397, 0.7071752369554193, 1681.9744509555319
    k = np.tan(np.pi * fc / sr)
    vh = 10 ** (g_db / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = _biquad((vh + vb * k / q + k * k, 2 * (k * k - vh), vh - vb * k / q + k * k),
                    (a0, 2 * (k * k - 1), 1 - k / q + k * k))
    # RLB high-pass at ~38 Hz
    fc, q = 38.13547087613982, 0.5003270373253953
    k = np.tan(np.pi * fc / sr)
    a0 = 1 + k / q + k * k
    hp = _biquad((1.0, -2.0, 1.0), (a0, 2 * (k * k - 1), 1 - k / q + k * k))
    return [shelf, (hp[0] * a0, hp[1])]


def loudness(pcm: FloatArray, sr: int) -> float:
    """Integrated loudness in LUFS (gated, mono); -inf for silence."""
    x = pcm.astype(np.float64)
    for b, a in _k_weighting(sr):
        x = signal.lfilter(b, a, x)
    block = int(_BLOCK_S * sr)
    if len(x) < block:  # shorter than one gating block: the whole clip is the block
        powers = np.array([np.mean(x * x)]) if len(x) else np.zeros(0)
    else:
        hop = max(1, int(block * (1 - _OVERLAP)))
        starts = range(0, len(x) - block + 1, hop)
        powers = np.array([np.mean(x[s:s + block] ** 2) for s in starts])
    with np.errstate(divide="ignore"):
        lufs = -0.691 + 10 * np.log10(powers)
    gated = powers[lufs > _ABS_GATE]
    if len(gated) == 0:
        return float("-inf")
    rel = -0.691 + 10 * np.log10(np.mean(gated)) + _REL_GATE
    gated = powers[(lufs > _ABS_GATE) & (lufs > rel)]
    return float(-0.691 + 10 * np.log10(np.mean(gated)))


def normalize_loudness(pcm: FloatArray, sr: int, target_lufs: float = TARGET_LUFS,
                       peak_dbfs: float = PEAK_CEILING_DBFS) -> FloatArray:
    """Gain to `target_lufs` with a look-ahead peak limiter at `peak_dbfs`."""
    out = pcm.astype(np.float32, copy=True)
    # synthetic speech is peaky (espeak: ~20 dB crest factor): a plain gain would clip,
    # and a peak-bounded gain would land ~5 dB short of the target; limit, then re-aim
    for _ in range(3):
        current = loudness(out, sr)
        if not np.isfinite(current):
            return out
        out = limit_peaks(out * np.float32(10 ** ((target_lufs - current) / 20)), sr,
                          peak_dbfs)
    return out


def limit_peaks(pcm: FloatArray, sr: int, peak_dbfs: float = PEAK_CEILING_DBFS,
                window_ms: float = 5.0) -> FloatArray:
    """Smooth gain reduction so no sample exceeds `peak_dbfs` (no clipping clicks)."""
    ceiling = 10 ** (peak_dbfs / 20)
    need = np.minimum(1.0, ceiling / np.maximum(np.abs(pcm), 1e-12))
    if need.min() >= 1.0:
        return pcm.astype(np.float32, copy=False)
    w = max(1, int(sr * window_ms / 1000))
    # the minimum over +-w then a mean over w never exceeds the gain each sample needs
    gain = ndimage.uniform_filter1d(ndimage.minimum_filter1d(need, 2 * w + 1), w + 1)
    return np.clip(pcm * gain, -ceiling, ceiling).astype(np.float32)


def fade(pcm: FloatArray, sr: int, in_ms: float = 5.0, out_ms: float = 10.0) -> FloatArray:
    """Raised-cosine fade in/out so sentence joins and interrupts never click."""
    out = pcm.astype(np.float32, copy=True)
    for ms, head in ((in_ms, True), (out_ms, False)):
        n = min(len(out), int(sr * ms / 1000))
        if n <= 0:
            continue
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))).astype(np.float32)
        if head:
            out[:n] *= ramp
        else:
            out[-n:] *= ramp[::-1]
    return out


def to_segment(pcm: FloatArray, sr: int) -> AudioSegment:
    """float32 mono -> pydub AudioSegment (16-bit), e.g. to export mp3/ogg."""
    _use_bundled_ffmpeg()
    from pydub import AudioSegment

    data = (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()
    return AudioSegment(data=data, sample_width=2, frame_rate=sr, channels=1)


def from_segment(segment: AudioSegment) -> tuple[FloatArray, int]:
    """pydub AudioSegment (any format pydub read) -> float32 mono and its rate."""
    seg = segment.set_channels(1).set_sample_width(2)
    pcm = np.frombuffer(seg.raw_data, dtype="<i2").astype(np.float32) / 32768.0
    return pcm, int(seg.frame_rate)


def _use_bundled_ffmpeg() -> None:
    """Point pydub at imageio-ffmpeg's binary: no system ffmpeg is needed."""
    import imageio_ffmpeg
    from pydub import AudioSegment

    AudioSegment.converter = imageio_ffmpeg.get_ffmpeg_exe()
