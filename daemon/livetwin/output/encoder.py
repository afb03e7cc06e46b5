"""One H.264 + AAC encoder whose packets every sink muxes into its own container.

The encoders are opened with global headers: packets carry no SPS/PPS and the
parameter sets live in the stream's extradata. MP4 and FLV want exactly that, and the
MPEG-TS muxer puts the extradata in front of every keyframe, so a late joiner (OBS
starting after us) can decode from the next keyframe on.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import av
import numpy as np

from livetwin.config import OutputConfig

Kind = Literal["video", "audio"]


@dataclass(frozen=True)
class EncoderSettings:
    """How the live output is encoded (the `output:` config slice maps onto this)."""

    crf: int = 21
    video_bitrate_kbps: int = 4000  # VBV cap so RTMP ingest never sees bursts
    keyframe_s: float = 0.25
    audio_bitrate_kbps: int = 128
    preset: str = "ultrafast"
    threads: int = 1  # two shared cores: the renderer needs the other one

    @classmethod
    def from_config(cls, cfg: OutputConfig) -> EncoderSettings:
        """The encoder part of the `output:` config slice."""
        return cls(crf=cfg.crf, video_bitrate_kbps=cfg.video_bitrate_kbps,
                   keyframe_s=cfg.keyframe_s, audio_bitrate_kbps=cfg.audio_bitrate_kbps)


@dataclass(frozen=True)
class EncodedPacket:
    """One encoded packet, immutable so that sink threads can share it."""

    kind: Kind
    data: bytes
    pts: int
    dts: int
    duration: int
    time_base: Fraction
    keyframe: bool

    @property
    def seconds(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)

    def to_av(self, stream: Any) -> av.Packet:
        """A fresh PyAV packet for `stream` of a sink's own container."""
        pkt = av.Packet(self.data)
        pkt.pts, pkt.dts, pkt.duration = self.pts, self.dts, self.duration
        pkt.time_base = self.time_base
        pkt.is_keyframe = self.keyframe
        pkt.stream = stream
        return pkt


@dataclass(frozen=True)
class EncodedTick:
    """What one tick hands to every sink: the raw frame and the packets it produced."""

    index: int
    frame: np.ndarray
    packets: tuple[EncodedPacket, ...]


class StreamTemplates:
    """Stream parameters (codec, size, extradata) for sinks to copy into their containers.

    They live in a container of the `null` format that never writes anything; sinks call
    `add(container)` from their own threads, which only reads these parameters.
    """

    def __init__(self, video: Any, audio: Any) -> None:
        self._box = av.open("templates", "w", format="null")
        self.video = self._box.add_stream_from_template(video)
        self.audio = self._box.add_stream_from_template(audio)
        self._box.start_encoding()

    def add(self, container: Any) -> tuple[Any, Any]:
        """Add one video and one audio stream to `container`; return (video, audio)."""
        return (container.add_stream_from_template(self.video),
                container.add_stream_from_template(self.audio))


class Encoder:
    """Encodes RGB frames and mono int16 PCM once per tick (not thread-safe: tick thread)."""

    def __init__(self, size: tuple[int, int], fps: int, sample_rate: int,
                 settings: EncoderSettings = EncoderSettings()) -> None:
        width, height = size
        if width % 2 or height % 2:
            raise ValueError(f"frame size {width}x{height} must be even for H.264")
        self.fps, self.sample_rate = fps, sample_rate
        self._box = av.open("encoder", "w", format="null")
        global_header = av.codec.context.Flags.global_header
        gop = max(1, round(settings.keyframe_s * fps))
        v = self._box.add_stream("libx264", rate=fps, width=width, height=height)
        v.pix_fmt = "yuv420p"
        vctx = v.codec_context
        vctx.time_base = Fraction(1, fps)
        vctx.gop_size = gop
        vctx.thread_count = settings.threads
        kbps = settings.video_bitrate_kbps
        vctx.options = {
            "preset": settings.preset,
            "tune": "zerolatency",  # no B-frames, no lookahead: one frame in, one out
            "crf": str(settings.crf),
            "x264-params": f"scenecut=0:keyint={gop}:min-keyint={gop}"
                           f":vbv-maxrate={kbps}:vbv-bufsize={kbps}",
        }
        vctx.flags |= global_header
        a = self._box.add_stream("aac", rate=sample_rate)
        a.layout = "mono"
        a.bit_rate = settings.audio_bitrate_kbps * 1000
        a.codec_context.time_base = Fraction(1, sample_rate)
        a.codec_context.flags |= global_header
        self._box.start_encoding()  # opens both encoders; extradata is known from here
        self._v, self._a = v, a
        self.templates = StreamTemplates(v, a)
        self._vtb = Fraction(1, fps)
        self._atb = Fraction(1, sample_rate)
        self.samples = 0

    def encode(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> list[EncodedPacket]:
        """Encode tick `index`: video PTS = index, audio PTS = samples so far."""
        vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
        vf.pts, vf.time_base = index, self._vtb
        out = self._packets("video", self._v.encode(vf))
        if len(pcm):
            af = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            af.sample_rate = self.sample_rate
            af.pts, af.time_base = self.samples, self._atb
            self.samples += len(pcm)
            out += self._packets("audio", self._a.encode(af))
        return out

    def flush(self) -> list[EncodedPacket]:
        """Drain both encoders (call once, at the end)."""
        return self._packets("video", self._v.encode(None)) + self._packets(
            "audio", self._a.encode(None))

    def close(self) -> None:
        """Release the codec contexts."""
        self._box.close()

    @staticmethod
    def _packets(kind: Kind, packets: Any) -> list[EncodedPacket]:
        return [
            EncodedPacket(kind, bytes(p), p.pts, p.dts if p.dts is not None else p.pts,
                          p.duration or 0, p.time_base, bool(p.is_keyframe))
            for p in packets if p.size
        ]
