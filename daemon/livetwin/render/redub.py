"""The re-dub test of ARCHITECTURE.md §4 on real footage (issue "render", Must show 2).

Clone a video without its last `holdout` share, drive the render of that held-out part
with its own real audio, and compare the rendered mouth with the real held-out frames:

1. the first (1 - holdout) of the video (frames and audio, one timeline: audio sample 0
   is video frame 0, as clone assumes) is re-encoded to a temporary MP4 (H.264 CRF 14,
   long side at most the render's 1280 px, AAC) and cloned with the clone API;
2. the real held-out frames and audio come from the ORIGINAL video;
3. mouth tracks for the held-out audio:
   - product: exactly `livetwin say --audio` (the audio read by say's `_recorded`, then
     `plan_mouth` with the bundle's range and person model when the clone kept one);
   - energy: the energy-only baseline (`track_from_energy`);
   - random: a random atlas walk, targets = descriptors of uniformly random atlas
     patches, each held 2-5 frames (syllable rate), so real patches are pasted out of sync;
   - oracle (diagnostic): the real held-out descriptors measured on the real frames, i.e.
     a perfect mouth model; its render r is the ceiling the renderer allows;
4. every track is rendered in memory with LoopWalker + Compositor at the footage's size,
   one frame per held-out video frame, on the same walker base frames, each pick seeing
   the next LOOKAHEAD targets as in `say` (before 2026-11-25 the test rendered without
   look-ahead, which `say` and the live daemon never do); this is repeated on `walks`
   loop walks (walker seeds seed, seed + 1, ...): the first from say's idle start frame,
   the others from a random usable frame, as the live daemon starts speaking wherever
   its walk is. Each figure of a rendered track is the mean over the walks (the lag their
   median), since one walk's r moves with the base frames it happens to show (tedlieu's
   model track over five walks: 0.58-0.66; man_black_sweater's over 16 random starts:
   0.48-0.69). Before 2026-11-26 every walk began at the idle start frame, and on a
   3.6 s hold-out sweater's walks took no jump, so its five walks were one walk;
5. mediapipe face mesh measures aperture = dist(13, 14) / dist(33, 263) on the rendered
   and on the real frames; r is their Pearson correlation, lag the shift within +-400 ms
   maximising it (positive = the render is late: rendered frame t + lag matches real
   frame t). Held-out frames past the end of the audio track (some videos' audio ends a
   frame before their picture) have no audio to drive them and are not scored. The
   track-level r (target aperture vs real, before rendering) separates model quality
   from rendering quality; target_r (rendered vs target aperture) is the renderer's
   fidelity.

Suitable videos (SUITABLE, checked by `check_suitable`): the audio is the person's own
speech in sync with the picture (judged from SOURCES.md's sync check: silent tracks and
background music are out), the cloned part is long enough for clone (CloneConfig
min_duration_s, 10 s) and at least MIN_HOLDOUT_S are held out. On ../shared/media that is
tedlieu_60s, man_black_sweater_20s and woman_expressive_34s; the 5-8 s clips are too short
to clone and d9 / d14 carry silence / music.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
import wave
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from livetwin.errors import InputError

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]

# Videos of ../shared/media whose audio is the person's own speech in sync with the
# picture and long enough for the test (module doc), longest first.
SUITABLE = ("tedlieu_60s_edtalk_pose_source2.mp4", "man_black_sweater_20s_latentsync_demo2.mp4",
            "woman_expressive_34s_liveportrait_d6.mp4")
DEFAULT_HOLDOUT = 0.18
BUNDLE = "redub"  # the clone of the cut video: work_dir / f"{BUNDLE}.twin"
MIN_HOLDOUT_S = 3.0
MAX_LAG_S = 0.4
AUDIO_RATE = 48_000  # of the cut file and the held-out WAV (say's rate)
SILENT_DBFS = -50.0  # an audio track quieter than this (RMS) carries no speech
CUT_CRF = "14"
CUT_PRESET = "veryfast"
RANDOM_HOLD = (2, 5)  # frames each random patch is held, inclusive
WALKS = 8  # loop walks each track is rendered on (module doc, step 4)
CONSENT = {
    "subject": "re-dub test clip",
    "statement": "Used only to measure livetwin's lip sync on internal test footage.",
    "date": "2026-01-01",
    "contact": "maintainers",
}
TRACKS = ("product", "energy", "random", "oracle")


def suitable_videos(media: Path) -> list[Path]:
    """The SUITABLE videos present in `media`."""
    return [media / name for name in SUITABLE if (media / name).is_file()]


def check_suitable(video: Path, holdout: float = DEFAULT_HOLDOUT) -> None:
    """InputError unless `video` can be re-dub tested with this holdout (module doc); the
    audio being the person's own speech in sync cannot be checked here (see SUITABLE)."""
    from livetwin.avatar.ingest import probe, read_audio
    from livetwin.config import CloneConfig

    if not 0.05 <= holdout <= 0.5:
        raise InputError(f"holdout {holdout} is outside 0.05..0.5; hold out 15-20 % of the video.")
    info = probe(video)
    min_clone = CloneConfig().min_duration_s
    if info.duration * (1.0 - holdout) < min_clone:
        raise InputError(f"{video.name} is too short for the re-dub test: its first "
                         f"{1 - holdout:.0%} lasts {info.duration * (1 - holdout):.1f} s and "
                         f"clone needs {min_clone:.0f} s; use a longer video.")
    if info.duration * holdout < MIN_HOLDOUT_S:
        raise InputError(f"{video.name}: only {info.duration * holdout:.1f} s would be held out "
                         f"(at least {MIN_HOLDOUT_S:.0f} s needed); use a longer video.")
    pcm = read_audio(info)
    if pcm is None or not len(pcm):
        raise InputError(f"{video.name} has no audio; the re-dub test needs its own speech.")
    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))
    if 20.0 * math.log10(max(rms, 1e-12)) < SILENT_DBFS:
        raise InputError(f"{video.name}: the audio track is silent; the re-dub test needs "
                         "the person's own speech.")


