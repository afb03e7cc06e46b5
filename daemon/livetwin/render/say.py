"""`livetwin say`: the offline pipeline from text (or recorded speech) to an MP4 of the
twin saying it (issue 4 item 4).

text -> normalise -> TTS sentence by sentence -> mouth track per sentence (phoneme
timings, else the bundle's person model, else the audio energy) -> loop walker over the
bundle's loop graph (toward idle frames in pauses) -> compositor per output frame ->
canvas (placement, AI-disclosure label) -> H.264 + AAC MP4.

One timeline: output frame k is shown at k/fps, and the audio sample of time t sits at
t*48000. Every sentence starts on a frame boundary, so its mouth track (frame i of a
sentence at i/fps from its start) lines up with its audio exactly. PAD_S of closed-mouth
idle comes before the first and after the last sentence, PAUSE_S between sentences.
The file is written to a temporary name beside OUT and renamed when complete."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

from livetwin.config import Config
from livetwin.errors import InputError, MediaError
from livetwin.events import GestureCue, MouthTrack, SpeechAudio
from livetwin.render.canvas import DEFAULT_LABEL, DEFAULT_POSITION, DEFAULT_SIZE, Canvas
from livetwin.render.compositor import LOOKAHEAD

if TYPE_CHECKING:
    from livetwin.render.head_motion import GestureTrack

F32 = npt.NDArray[np.float32]
AUDIO_RATE = 48_000  # output audio
MODEL_RATE = 16_000  # what the mouth planner is given for recorded audio
PAD_S = 0.5  # idle, closed mouth, before and after the speech
PAUSE_S = 0.3  # between sentences
QUIET_MIN_S = 0.3  # a closed, still stretch at least this long inside speech is a pause
MAX_TEXT_CHARS = 20_000
MAX_AUDIO_S = 30 * 60.0
DEMO = "demo"
# x264 at 1280x720 on one core (measured on the tedlieu / sweater / demo `say` frames, the
# same frames encoded in one run): the B-frame / lookahead / macroblock-tree machinery of
# the presets costs about 3 ms of the 6.5 ms per frame of "veryfast me=dia subme=1" and
# adds 40 ms bursts (p99 15 ms) when a lookahead batch is decided. Without it (no B
# frames, no lookahead, no mb-tree, no scene-cut analysis, no weighted prediction), with
# one reference, no sub-partitions, 4x4 transform only, no adaptive quantisation and the
# cheapest sub-pixel refinement, a frame costs about 3.6 ms (p99 6 ms). Deblocking and
# CABAC stay on (no visible blocks, files 25 % smaller than without CABAC). CRF 22
# without mb-tree is finer than CRF 20 with it: Y-PSNR against the raw frames 50.6 /
# 53.2 / 51.7 dB (tedlieu / sweater / demo) against 49.1 / 48.9 / 46.8 dB before, for
# files about 2-5x bigger (about 1.6 Mbit/s for tedlieu at 30 fps).
ENCODER_PRESET = "veryfast"
ENCODER_PARAMS = ("bframes=0:rc-lookahead=0:mbtree=0:scenecut=0:weightp=0:ref=1:"
                  "partitions=none:8x8dct=0:aq-mode=0:me=dia:subme=0:trellis=0")
CRF = "22"
# FFmpeg's AAC "fast" coder: 0.17 ms of audio encoding per 25 fps video frame on one core
# against 0.5 ms for its default "twoloop", at the same bitrate.
AAC_CODER = "fast"

Progress = Callable[[int, int], None]  # (frames done, frames total)


@dataclass(frozen=True)
class SayRequest:
    """What to say and how to show it."""

    out: Path
    text: str | None = None
    audio: Path | None = None
    voice: str | None = None  # "BACKEND:VOICE", "BACKEND" or ":VOICE"
    lang: str = "en"
    size: tuple[int, int] = DEFAULT_SIZE
    fps: int = 25
    label: str | None = DEFAULT_LABEL  # None: no label (explicit, logged)
    label_position: str = DEFAULT_POSITION
    background: tuple[int, int, int] = (0, 0, 0)
    background_image: Path | None = None  # shown where the avatar does not cover
    label_font: Path | None = None  # font file tried first for the label
    seed: int = 0
    encoder_threads: int | None = None  # None: x264 decides (all cores)
    gestures: bool = True  # plan gestures from the words (TEXT only) and show them
    gesture_density: float | None = None  # 0..1; None: the planner's default


@dataclass
class SayResult:
    """What was written and how fast."""

    path: Path
    frames: int
    fps: int
    size: tuple[int, int]
    duration_s: float  # of the video (= of the audio track)
    speech_s: float  # of the speech without padding and pauses
    sentences: int
    mouth_source: str
    tts_s: float  # wall time of speech synthesis / audio decoding
    render_s: float  # wall time of render + encode
    speech_spans: list[tuple[int, int]] = field(default_factory=list)  # frames [a, b)
    # ms per frame, p50/p99, per stage: base, select, warp, colour, blend (video twin) or
    # the photo animator's stages, place and label (canvas), encode (audio + video);
    # "frame" is render + canvas per frame, "frame+encode" adds the encoder
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    # the gestures planned, seconds on the video's timeline (gesture.planner, head_motion)
    gestures: list[GestureCue] = field(default_factory=list)

    @property
    def render_fps(self) -> float:
        return self.frames / self.render_s if self.render_s > 0 else math.inf

    @property
    def realtime_factor(self) -> float:
        """Seconds of video per second of render + encode wall time."""
        return self.duration_s / self.render_s if self.render_s > 0 else math.inf


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720); InputError unless both are even and 16..4096."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise InputError(f"--size {text!r} is not WIDTHxHEIGHT (for example 1280x720).") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096) or w % 2 or h % 2:
        raise InputError(f"--size {text!r}: width and height must be even numbers from 16 to "
                         "4096 (H.264 4:2:0 needs even sizes).")
    return w, h


def parse_voice(text: str) -> tuple[str | None, str]:
    """'espeak:en-us+f3' -> ('espeak', 'en-us+f3'); 'piper' -> ('piper', '');
    ':en-us+f3' -> (None, 'en-us+f3')."""
    backend, _, voice = text.partition(":")
    return (backend.strip() or None), voice.strip()


# ------------------------------------------------------------------ speech


@dataclass(frozen=True)
class _Speech:
    """The sentences to say, each as planner input and as output audio at AUDIO_RATE."""

    items: list[SpeechAudio]
    out_pcm: list[F32]


def _tts(text: str, req: SayRequest, cfg: Config, voice_ref: Path | None) -> _Speech:
    from livetwin.speech.audio import resample
    from livetwin.speech.base import VoiceSettings
    from livetwin.speech.normalize import canonical_lang, normalize
    from livetwin.speech.registry import from_config

    try:
        lang = canonical_lang(req.lang)
    except (ValueError, KeyError) as exc:
        raise InputError(f"--lang {req.lang!r}: {exc}") from None
    spoken = normalize(text, lang)
    if not spoken:
        raise InputError("the text has nothing to say (empty once markup, emoji and symbols "
                         "are removed); give some words.")
    tts_cfg = cfg.tts
    settings = VoiceSettings()
    if req.voice:
        backend, voice = parse_voice(req.voice)
        if backend:
            tts_cfg = tts_cfg.model_copy(update={"backend": backend})
        settings = VoiceSettings(voice=voice)
    tts = from_config(tts_cfg, voice_ref=voice_ref)

    async def run() -> list[SpeechAudio]:
        items: list[SpeechAudio] = []
        try:
            async for s in tts.stream(spoken, lang=lang, settings=settings):
                if len(s.pcm):
                    items.append(s)
        finally:
            await tts.aclose()
        return items

    items = asyncio.run(run())
    if not items:
        raise InputError("the voice produced no audio for this text; try other words.")
    return _Speech(items, [resample(np.asarray(s.pcm, np.float32), s.sample_rate, AUDIO_RATE)
                           for s in items])


def read_audio_file(path: Path) -> F32:
    """A recorded speech file as mono float32 at AUDIO_RATE; MediaError if unusable."""
    import av

    if not path.is_file():
        raise MediaError(f"--audio {path}: no such file; check the path.")
    chunks: list[F32] = []
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.audio:
                raise MediaError(f"--audio {path} has no audio stream; give a speech "
                                 "recording (wav, mp3, m4a, ...).")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
            for frame in container.decode(container.streams.audio[0]):
                for o in resampler.resample(frame):
                    chunks.append(o.to_ndarray().reshape(-1))
            for o in resampler.resample(None):
                chunks.append(o.to_ndarray().reshape(-1))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        raise MediaError(f"--audio {path}: cannot read this file as audio (damaged or not "
                         "a media file); export it again as WAV and retry.") from None
    pcm = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if len(pcm) < AUDIO_RATE * 0.1:
        raise MediaError(f"--audio {path}: no audio in it (shorter than 0.1 s).")
    if len(pcm) > AUDIO_RATE * MAX_AUDIO_S:
        raise MediaError(f"--audio {path} is longer than {MAX_AUDIO_S / 60:.0f} minutes; "
                         "cut it into parts.")
    return pcm


def _recorded(path: Path) -> _Speech:
    from livetwin.speech.audio import resample

    pcm = read_audio_file(path)
    return _Speech([SpeechAudio(resample(pcm, AUDIO_RATE, MODEL_RATE), MODEL_RATE)], [pcm])


# ------------------------------------------------------------------ timeline


@dataclass(frozen=True)
class Timeline:
    """Per output frame: the mouth target (n, 4) and whether the twin speaks; the audio
    (float32 mono at AUDIO_RATE, exactly n/fps long)."""

    targets: F32
    speaking: npt.NDArray[np.bool_]
    audio: F32
    spans: list[tuple[int, int]]
    source: str


def build_timeline(speech: _Speech, fps: int, closed: F32,
                   plan: Callable[[SpeechAudio], MouthTrack]) -> Timeline:
    """Lay the sentences on frame boundaries with padding and pauses (module doc)."""
    pad, pause = round(PAD_S * fps), max(1, round(PAUSE_S * fps))
    spf = AUDIO_RATE / fps
    starts: list[int] = []
    lengths: list[int] = []
    k = pad
    for pcm in speech.out_pcm:
        n = math.ceil(len(pcm) / spf)
        starts.append(k)
        lengths.append(n)
        k += n + pause
    total = k - pause + pad
    targets = np.tile(closed.astype(np.float32), (total, 1))
    speaking = np.zeros(total, bool)
    audio = np.zeros(round(total * spf), np.float32)
    sources: list[str] = []
    for item, pcm, s, n in zip(speech.items, speech.out_pcm, starts, lengths, strict=True):
        a = round(s * spf)
        audio[a:a + len(pcm)] = pcm[:len(audio) - a]
        track = plan(item)
        m = min(len(track.values), n)
        targets[s:s + m] = track.values[:m]
        speaking[s:s + n] = True
        speaking[s:s + m] &= ~_still_runs(track.values[:m], closed, round(QUIET_MIN_S * fps))
        sources.append(track.source)
    spans = [(s, s + n) for s, n in zip(starts, lengths, strict=True)]
    return Timeline(targets, speaking, audio, spans, "+".join(dict.fromkeys(sources)))


def _still_runs(values: F32, closed: F32, min_len: int) -> npt.NDArray[np.bool_]:
    """Frames inside runs of at least `min_len` frames held exactly at the closed mouth
    (the planners make pauses bit-exact): there the body settles toward idle footage, so
    a base frame's own speech motion does not show around a closed mouth."""
    quiet = np.all(values == closed[None, :], axis=1)
    out = np.zeros(len(values), bool)
    k = 0
    while k < len(quiet):
        if not quiet[k]:
            k += 1
            continue
        e = k
        while e < len(quiet) and quiet[e]:
            e += 1
        if e - k >= min_len:
            out[k:e] = True
        k = e
    return out


