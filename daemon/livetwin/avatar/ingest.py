"""Reading the source video: probe, frames (rotation applied) and audio, through PyAV."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from livetwin.errors import MediaError

RGB = npt.NDArray[np.uint8]
AUDIO_RATE = 16000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class MediaInfo:
    """What the clone needs to know about a video before decoding it."""

    path: Path
    size_bytes: int
    duration: float
    fps: float
    width: int  # as displayed (rotation applied)
    height: int
    codec: str
    rotation: int
    frame_estimate: int
    has_audio: bool
    audio_rate: int


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise MediaError(f"{path}: no such file; check the path.")
    if path.is_dir():
        raise MediaError(f"{path} is a folder; give the video file itself.")
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        raise MediaError(
            f"{path}: cannot read this file as a video (damaged or not a media file); "
            "export it again as MP4 (H.264) and retry."
        ) from None


def probe(path: Path) -> MediaInfo:
    """Read the container header; raise MediaError for files that cannot be a source."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise MediaError(
            f"{path} is a still image; clone needs a video of you speaking "
            "(about one minute, face to camera)."
        )
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path} has no video stream; give a video of you speaking.")
        if container.format.name.endswith("_pipe") or container.format.name == "image2":
            raise MediaError(
                f"{path} is a still image; clone needs a video of you speaking "
                "(about one minute, face to camera)."
            )
        vs = container.streams.video[0]
        ctx = vs.codec_context
        rotation = _first_frame_rotation(container, vs)
        width, height = ctx.width, ctx.height
        if rotation % 180:
            width, height = height, width
        fps = float(vs.average_rate or vs.guessed_rate or 0) or 25.0
        duration = _duration(container, vs)
        audio = container.streams.audio
        return MediaInfo(
            path=path,
            size_bytes=path.stat().st_size,
            duration=duration,
            fps=fps,
            width=width,
            height=height,
            codec=ctx.name,
            rotation=rotation,
            frame_estimate=int(vs.frames or round(duration * fps)),
            has_audio=bool(audio),
            audio_rate=int(audio[0].rate or 0) if audio else 0,
        )


def _duration(container: av.container.InputContainer, vs: av.video.stream.VideoStream) -> float:
    if vs.duration and vs.time_base:
        return float(vs.duration * vs.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _first_frame_rotation(
    container: av.container.InputContainer, vs: av.video.stream.VideoStream
) -> int:
    try:
        for frame in container.decode(vs):
            return round(frame.rotation or 0) % 360
    except av.error.FFmpegError:
        raise MediaError(
            f"{container.name}: the video stream cannot be decoded (damaged file or unsupported "
            "codec); export it again as MP4 (H.264) and retry."
        ) from None
    raise MediaError(f"{container.name}: the video stream has no frames.")


@dataclass(frozen=True)
class DecodedFrame:
    """One source frame as RGB, its time in seconds, and its scale against the source
    (analysis frames of large videos are decoded smaller)."""

    index: int
    time: float
    rgb: RGB
    scale: float = 1.0


def iter_frames(info: MediaInfo, max_side: int | None = None) -> Iterator[DecodedFrame]:
    """Decode every video frame in order (variable frame rate kept), rotation applied,
    scaled down (in the decoder's converter, cheaper than after) to `max_side`."""
    scale = 1.0
    if max_side and max(info.width, info.height) > max_side:
        scale = max_side / max(info.width, info.height)
    with _open(info.path) as container:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        cw, ch = vs.codec_context.width, vs.codec_context.height
        size = (round(cw * scale / 2) * 2, round(ch * scale / 2) * 2)
        t0 = None
        index = 0
        try:
            for frame in container.decode(vs):
                t = float(frame.time if frame.time is not None else index / info.fps)
                if t0 is None:
                    t0 = t
                if scale < 1.0:
                    rgb = frame.reformat(width=size[0], height=size[1], format="rgb24",
                                         interpolation="AREA").to_ndarray()
                else:
                    rgb = frame.to_ndarray(format="rgb24")
                yield DecodedFrame(index, t - t0, _upright(rgb, info.rotation),
                                   size[0] / cw if scale < 1.0 else 1.0)
                index += 1
        except av.error.FFmpegError:
            if index < 2:
                raise MediaError(
                    f"{info.path}: the video stream is damaged; export it again and retry."
                ) from None
            # A damaged tail: keep what decoded, the quality checks judge the length.


def _upright(rgb: RGB, rotation: int) -> RGB:
    # FFmpeg's display rotation is counterclockwise in degrees; np.rot90 turns
    # counterclockwise too.
    if rotation % 360 == 0:
        return rgb
    return np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))


def read_audio(info: MediaInfo, rate: int = AUDIO_RATE) -> npt.NDArray[np.float32] | None:
    """The first audio stream as mono float32 at `rate` Hz, or None without audio."""
    if not info.has_audio:
        return None
    chunks: list[npt.NDArray[np.float32]] = []
    with _open(info.path) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        try:
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError:
            if not chunks:
                return None
    if not chunks:
        return None
    return np.concatenate(chunks).astype(np.float32)


def shrink(rgb: RGB, max_side: int) -> tuple[RGB, float]:
    """Downscale so the long side is at most `max_side`; returns the image and its scale."""
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return rgb, 1.0
    small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return small, scale