# ------------------------------------------------------------------ metrics


def redub_lag(render: npt.ArrayLike, real: npt.ArrayLike, fps: float,
              max_lag_s: float = MAX_LAG_S) -> tuple[int, float]:
    """(lag in frames, r at that lag): the shift within +-max_lag_s maximising the Pearson
    correlation over frames finite in both; positive = the render is late (rendered frame
    t + lag matches real frame t). (0, nan) when nothing correlates."""
    from livetwin.lipsync.stats import pearson

    a = np.asarray(render, np.float64)
    b = np.asarray(real, np.float64)
    n = min(len(a), len(b))
    k_max = min(round(max_lag_s * fps), max(n - 3, 0))
    best, best_r = 0, -math.inf
    for k in range(-k_max, k_max + 1):
        x = a[max(k, 0):n + min(k, 0)]
        y = b[max(-k, 0):n - max(k, 0)]
        ok = np.isfinite(x) & np.isfinite(y)
        r = pearson(x[ok], y[ok])
        if math.isfinite(r) and r > best_r:
            best, best_r = k, r
    return (best, best_r) if math.isfinite(best_r) else (0, math.nan)


def finite_r(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Pearson correlation over the frames finite in both series."""
    from livetwin.lipsync.stats import pearson

    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    ok = np.isfinite(x) & np.isfinite(y)
    return pearson(x[ok], y[ok])


class ApertureMeter:
    """§4 aperture by mediapipe face mesh (video mode, as clone tracks): per frame
    dist(13, 14) / dist(33, 263), NaN where no face is found. One meter per frame series."""

    def __init__(self) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False, refine_landmarks=True, max_num_faces=1,
            min_detection_confidence=0.5, min_tracking_confidence=0.5)

    def landmarks(self, rgb: U8) -> F32 | None:
        """478 landmarks in frame pixels, or None."""
        from livetwin.avatar.ingest import shrink
        from livetwin.avatar.tracking import MESH_SIDE

        h, w = rgb.shape[:2]
        small, _ = shrink(rgb, MESH_SIDE)
        res = self._mesh.process(np.ascontiguousarray(small))
        if not res.multi_face_landmarks:
            return None
        pts = res.multi_face_landmarks[0].landmark
        return np.array([(p.x * w, p.y * h, p.z * w) for p in pts], np.float32)

    def __call__(self, rgb: U8) -> float:
        from livetwin.avatar import face

        lm = self.landmarks(rgb)
        return math.nan if lm is None else float(face.mouth_geometry(lm)[0])

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> ApertureMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------ the video split


def _even(rgb: U8) -> U8:
    h, w = rgb.shape[:2]
    return rgb[:h - h % 2, :w - w % 2]


@contextlib.contextmanager
def _cut_writer(path: Path, size: tuple[int, int], fps: float) -> Iterator[Any]:
    import av

    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": CUT_CRF, "preset": CUT_PRESET}
        vs.codec_context.time_base = 1 / rate
        aus = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        aus.codec_context.time_base = Fraction(1, AUDIO_RATE)
        yield out, vs, aus, rate
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))


def _split(video: Path, cut_path: Path, holdout: float
           ) -> tuple[float, list[U8], F32, int, float, int]:
    """Write the first (1 - holdout) of `video` to `cut_path`; return (fps, held-out
    frames, held-out audio at AUDIO_RATE, cloned frame count, held-out start time, how
    many held-out frames the audio track reaches: it may end before the picture)."""
    import av

    from livetwin.avatar.ingest import iter_frames, probe, read_audio
    from livetwin.render.footage import DEFAULT_MAX_SIDE

    info = probe(video)
    pcm = read_audio(info, AUDIO_RATE)
    assert pcm is not None  # check_suitable ran
    t_cut = (1.0 - holdout) * info.duration
    held: list[U8] = []
    n_keep = 0
    t_hold = math.nan
    frames = iter_frames(info, DEFAULT_MAX_SIDE)
    first = next(frames)
    rgb0 = _even(first.rgb)
    size = (rgb0.shape[1], rgb0.shape[0])
    with _cut_writer(cut_path, size, info.fps) as (out, vs, aus, rate):
        for fr in _chain(first, frames):
            rgb = _even(fr.rgb)
            if fr.time < t_cut and not held:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                frame.pts = n_keep
                frame.time_base = 1 / rate
                out.mux(vs.encode(frame))
                n_keep += 1
            else:
                if not held:
                    t_hold = fr.time
                held.append(rgb)
        spf = round(AUDIO_RATE / info.fps)
        a_end = min(round(t_hold * AUDIO_RATE), len(pcm))
        for a in range(0, a_end, spf):
            chunk = np.ascontiguousarray(pcm[a:min(a + spf, a_end)], np.float32).reshape(1, -1)
            af = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            af.sample_rate = AUDIO_RATE
            af.pts = a
            af.time_base = Fraction(1, AUDIO_RATE)
            out.mux(aus.encode(af))
    a0 = round(t_hold * AUDIO_RATE)
    a1 = a0 + round(len(held) * AUDIO_RATE / info.fps)
    audio = np.zeros(a1 - a0, np.float32)
    part = pcm[a0:a1]
    audio[:len(part)] = part
    # frame k (from t_hold + k / fps) has audio when the track reaches past its start
    heard = min(len(held), max(0, math.ceil((len(pcm) - a0) * info.fps / AUDIO_RATE - 1e-6)))
    return info.fps, held, audio, n_keep, t_hold, heard


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _write_wav(path: Path, pcm: F32, rate: int) -> None:
    pcm16 = np.clip(np.round(pcm * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16.tobytes())


# ------------------------------------------------------------------ tracks


def random_walk_targets(descriptors: F32, n: int, seed: int) -> tuple[F32, int]:
    """Targets of a random atlas walk: a uniformly random atlas patch held RANDOM_HOLD
    frames, then another; (targets (n, 4), patches visited)."""
    rng = np.random.default_rng(seed)
    k = len(descriptors)
    idx = np.empty(n, np.int64)
    i = visits = 0
    while i < n:
        hold = int(rng.integers(RANDOM_HOLD[0], RANDOM_HOLD[1] + 1))
        idx[i:i + hold] = int(rng.integers(k))
        i += hold
        visits += 1
    return np.nan_to_num(descriptors[idx]).astype(np.float32), visits


def _walk(graph: Any, n: int, fps: float, seed: int, idle_start: bool = True) -> list[int]:
    """Base frame indices of n output frames at `fps`, walked as say walks them
    (speaking throughout) from say's idle start frame, or with `idle_start` False from a
    random usable frame (the live daemon: speech begins wherever the walk happens to be)."""
    from livetwin.render.loop_walker import LoopWalker

    walker = LoopWalker(graph, np.random.default_rng(seed), prefer_idle=idle_start)
    walker.prefer_idle = False
    steps, base, b = 0, [], 0
    for k in range(n):
        due = math.floor(k * graph.fps / fps) + 1
        while steps < due:
            b = walker.next()
            steps += 1
        base.append(b)
    return base


def _oracle_targets(frames: list[U8], closed: F32) -> F32:
    """The real held-out descriptors (aperture, width, rounding, teeth) measured on the
    real frames; the closed mouth where no face is found."""
    from livetwin.avatar import face

    out = np.tile(closed, (len(frames), 1)).astype(np.float32)
    with ApertureMeter() as meter:
        for i, rgb in enumerate(frames):
            lm = meter.landmarks(rgb)
            if lm is not None:
                out[i, :3] = face.mouth_geometry(lm)
                out[i, 3] = face.teeth_visibility(rgb, lm)
    return out


def _fit(values: F32, n: int, closed: F32) -> F32:
    """Exactly n rows: cut, or padded with the closed mouth."""
    out = np.tile(closed, (n, 1)).astype(np.float32)
    m = min(n, len(values))
    out[:m] = values[:m]
    return out


# ------------------------------------------------------------------ the test


def redub_figures(video: Path, work_dir: Path, *, holdout: float = DEFAULT_HOLDOUT,
                  seed: int = 0, oracle: bool = True, walks: int = WALKS) -> dict[str, Any]:
    """Run the re-dub test on `video` (module doc) with scratch files in `work_dir`;
    a JSON-able dict of figures. InputError where the video is unsuitable."""
    from livetwin.avatar.clone import clone
    from livetwin.avatar.loops import LoopGraph
    from livetwin.lipsync.person_onnx import PersonMouthModel
    from livetwin.lipsync.track import MouthRange, plan_mouth, track_from_energy
    from livetwin.render.compositor import LOOKAHEAD, Compositor
    from livetwin.render.say import _recorded

    video = Path(video)
    if walks < 1:
        raise ValueError(f"walks must be at least 1, got {walks}")
    check_suitable(video, holdout)
    work_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cut = work_dir / f".redub-{video.stem}.mp4"
    try:
        fps, real_frames, audio, n_keep, t_hold, heard = _split(video, cut, holdout)
        split_s = time.perf_counter() - t0
        consent = work_dir / "consent.yaml"
        consent.write_text(yaml.safe_dump(CONSENT), encoding="utf-8")
        t1 = time.perf_counter()
        res = clone(cut, BUNDLE, consent, out_dir=work_dir, force=True)
        clone_s = time.perf_counter() - t1
    finally:
        cut.unlink(missing_ok=True)
    bundle = res.path
    n = len(real_frames)

    # Tracks: the product path reads a WAV of the held-out audio as `say --audio` does.
    wav = work_dir / "heldout.wav"
    _write_wav(wav, audio, AUDIO_RATE)
    speech = _recorded(wav).items[0]
    rng_mouth = MouthRange.from_bundle(bundle)
    model_path = bundle / "person_model.onnx"
    model = PersonMouthModel.load(model_path) if model_path.is_file() else None
    product = plan_mouth(speech, fps, rng_mouth, model)
    energy = track_from_energy(speech.pcm, speech.sample_rate, fps, rng_mouth)
    comp = Compositor(bundle)
    if comp.footage.size != (real_frames[0].shape[1], real_frames[0].shape[0]):
        raise AssertionError(f"footage {comp.footage.size} and real frames "
                             f"{real_frames[0].shape[1::-1]} differ in size")
    random_targets, visits = random_walk_targets(comp.atlas.descriptors, n, seed)
    targets = {"product": _fit(product.values, n, rng_mouth.closed),
               "energy": _fit(energy.values, n, rng_mouth.closed),
               "random": random_targets}
    if oracle:
        targets["oracle"] = _oracle_targets(real_frames, rng_mouth.closed)

    graph = LoopGraph.load(bundle / "loops.npz")
    t2 = time.perf_counter()
    with ApertureMeter() as meter:
        real_ap = np.array([meter(rgb) for rgb in real_frames])
    real_faces = float(np.isfinite(real_ap).mean())
    # Frames after the end of the audio track are driven by nothing (the held-out WAV is
    # zero-padded there): they are rendered but not scored. man_black_sweater's audio
    # ends 40 ms before its picture, so its last frame is one.
    real_ap[heard:] = math.nan
    rendered: dict[str, list[F64]] = {name: [] for name in targets}
    own: dict[str, list[float]] = {name: [] for name in targets}
    for w in range(walks):
        base = _walk(graph, n, fps, seed + w, idle_start=w == 0)
        for name, tgt in targets.items():
            comp.reset()
            comp.picks.clear()
            with ApertureMeter() as meter:
                # as say renders: each frame's pick sees the next LOOKAHEAD targets
                rendered[name].append(np.array([
                    meter(comp.render(base[k], tgt[k], tgt[k + 1:k + 1 + LOOKAHEAD]))
                    for k in range(n)]))
            own[name].append(float(np.mean(np.array(comp.picks) == -1)))
    measure_s = time.perf_counter() - t2

    def num(x: float, d: int = 3) -> float | None:
        return round(float(x), d) if math.isfinite(x) else None

    tracks: dict[str, Any] = {}
    for name, tgt in targets.items():
        runs = rendered[name]
        rs = [finite_r(a, real_ap) for a in runs]
        lags = [redub_lag(a, real_ap, fps) for a in runs]
        lag = int(statistics.median_low(lg for lg, _ in lags))
        t_lag, t_r_at = redub_lag(tgt[:, 0], real_ap, fps)
        tracks[name] = {
            "r": num(float(np.mean(rs))),
            "r_walks": [num(r) for r in rs],
            "lag_frames": lag,
            "lag_ms": num(1000.0 * lag / fps, 1),
            "r_at_lag": num(float(np.mean([r for _, r in lags]))),
            "track_r": num(finite_r(tgt[:, 0], real_ap)),
            "track_lag_frames": t_lag,
            "track_r_at_lag": num(t_r_at),
            "target_r": num(float(np.mean([finite_r(a, tgt[:, 0]) for a in runs]))),
            "finite_targets": bool(np.isfinite(tgt).all()),
            "faces_found": round(min(float(np.isfinite(a).mean()) for a in runs), 3),
            "own_mouth_share": round(float(np.mean(own[name])), 3),
        }
    tracks["product"]["source"] = product.source
    tracks["random"]["patches_visited"] = visits
    pm = res.manifest.get("person_model") or {}
    return {
        "video": video.name,
        "fps": round(fps, 3),
        "holdout": holdout,
        "holdout_start_s": round(t_hold, 3),
        "holdout_s": round(n / fps, 3),
        "clone_frames": n_keep,
        "held_out_frames": n,
        "frames_without_audio": n - heard,
        "real_faces_found": round(real_faces, 3),
        "real_aperture_std": num(float(np.nanstd(real_ap)), 4),
        "clone_s": round(clone_s, 2),
        "split_s": round(split_s, 2),
        "measure_s": round(measure_s, 2),
        "walks": walks,
        "person_model_val_r": pm.get("val_r"),
        "person_model_kept": bool(pm.get("file")),
        # A fixed schedule; only a slow or busy machine cuts it (shortened).
        "person_model_shortened": pm.get("shortened"),
        "person_model_train_s": pm.get("train_seconds"),
        "person_model_steps": pm.get("steps"),
        "atlas_patches": len(comp.atlas.descriptors),
        "size": list(comp.footage.size),
        "tracks": tracks,
    }
