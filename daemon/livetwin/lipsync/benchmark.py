# ruff: noqa: RUF001 - Chinese punctuation in the Chinese test text
"""Lip-sync figures of issue 3 (ARCHITECTURE.md §4), for `livetwin bench`:

- espeak speech in en / zh / de: the phoneme track's lag against the audio envelope
  (a timeline check; target: within one frame at 25 fps);
- real speech: the person model's re-dub r before rendering, on held-out footage, next to
  the energy baseline and the ridge reference. Without a bundle the clip is tracked here
  as clone does, the model trained on the first 85 % and scored on the last 15 %.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from livetwin.config import CloneConfig
from livetwin.events import MouthTrack, SpeechAudio
from livetwin.lipsync.person_onnx import PersonMouthModel
from livetwin.lipsync.stats import pearson
from livetwin.lipsync.track import (
    MouthRange,
    envelope_lag,
    plan_mouth,
    track_from_energy,
)

FPS = 25.0
HOLDOUT_SHARE = 0.15
AUDIO_RATE = 16000
# clone's own guard (clone.train_seconds); the schedule is person_model.STEPS
TRAIN_BUDGET_S = CloneConfig().train_seconds
MAX_LAG_S = 0.4
# Clips with the person's own speech (SOURCES.md: sync check good or fair), longest first.
REDUB_CLIPS = ("tedlieu_60s_edtalk_pose_source2.mp4", "woman_expressive_34s_liveportrait_d6.mp4",
               "man_black_sweater_20s_latentsync_demo2.mp4")
ESPEAK_TEXTS = {
    "en": "Welcome back to the stream, everyone. This blue water bottle keeps drinks cold for "
          "a whole day. Today it costs only nineteen dollars, so grab one before they are "
          "gone. Thank you so much for watching, and see you tomorrow.",
    "zh": "欢迎大家来到直播间。这个蓝色的水杯可以保温一整天。今天只要九十九元，"
          "数量有限，喜欢的朋友赶紧下单。谢谢大家的支持，我们明天见。",
    "de": "Willkommen zurück im Stream, ihr Lieben. Diese blaue Flasche hält Getränke den "
          "ganzen Tag kühl. Heute kostet sie nur neunzehn Euro, also schnell zugreifen. "
          "Vielen Dank fürs Zuschauen, bis morgen.",
}


def _num(x: float, digits: int = 3) -> float | None:
    return round(float(x), digits) if math.isfinite(x) else None


async def espeak_speech(text: str, lang: str) -> list[SpeechAudio]:
    """All sentences of `text` spoken by espeak (the backend is closed afterwards)."""
    from livetwin.speech.espeak import EspeakTTS

    tts = EspeakTTS()
    try:
        return [s async for s in tts.stream(text, lang=lang)]
    finally:
        await tts.aclose()


def joined_lag(speeches: Sequence[SpeechAudio], fps: float = FPS,
               mouth_range: MouthRange | None = None) -> float:
    """Envelope lag of the phoneme tracks of consecutive sentences played back to back
    (each sentence's audio cut or padded to its whole frames, as the renderer plays it):
    one figure per language, steadier than a 2 s sentence's own."""
    tracks, pcms = [], []
    for speech in speeches:
        track = plan_mouth(speech, fps, mouth_range)
        n = round(len(track.values) / fps * speech.sample_rate)
        pcm = np.zeros(n, np.float32)
        pcm[: min(n, len(speech.pcm))] = speech.pcm[:n]
        tracks.append(track.values)
        pcms.append(pcm)
    if not tracks or len({s.sample_rate for s in speeches}) != 1:
        return float("nan")
    joined = MouthTrack(fps, np.concatenate(tracks), "phonemes")
    return envelope_lag(joined, np.concatenate(pcms), speeches[0].sample_rate, MAX_LAG_S)


def espeak_lag_figures(texts: dict[str, str] | None = None, fps: float = FPS,
                       mouth_range: MouthRange | None = None) -> dict[str, Any]:
    """Per language: the envelope lag of the phoneme track over all sentences, and of
    every sentence on its own."""
    out: dict[str, Any] = {}
    for lang, text in (texts or ESPEAK_TEXTS).items():
        speeches = asyncio.run(espeak_speech(text, lang))
        lags = [envelope_lag(plan_mouth(s, fps, mouth_range), s.pcm, s.sample_rate, MAX_LAG_S)
                for s in speeches]
        lag = joined_lag(speeches, fps, mouth_range)
        finite = [x for x in lags if math.isfinite(x)]
        out[lang] = {
            "lag_ms": _num(1000 * lag, 1),
            "within_one_frame": math.isfinite(lag) and abs(lag) <= 1.0 / fps + 1e-9,
            "sentences": len(lags),
            "sentence_lags_ms": [_num(1000 * x, 1) for x in lags],
            "sentence_max_abs_lag_ms": _num(1000 * max(map(abs, finite)), 1) if finite else None,
        }
    return out


def _track_clip(path: Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32],
                                     npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
    """Frame times, mouth descriptors, usable flags and 16 kHz audio, tracked as clone
    does."""
    from livetwin.avatar.ingest import probe, read_audio
    from livetwin.avatar.tracking import track_video

    info = probe(path)
    track = track_video(info)
    pcm = read_audio(info, AUDIO_RATE)
    if pcm is None:
        raise ValueError(f"{path.name} has no audio")
    return track.times, track.mouth, track.usable, pcm


def _scores(pred: npt.NDArray[np.float32], energy: MouthTrack, real: npt.NDArray[np.float32],
            ok: npt.NDArray[np.bool_], start: int) -> dict[str, Any]:
    """r and re-dub lag of the model and the energy track on frames from `start` on."""
    n = len(real)
    held = np.zeros(n, bool)
    held[start:] = True
    held &= ok & np.isfinite(real[:, 0])
    e = np.zeros(n, np.float32)
    m = min(n, len(energy.values))
    e[:m] = energy.values[:m, 0]
    return {
        "model_r": _num(pearson(pred[held, 0], real[held, 0])),
        "energy_r": _num(pearson(e[held], real[held, 0])),
        "model_lag_ms": _num(1000 * _redub_lag(pred[start:, 0], real[start:, 0],
                                                held[start:]), 1),
        "held_out_frames": int(held.sum()),
    }


def _redub_lag(pred: npt.NDArray[np.float32], real: npt.NDArray[np.float32],
               ok: npt.NDArray[np.bool_]) -> float:
    """§4's re-dub lag (seconds): the shift within +-400 ms maximising r; + = late."""
    k_max = int(MAX_LAG_S * FPS)
    n = len(pred)
    best, best_r = float("nan"), -np.inf
    for k in range(-k_max, k_max + 1):
        a = slice(max(k, 0), n + min(k, 0))
        b = slice(max(-k, 0), n - max(k, 0))
        both = ok[a] & ok[b]
        r = pearson(pred[a][both], real[b][both])
        if math.isfinite(r) and r > best_r:
            best, best_r = k / FPS, r
    return best


def redub_clip_figures(path: Path) -> dict[str, Any]:
    """Track a clip, train the person model on its first 85 %, score the last 15 %."""
    from livetwin.lipsync.features import compute_features
    from livetwin.lipsync.person_model import train_person_model
    from livetwin.lipsync.person_onnx import export_onnx

    t0 = time.perf_counter()
    times, mouth, usable, pcm = _track_clip(path)
    track_s = time.perf_counter() - t0
    ok = usable & np.isfinite(mouth).all(axis=1)
    start = math.ceil(len(times) * (1 - HOLDOUT_SHARE))
    feats = compute_features(pcm, AUDIO_RATE, times)
    trained = train_person_model(feats, np.nan_to_num(mouth), ok, start,
                                 budget_s=TRAIN_BUDGET_S)
    with tempfile.TemporaryDirectory() as tmp:
        runtime = PersonMouthModel.load(export_onnx(trained, Path(tmp) / "m.onnx"))
        pred = runtime.predict(pcm, AUDIO_RATE, times)
    fps = (len(times) - 1) / float(times[-1] - times[0]) if len(times) > 1 else FPS
    energy = track_from_energy(pcm, AUDIO_RATE, fps, MouthRange.from_descriptors(mouth[:start],
                                                                              ok[:start]))
    m = trained.metrics
    return {
        **_scores(pred, energy, mouth, ok, start),
        "ridge_r": _num(m.ridge_r),
        "train_frames": m.train_frames,
        "train_seconds": _num(m.train_seconds, 2),
        "track_seconds": _num(track_s, 2),
        "shortened": m.shortened,
    }


def redub_bundle_figures(bundle: Path) -> dict[str, Any]:
    """A bundle's person model is trained on all of its footage (cross-validated), so it
    cannot be scored on that footage again: report the clone's out-of-fold figures."""
    from livetwin.avatar.bundle import read_manifest

    pm = read_manifest(bundle).get("person_model") or {}
    return {
        "val_r": pm.get("val_r"), "energy_r": pm.get("energy_r"), "ridge_r": pm.get("ridge_r"),
        "validation": pm.get("validation", "holdout"), "folds": pm.get("folds"),
        "kept": bool(pm.get("file")),
    }


def lipsync_figures(bundle: Path | None = None, clips: Sequence[Path] | None = None,
                    *, espeak: bool = True) -> dict[str, Any]:
    """All lip-sync figures: espeak lags per language and re-dub r per clip or bundle."""
    figures: dict[str, Any] = {}
    if espeak:
        try:
            figures["espeak_lag"] = espeak_lag_figures()
        except ImportError as exc:
            figures["espeak_lag"] = {"skipped": f"no espeak backend ({exc})"}
    redub: dict[str, Any] = {}
    if bundle is not None:
        redub[bundle.name] = redub_bundle_figures(bundle)
    for clip in clips if clips is not None else _shared_clips():
        redub[clip.stem] = redub_clip_figures(clip)
    figures["redub"] = redub or {"skipped": "no ../shared/media beside this checkout"}
    return figures


def _shared_clips() -> list[Path]:
    from livetwin.bench import shared_media

    media = shared_media()
    return [media / c for c in REDUB_CLIPS if (media / c).is_file()] if media else []
