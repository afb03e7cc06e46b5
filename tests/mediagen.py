"""Test media made on the fly with PyAV: re-encoded cuts of real clips with per-frame
transforms, synthetic videos without a face, audio-only files, damaged files, and the
small YAML inputs of `livetwin clone` (consent records, gesture sidecars).

Everything writes into a folder the caller owns (pytest's tmp_path); nothing is cached or
copied into the repository. Re-encoding a 256x256 clip runs many times faster than real
time, so tests can afford to make their own media.
"""

from __future__ import annotations

import fractions
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import av
import cv2
import numpy as np
import numpy.typing as npt
import yaml

RGB = npt.NDArray[np.uint8]
PCM = npt.NDArray[np.float32]
# A per-frame transform: (upright RGB frame, its time in seconds from the cut's start)
# -> RGB frame. It may change the frame size; the first output frame fixes it.
Transform = Callable[[RGB, float], RGB]
AudioMode = Literal["keep", "none", "silent", "tone"]

AUDIO_RATE = 48000
AAC_FRAME = 1024


# --- video --------------------------------------------------------------------------------


def read_frames(src: Path, *, start: float = 0.0, duration: float | None = None
                ) -> tuple[list[RGB], float]:
    """Decode `src` (its first video stream) into RGB frames between `start` and
    `start + duration` seconds; returns the frames and the stream's frame rate."""
    frames: list[RGB] = []
    with av.open(str(src)) as container:
        vs = container.streams.video[0]
        fps = float(vs.average_rate or vs.guessed_rate or 25)
        t0: float | None = None
        for index, frame in enumerate(container.decode(vs)):
            t = float(frame.time) if frame.time is not None else index / fps
            t0 = t if t0 is None else t0
            t -= t0
            if t < start - 1e-6:
                continue
            if duration is not None and t >= start + duration - 1e-6:
                break
            frames.append(frame.to_ndarray(format="rgb24"))
    return frames, fps


def read_audio(src: Path, *, rate: int = AUDIO_RATE) -> PCM | None:
    """The first audio stream of `src` as mono float32 at `rate` Hz, or None."""
    chunks: list[PCM] = []
    with av.open(str(src)) as container:
        if not container.streams.audio:
            return None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in container.decode(container.streams.audio[0]):
            chunks.extend(o.to_ndarray().reshape(-1) for o in resampler.resample(frame))
        chunks.extend(o.to_ndarray().reshape(-1) for o in resampler.resample(None))
    return np.concatenate(chunks).astype(np.float32) if chunks else None