# ------------------------------------------------------------------ writer


@contextlib.contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """A temporary path beside `out`, renamed to `out` when the block succeeds and
    removed when it fails (Ctrl-C included)."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


class Mp4Writer:
    """H.264 (yuv420p) video + AAC (48 kHz mono) audio on one timeline."""

    def __init__(self, path: Path, size: tuple[int, int], fps: int, *,
                 threads: int | None = None) -> None:
        import av

        self._av = av
        self.fps = fps
        self._c = av.open(str(path), mode="w", format="mp4")
        self._v = self._c.add_stream("libx264", rate=Fraction(fps, 1))
        self._v.width, self._v.height = size
        self._v.pix_fmt = "yuv420p"
        self._v.options = {"preset": ENCODER_PRESET, "crf": CRF,
                           "x264-params": ENCODER_PARAMS,
                           **({"threads": str(threads)} if threads else {})}
        self._v.codec_context.time_base = Fraction(1, fps)
        self._a = self._c.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        self._a.codec_context.time_base = Fraction(1, AUDIO_RATE)
        self._a.options = {"aac_coder": AAC_CODER}
        self._a_pts = 0
        self._v_pts = 0

    def video(self, rgb: npt.NDArray[np.uint8]) -> None:
        # cv2's RGB -> I420 is about 3x cheaper than letting the encoder's swscale do it.
        self.video_i420(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420))

    def video_i420(self, yuv: npt.NDArray[np.uint8]) -> None:
        """A frame given as I420 ((h * 3 / 2, w) uint8, Y then U then V; copied)."""
        frame = self._av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = self._v_pts
        frame.time_base = Fraction(1, self.fps)
        self._v_pts += 1
        self._c.mux(self._v.encode(frame))

    def audio(self, pcm: F32) -> None:
        if not len(pcm):
            return
        frame = self._av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm, np.float32).reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._a_pts
        frame.time_base = Fraction(1, AUDIO_RATE)
        self._a_pts += len(pcm)
        self._c.mux(self._a.encode(frame))

    def close(self) -> None:
        self._c.mux(self._v.encode(None))
        self._c.mux(self._a.encode(None))
        self._c.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._c.close()


# ------------------------------------------------------------------ the pipeline


def render_side(bundle_dir: Path, size: tuple[int, int]) -> int:
    """The long side to render the avatar at: the size it is shown at on a `size`
    canvas, so the canvas copies it without a per-frame resize (and a portrait 1080x1920
    clone in a 1280x720 canvas is held and rendered at 405x720, not 720x1280)."""
    from livetwin.avatar.bundle import read_manifest
    from livetwin.render.canvas import place

    src = read_manifest(bundle_dir).get("source") or {}
    try:
        w, h = int(src["width"]), int(src["height"])
    except (KeyError, TypeError, ValueError):
        return max(size)
    if int(src.get("rotation") or 0) % 180 == 90:
        w, h = h, w
    p = place((w, h), size)
    scale = (p.dest[2] - p.dest[0]) / max(p.crop[2] - p.crop[0], 1)
    return max(16, min(max(w, h), math.ceil(max(w, h) * scale)))


def resolve_avatar(avatar: str) -> Path:
    """A bundle path from AVATAR, verified; `demo` is reserved for the embedded demo."""
    from livetwin.avatar import bundle

    # `demo` is the embedded avatar unless a bundle of that name is here (a folder
    # called demo, e.g. the livetwin home's demo store, is not one)
    if avatar == DEMO and not (Path(DEMO) / bundle.MANIFEST).is_file():
        from livetwin.avatar.demo import demo_bundle

        return demo_bundle()  # built (and verified) on first use
    path = bundle.resolve(avatar)
    bundle.load(path)
    return path


def validate(req: SayRequest) -> None:
    """Cheap checks before anything heavy runs (InputError)."""
    if (req.text is None) == (req.audio is None):
        raise InputError("give either TEXT or --audio FILE (one of them, not both).")
    if req.text is not None and not req.text.strip():
        raise InputError("TEXT is empty; give the words to say, or --audio FILE.")
    if req.text is not None and len(req.text) > MAX_TEXT_CHARS:
        raise InputError(f"TEXT is longer than {MAX_TEXT_CHARS} characters; split it.")
    if not 1 <= req.fps <= 60:
        raise InputError(f"--fps {req.fps}: give a whole number from 1 to 60.")
    if AUDIO_RATE % req.fps:
        raise InputError(f"--fps {req.fps}: choose a rate that divides 48000 (24, 25, 30, "
                         "50, 60, ...).")
    if req.out.suffix.lower() != ".mp4":
        raise InputError(f"--out {req.out}: the output is an MP4; name it *.mp4.")
    if req.out.is_dir():
        raise InputError(f"--out {req.out} is a folder; give a file name ending in .mp4.")
    if not req.out.parent.is_dir():
        raise InputError(f"--out {req.out}: the folder {req.out.parent} does not exist.")


def say(avatar: str | Path, req: SayRequest, cfg: Config | None = None, *,
        progress: Progress | None = None) -> SayResult:
    """Render `req` with the avatar bundle `avatar` into req.out (see the module doc)."""
    from livetwin.lipsync.person_onnx import PersonMouthModel
    from livetwin.lipsync.track import MouthRange, plan_mouth
    from livetwin.render.engine import open_twin
    from livetwin.render.head_motion import twin_face

    validate(req)
    bundle_dir = resolve_avatar(str(avatar))
    cfg = cfg or Config()
    def make_canvas(source: tuple[int, int]) -> Canvas:
        return Canvas(source, req.size, background=req.background,
                      background_image=req.background_image, label=req.label,
                      label_position=req.label_position, label_font=req.label_font)

    try:
        make_canvas((256, 256))  # label fits, position known: fail before the TTS runs
    except ValueError as exc:
        raise InputError(f"{exc}.") from None

    t0 = time.perf_counter()
    voice_ref = bundle_dir / "voice_ref.wav"
    if req.text is not None:
        speech = _tts(req.text, req, cfg, voice_ref if voice_ref.is_file() else None)
    else:
        assert req.audio is not None
        speech = _recorded(req.audio)
    rng_mouth = MouthRange.from_bundle(bundle_dir)
    model_path = bundle_dir / "person_model.onnx"
    model = PersonMouthModel.load(model_path) if model_path.is_file() else None
    timeline = build_timeline(speech, req.fps, rng_mouth.closed,
                              lambda s: plan_mouth(s, req.fps, rng_mouth, model))
    tts_s = time.perf_counter() - t0

    twin = open_twin(bundle_dir, max_side=render_side(bundle_dir, req.size), fps=req.fps,
                     seed=req.seed)
    track = _gesture_track(speech, timeline, req, twin) if req.gestures and req.text else None
    touched = False  # the last frame was changed by a gesture (head motion, arrow)
    canvas = make_canvas(twin.size)
    n = len(timeline.targets)
    spf = AUDIO_RATE // req.fps
    frame_ms: list[float] = []
    encode_ms: list[float] = []
    t1 = time.perf_counter()
    with atomic_output(req.out) as tmp:
        writer = Mp4Writer(tmp, req.size, req.fps, threads=req.encoder_threads)
        try:
            for k in range(n):
                tf = time.perf_counter()
                if track is not None:
                    track.before(k, twin)
                rgb = twin.frame(timeline.targets[k], bool(timeline.speaking[k]),
                                 timeline.targets[k + 1:k + 1 + LOOKAHEAD])
                dirty = getattr(twin, "dirty", None)
                if track is not None:
                    rgb, changed = track.after(k, rgb, twin_face(twin))
                    dirty, touched = (None if changed or touched else dirty), changed
                # Straight to I420, redoing only the part that changed (a photo avatar
                # tells which); the same pixels as compose() then RGB -> I420.
                yuv = canvas.compose_i420(rgb, dirty)
                te = time.perf_counter()
                writer.audio(timeline.audio[k * spf:(k + 1) * spf])
                writer.video_i420(yuv)
                tw = time.perf_counter()
                frame_ms.append((te - tf) * 1e3)
                encode_ms.append((tw - te) * 1e3)
                if progress is not None:
                    progress(k + 1, n)
            writer.close()
        except BaseException:
            writer.abort()
            raise
    render_s = time.perf_counter() - t1
    speech_s = float(sum(len(p) for p in speech.out_pcm) / AUDIO_RATE)
    # Per-stage figures of the twin and the canvas; their own "total"s are replaced by
    # the measured per-frame totals below.
    stages = {k: v for k, v in (twin.timing() | canvas.timing()).items() if k != "total"}
    fr, enc = np.asarray(frame_ms), np.asarray(encode_ms)
    for name, ms in (("encode", enc), ("frame", fr), ("frame+encode", fr + enc)):
        stages[name] = {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}
    shown = [GestureCue(c.gesture, c.start, c.stroke, c.end, c.word)
             for c in (track.cues if track is not None else [])]
    return SayResult(req.out, n, req.fps, req.size, n / req.fps, speech_s, len(speech.items),
                     timeline.source, tts_s, render_s, timeline.spans, stages, shown)


def _gesture_track(speech: _Speech, timeline: Timeline, req: SayRequest,
                   twin: object) -> GestureTrack | None:
    """The gestures for the spoken sentences (planned from the TTS word timings; none
    for a backend without them), on the video's timeline."""
    from livetwin.render.head_motion import plan_track
    from livetwin.speech.normalize import canonical_lang

    sentences = [(a / req.fps, item.words)
                 for item, (a, _) in zip(speech.items, timeline.spans, strict=True)]
    if not any(words for _, words in sentences):
        return None
    clips = set(getattr(twin, "gestures", ()))
    return plan_track(sentences, canonical_lang(req.lang), clips, req.fps,
                      density=req.gesture_density)

