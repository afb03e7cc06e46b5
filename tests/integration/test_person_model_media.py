"""The person audio-to-mouth model on a real talking head (ARCHITECTURE.md §4): trained on
the first 85 % of the clip, it must predict the held-out 15 % better than the energy-only
baseline and the ridge reference."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import mediapipe as mp
import numpy as np
import pytest

from livetwin.avatar.face import mouth_geometry, teeth_visibility
from livetwin.config import CloneConfig
from livetwin.lipsync.features import compute_features
from livetwin.lipsync.person_model import TrainedPersonModel, train_person_model
from livetwin.lipsync.person_onnx import PersonMouthModel, export_onnx

pytestmark = pytest.mark.media

CLIP = "tedlieu_60s_edtalk_pose_source2.mp4"
SR = 16000
HOLDOUT_SHARE = 0.15
# clone's default budget (config clone.train_seconds), a guard: the schedule is fixed.
TRAIN_BUDGET_S = CloneConfig().train_seconds
# The gate test's speech comes from another person; its two trainings get a short budget.
OTHER_VOICE = "woman_expressive_34s_liveportrait_d6.mp4"
GATE_BUDGET_S = 8.0


@dataclass(frozen=True)
class Clip:
    frame_times: np.ndarray  # seconds from the start of `pcm`
    descriptors: np.ndarray  # (n, 4)
    tracked: np.ndarray  # (n,) bool
    pcm: np.ndarray  # mono float32 at SR


def _track(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame times, mouth descriptors and tracking success for every video frame."""
    mesh = mp.solutions.face_mesh.FaceMesh(
        static_image_mode=False, refine_landmarks=True, max_num_faces=1
    )
    times, desc, ok = [], [], []
    with mesh, av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24")
            h, w = rgb.shape[:2]
            found = mesh.process(rgb).multi_face_landmarks
            times.append(frame.time)
            ok.append(bool(found))
            if not found:
                desc.append(np.zeros(4, np.float32))
                continue
            lm = np.array([(p.x * w, p.y * h, p.z * w) for p in found[0].landmark], np.float32)
            desc.append(np.append(mouth_geometry(lm), teeth_visibility(rgb, lm)))
    return np.array(times, np.float64), np.array(desc, np.float32), np.array(ok)


def _audio(path: Path) -> tuple[np.ndarray, float]:
    """Mono float32 audio at SR and the time of its first sample."""
    chunks, start = [], None
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
        for frame in container.decode(container.streams.audio[0]):
            if start is None:
                start = frame.time or 0.0
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32), float(start or 0.0)


@pytest.fixture(scope="module")
def clip(media: Callable[[str], Path]) -> Clip:
    path = media(CLIP)
    times, desc, ok = _track(path)
    pcm, audio_start = _audio(path)
    return Clip(times - audio_start, desc, ok, pcm)


@pytest.fixture(scope="module")
def trained(clip: Clip) -> TrainedPersonModel:
    features = compute_features(clip.pcm, SR, clip.frame_times)
    holdout = int(np.ceil(len(clip.frame_times) * (1 - HOLDOUT_SHARE)))
    return train_person_model(features, clip.descriptors, clip.tracked, holdout,
                              budget_s=TRAIN_BUDGET_S)


def test_tracking_covers_the_clip(clip: Clip) -> None:
    assert len(clip.frame_times) > 1400
    assert clip.tracked.mean() > 0.95


def test_person_model_beats_the_baselines_on_the_held_out_part(
    trained: TrainedPersonModel, clip: Clip
) -> None:
    m = trained.metrics
    assert m.val_frames >= 0.14 * len(clip.frame_times)
    assert m.train_seconds < TRAIN_BUDGET_S + 1.0  # scoring after the last step
    # Measured: val_r ~0.70, ridge ~0.44, energy ~-0.1 (see the model's report).
    assert m.val_r > m.energy_r + 0.2
    assert m.val_r > m.ridge_r
    assert m.val_r > 0.55


def test_exported_model_runs_on_the_clip_audio(
    trained: TrainedPersonModel, clip: Clip, tmp_path: Path
) -> None:
    runtime = PersonMouthModel.load(export_onnx(trained, tmp_path / "mouth.onnx"))
    holdout = int(np.ceil(len(clip.frame_times) * (1 - HOLDOUT_SHARE)))
    predicted = runtime.predict(clip.pcm, SR, clip.frame_times)[holdout:, 0]
    real = clip.descriptors[holdout:, 0]
    ok = clip.tracked[holdout:]
    assert np.corrcoef(predicted[ok], real[ok])[0, 1] > 0.5
    silent = runtime.predict(np.zeros(2 * SR, np.float32), SR, np.arange(0, 2, 0.04))[:, 0]
    assert np.abs(silent - trained.closed[0]).max() < 0.1 * (trained.high[0] - trained.low[0])


def test_another_persons_audio_falls_under_the_clone_gate(
    clip: Clip, media: Callable[[str], Path]
) -> None:
    """Clone drops the person model when its cross-validated r is at most MIN_MODEL_R (the
    audio is not the person's speech): woman_expressive's audio under the first 30 s of
    ted's mouth must fall under that gate, and ted's own audio must clear it."""
    from livetwin.avatar.clone import MIN_MODEL_R

    n = int(np.searchsorted(clip.frame_times, 30.0))
    times, desc, ok = clip.frame_times[:n], clip.descriptors[:n], clip.tracked[:n]
    other, _ = _audio(media(OTHER_VOICE))
    assert len(other) >= 30 * SR
    r = {}
    for name, pcm in (("own", clip.pcm[: 30 * SR]), ("other", other[: 30 * SR])):
        features = compute_features(pcm, SR, times)
        model = train_person_model(features, desc, ok, budget_s=GATE_BUDGET_S)
        r[name] = model.metrics.val_r
    print(f"cross-validated r, ted's mouth: own audio {r['own']:.3f}, "
          f"another person's {r['other']:.3f} (gate {MIN_MODEL_R})")
    assert r["other"] <= MIN_MODEL_R < r["own"]