def tone(seconds: float, *, freq: float = 440.0, dbfs: float = -12.0,
         rate: int = AUDIO_RATE) -> PCM:
    """A steady sine tone: loud, but with no speech-like pauses."""
    t = np.arange(round(seconds * rate)) / rate
    wave: PCM = (10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wave


def write_video(out: Path, frames: list[RGB], *, fps: float = 25.0, audio: PCM | None = None,
                audio_rate: int = AUDIO_RATE, codec: str = "libx264", gop: int | None = None,
                rotation: int | None = None, faststart: bool = False) -> Path:
    """Encode RGB frames (all the same size) and optional mono PCM into `out`; the
    container follows the suffix (.mp4, .mov, .mkv, .avi, ...).

    `rotation` (degrees, counterclockwise, a multiple of 90) stores each frame turned by
    `rotation` clockwise and sets the stream's display matrix to turn it back, as phones do
    for portrait video: a player that honours the matrix shows the frames as given.
    `gop` is the keyframe interval in frames (the encoder's default where None).
    `faststart` moves an MP4's index (moov) before the media data, as streaming exports
    do, so that a file cut short still opens.
    """
    if not frames:
        raise ValueError("no frames to write")
    quarter = 0
    if rotation is not None:
        if rotation % 90:
            raise ValueError("rotation must be a multiple of 90 degrees")
        quarter = (rotation // 90) % 4
    rate = fractions.Fraction(fps).limit_denominator(1001)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(out), mode="w", options=options) as container:
        vs = container.add_stream(codec, rate=rate)
        h, w = np.rot90(frames[0], k=-quarter).shape[:2]
        vs.width, vs.height = w - w % 2, h - h % 2
        vs.pix_fmt = "yuv420p"
        vs.time_base = fractions.Fraction(1, 1) / rate
        if gop is not None:
            vs.codec_context.gop_size = gop
        if codec == "libx264":
            opts = {"preset": "veryfast", "crf": "18"}
            if gop is not None:  # fixed keyframe spacing, no extra keyframes at cuts
                opts["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
            vs.codec_context.options = opts
        else:
            vs.bit_rate = 4_000_000
        if quarter:
            vs.set_display_rotation(rotation or 0)
        ast = None
        if audio is not None:
            ast = container.add_stream("aac", rate=audio_rate, layout="mono")
        for i, rgb in enumerate(frames):
            stored = np.ascontiguousarray(np.rot90(rgb, k=-quarter))[: vs.height, : vs.width]
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts = i
            container.mux(vs.encode(frame))
        container.mux(vs.encode(None))
        if ast is not None and audio is not None:
            _encode_audio(container, ast, audio, audio_rate)
    return out


def _encode_audio(container: Any, stream: Any, pcm: PCM, rate: int) -> None:
    pcm = np.asarray(pcm, np.float32)
    pad = (-len(pcm)) % AAC_FRAME
    pcm = np.concatenate([pcm, np.zeros(pad, np.float32)])
    for i in range(0, len(pcm), AAC_FRAME):
        frame = av.AudioFrame.from_ndarray(pcm[None, i : i + AAC_FRAME], format="fltp",
                                           layout="mono")
        frame.sample_rate = rate
        frame.pts = i
        frame.time_base = fractions.Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def make_clip(src: Path, out: Path, *, start: float = 0.0, duration: float | None = None,
              transform: Transform | None = None, audio: AudioMode = "keep",
              size: tuple[int, int] | None = None, rotation: int | None = None,
              codec: str = "libx264", gop: int | None = None, faststart: bool = False
              ) -> Path:
    """Cut `src` from `start` for `duration` seconds and re-encode it into `out`.

    - `transform(rgb, t)` edits each upright frame (t: seconds from the cut's start);
    - `size` = (width, height) resizes the frames after the transform;
    - `audio`: "keep" the source's audio (same cut), "none" (no audio stream), "silent"
      (an audio stream of digital silence) or "tone" (a steady 440 Hz tone, no speech);
    - `rotation`, `codec`, `gop`, `faststart`: see `write_video`.
    """
    frames, fps = read_frames(src, start=start, duration=duration)
    if transform is not None:
        frames = [transform(f, i / fps) for i, f in enumerate(frames)]
    if size is not None:
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
    seconds = len(frames) / fps
    pcm: PCM | None = None
    if audio == "keep":
        full = read_audio(src)
        if full is None:
            raise ValueError(f"{src} has no audio to keep")
        a = round(start * AUDIO_RATE)
        pcm = full[a : a + round(seconds * AUDIO_RATE)]
    elif audio == "silent":
        pcm = np.zeros(round(seconds * AUDIO_RATE), np.float32)
    elif audio == "tone":
        pcm = tone(seconds)
    elif audio != "none":
        raise ValueError(f"unknown audio mode {audio!r}")
    return write_video(out, frames, fps=fps, audio=pcm, codec=codec, gop=gop,
                       rotation=rotation, faststart=faststart)


def make_noise_video(out: Path, *, duration: float = 12.0, size: tuple[int, int] = (256, 256),
                     fps: float = 25.0, seed: int = 0, audio: AudioMode = "none",
                     gop: int | None = None) -> Path:
    """A video with no face: a softly textured, slowly drifting 'wall' (coarse random
    blotches upscaled, so it encodes small). `audio` as in `make_clip` ("keep" is not
    available here)."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = rng.integers(60, 200, size=(h // 16 + 2, w // 16 + 2, 3), dtype=np.uint8)
    big = cv2.resize(coarse, ((w // 16 + 2) * 16, (h // 16 + 2) * 16),
                     interpolation=cv2.INTER_CUBIC)
    n = round(duration * fps)
    frames = []
    for i in range(n):
        dx, dy = int(8 + 6 * math.sin(i / fps)), int(8 + 6 * math.cos(i / fps))
        f = big[dy : dy + h, dx : dx + w].copy()
        grain = rng.integers(-6, 7, size=f.shape, dtype=np.int16)
        frames.append(np.clip(f.astype(np.int16) + grain, 0, 255).astype(np.uint8))
    pcm = None
    if audio == "silent":
        pcm = np.zeros(round(duration * AUDIO_RATE), np.float32)
    elif audio == "tone":
        pcm = tone(duration)
    elif audio != "none":
        raise ValueError(f"audio mode {audio!r} is not available for a noise video")
    return write_video(out, frames, fps=fps, audio=pcm, gop=gop)


def make_audio_only(out: Path, *, src: Path | None = None, duration: float = 12.0) -> Path:
    """A file with one AAC audio stream and no video stream (the container follows the
    suffix, .mp4 or .m4a): the first `duration` s of `src`'s audio, else a tone."""
    pcm = read_audio(src) if src is not None else None
    pcm = tone(duration) if pcm is None else pcm[: round(duration * AUDIO_RATE)]
    with av.open(str(out), mode="w") as container:
        stream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        _encode_audio(container, stream, pcm, AUDIO_RATE)
    return out


def make_still(src: Path, out: Path, *, at: float = 1.0) -> Path:
    """One frame of `src` (at `at` seconds) as an image file (format from the suffix)."""
    frames, _fps = read_frames(src, start=at, duration=0.2)
    if not cv2.imwrite(str(out), cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {out}")
    return out


def make_random_bytes(out: Path, *, size: int = 200_000, seed: int = 0) -> Path:
    """`size` random bytes (name it .mp4 to pose as a video)."""
    out.write_bytes(np.random.default_rng(seed).bytes(size))
    return out


def truncate_copy(src: Path, out: Path, *, fraction: float) -> Path:
    """The first `fraction` of `src`'s bytes, as a download cut short would leave it."""
    data = src.read_bytes()
    out.write_bytes(data[: round(len(data) * fraction)])
    return out


def probe_rotation(path: Path) -> tuple[int, int, int]:
    """(stored width, stored height, display rotation in degrees, 0-359) of the first video
    stream, read back through PyAV."""
    with av.open(str(path)) as container:
        vs = container.streams.video[0]
        frame = next(container.decode(vs))
        return vs.codec_context.width, vs.codec_context.height, round(frame.rotation or 0) % 360


# --- frame transforms ---------------------------------------------------------------------


def side_by_side(rgb: RGB, _t: float) -> RGB:
    """The frame twice, next to itself: two faces."""
    return np.concatenate([rgb, rgb], axis=1)


def scale_brightness(factor: float) -> Transform:
    """Multiply every pixel by `factor` (< 1 darkens)."""

    def apply(rgb: RGB, _t: float) -> RGB:
        return np.clip(rgb.astype(np.float32) * factor, 0, 255).astype(np.uint8)

    return apply


def gaussian_blur(sigma: float) -> Transform:
    """Blur with a Gaussian of `sigma` pixels (defocus)."""

    def apply(rgb: RGB, _t: float) -> RGB:
        return np.asarray(cv2.GaussianBlur(rgb, (0, 0), sigma), np.uint8)

    return apply


def on_canvas(face_side: int, canvas: tuple[int, int], *, fill: int = 40) -> Transform:
    """Shrink the frame to `face_side` px square and paste it in the middle of a plain
    canvas of (width, height): a far-away, small face."""

    def apply(rgb: RGB, _t: float) -> RGB:
        w, h = canvas
        out = np.full((h, w, 3), fill, np.uint8)
        small = cv2.resize(rgb, (face_side, face_side), interpolation=cv2.INTER_AREA)
        y, x = (h - face_side) // 2, (w - face_side) // 2
        out[y : y + face_side, x : x + face_side] = small
        return out

    return apply


def pad_to(width: int, height: int, *, fill: int = 40) -> Transform:
    """Centre the frame on a plain canvas of (width, height) (e.g. to make it portrait)."""

    def apply(rgb: RGB, _t: float) -> RGB:
        out = np.full((height, width, 3), fill, np.uint8)
        h, w = rgb.shape[:2]
        y, x = (height - h) // 2, (width - w) // 2
        out[y : y + h, x : x + w] = rgb
        return out

    return apply


def shift_out_during(spans: list[tuple[float, float]], *, fill: int = 40) -> Transform:
    """During each (start, end) span in seconds, slide the picture sideways out of the
    frame (the person walked away); a plain background is left."""

    def apply(rgb: RGB, t: float) -> RGB:
        if not any(a <= t < b for a, b in spans):
            return rgb
        w = rgb.shape[1]
        out = np.full_like(rgb, fill)
        keep = w // 10  # a sliver of the old picture's edge stays in view
        out[:, :keep] = rgb[:, w - keep :]
        return out

    return apply


# --- YAML inputs --------------------------------------------------------------------------

CONSENT = {
    "subject": "Ted Example",
    "statement": "I, Ted Example, agree that livetwin clones my face and voice for the "
                 "livestreams of my own shop.",
    "date": "2025-01-15",
    "contact": "ted@example.org",
}


def write_consent(path: Path, **fields: Any) -> Path:
    """A consent record: a valid one by default; keyword arguments replace fields, and a
    value of None drops the field."""
    data = {k: v for k, v in {**CONSENT, **fields}.items() if v is not None}
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                    encoding="utf-8")
    return path


def write_gestures(path: Path, spans: Mapping[Any, Any]) -> Path:
    """A gesture sidecar: {id: {"start": s, "end": s}} under `gestures:`."""
    path.write_text(yaml.safe_dump({"gestures": dict(spans)}, sort_keys=False),
                    encoding="utf-8")
    return path
