"""The person audio-to-mouth model on synthetic speech-like audio: features, training,
held-out discipline, ONNX round trip and silence."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import butter, sosfilt

from livetwin.errors import BundleError
from livetwin.lipsync import person_model
from livetwin.lipsync.features import (
    FLOOR_DB,
    FeatureConfig,
    FrameFeatures,
    compute_features,
    rms_envelope,
)
from livetwin.lipsync.person_model import TrainedPersonModel, train_person_model
from livetwin.lipsync.person_onnx import PersonMouthModel, export_onnx

SR = 16000
FPS = 25.0
SECONDS = 40.0
HOLDOUT_SHARE = 0.15
# Fewer steps than the clone default keeps these tests at a few seconds each while the
# synthetic task is still learnt well.
TEST_STEPS = 150


class Synthetic:
    """Audio whose 500-1500 Hz band is loud while a synthetic mouth is open (the mouth
    leads the sound by 60 ms), plus a louder, unrelated 3-5 kHz band so that plain energy
    is a poor predictor; silent stretches where the mouth is closed."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        n = int(SECONDS * SR)
        t = np.arange(n) / SR
        self.mouth = _syllables(rng, t)
        talk = _band(rng, n, 500, 1500) * np.interp(t - 0.06, t, self.mouth)
        hiss = _band(rng, n, 3000, 5000) * 2.5 * _syllables(rng, t)
        self.silent = ((t > 10.0) & (t < 12.0)) | ((t > 27.0) & (t < 28.5))
        self.mouth[self.silent] = 0.0
        pcm = (talk + hiss) * ~self.silent
        self.pcm = (0.3 * pcm / np.abs(pcm).max()).astype(np.float32)
        self.frame_times = np.arange(int(SECONDS * FPS)) / FPS
        self.t = t

    def targets(self) -> np.ndarray:
        """Descriptor columns: aperture follows the mouth, the others follow or ignore it."""
        ap = np.interp(self.frame_times, self.t, self.mouth)
        return np.stack(
            [0.01 + 0.1 * ap, 0.5 - 0.05 * ap, 0.18 + 0.01 * ap, np.clip(ap - 0.5, 0, 1)],
            axis=1,
        ).astype(np.float32)


def _syllables(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Smooth 0..1 bumps at speech-like rates (about 4 per second)."""
    env = np.zeros_like(t)
    centre = 0.1
    while centre < t[-1]:
        width = rng.uniform(0.05, 0.12)
        near = slice(*np.searchsorted(t, [centre - 4 * width, centre + 4 * width]))
        bump = rng.uniform(0.3, 1.0) * np.exp(-0.5 * ((t[near] - centre) / width) ** 2)
        env[near] = np.maximum(env[near], bump)
        centre += rng.uniform(0.15, 0.4)
    return env


def _band(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    sos = butter(4, [lo, hi], btype="band", fs=SR, output="sos")
    noise = sosfilt(sos, rng.standard_normal(n))
    return np.asarray(noise / noise.std())


@pytest.fixture(scope="module")
def synthetic() -> Synthetic:
    return Synthetic()


@pytest.fixture(scope="module")
def features(synthetic: Synthetic) -> FrameFeatures:
    return compute_features(synthetic.pcm, SR, synthetic.frame_times)


@pytest.fixture(scope="module")
def holdout(synthetic: Synthetic) -> int:
    return int(len(synthetic.frame_times) * (1 - HOLDOUT_SHARE))


UNTRACKED = slice(100, 150)


@pytest.fixture(scope="module")
def usable(features: FrameFeatures) -> np.ndarray:
    ok = np.ones(len(features), bool)
    ok[UNTRACKED] = False  # as if face tracking had failed there
    return ok


@pytest.fixture(scope="module")
def trained(
    synthetic: Synthetic, features: FrameFeatures, usable: np.ndarray, holdout: int
) -> TrainedPersonModel:
    return _train(features, synthetic.targets(), usable, holdout)


def _train(
    features: FrameFeatures, targets: np.ndarray, usable: np.ndarray, holdout: int | None
) -> TrainedPersonModel:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(person_model, "STEPS", TEST_STEPS)
        # A generous budget: the schedule must not be cut, or runs are not comparable.
        model = train_person_model(features, targets, usable, holdout, budget_s=60.0, seed=0)
    assert not model.metrics.shortened
    return model


# --- features ------------------------------------------------------------------------


def test_features_have_one_context_per_frame_at_any_frame_rate(synthetic: Synthetic) -> None:
    times = np.cumsum(np.random.default_rng(1).uniform(0.02, 0.06, 300))
    f = compute_features(synthetic.pcm, SR, times)
    cfg = FeatureConfig()
    assert f.mel.shape == (300, cfg.n_steps, cfg.n_mels)
    assert f.envelope.shape == (300,)
    assert f.mel.dtype == np.float32
    assert f.mel.min() >= FLOOR_DB


def test_audio_outside_the_recording_reads_as_silence(synthetic: Synthetic) -> None:
    f = compute_features(synthetic.pcm, SR, np.array([-5.0, SECONDS + 5.0]))
    assert np.all(f.mel == FLOOR_DB)


def test_features_do_not_depend_on_level_or_sample_rate(synthetic: Synthetic) -> None:
    from scipy.signal import resample_poly

    times = synthetic.frame_times[:200]
    ref = compute_features(synthetic.pcm, SR, times).mel
    quiet = compute_features(0.25 * synthetic.pcm, SR, times).mel
    loud = (ref > FLOOR_DB + 20) & (quiet > FLOOR_DB + 20)
    assert np.abs(ref - quiet)[loud].max() < 0.1
    at_48k = resample_poly(synthetic.pcm, 3, 1).astype(np.float32)
    resampled = compute_features(at_48k, 48000, times).mel
    assert np.median(np.abs(ref - resampled)) < 0.5


def test_silence_is_not_amplified_to_speech_level() -> None:
    hum = (1e-4 * np.random.default_rng(2).standard_normal(SR * 2)).astype(np.float32)
    f = compute_features(hum, SR, np.arange(50) / FPS)
    assert f.ref_db == pytest.approx(-45.0)
    assert f.mel.max() < -20.0


def test_rms_envelope_is_the_rms_over_each_frame() -> None:
    pcm = np.concatenate([np.full(640, 0.5), np.full(640, -0.2), np.zeros(640)])
    env = rms_envelope(pcm.astype(np.float32), SR, np.array([0.0, 0.04, 0.08]))
    np.testing.assert_allclose(env, [0.5, 0.2, 0.0], atol=1e-6)


# --- training and metrics --------------------------------------------------------------


def test_model_learns_the_mouth_from_audio_on_held_out_frames(
    trained: TrainedPersonModel, holdout: int, synthetic: Synthetic
) -> None:
    m = trained.metrics
    assert m.val_frames == len(synthetic.frame_times) - holdout
    assert m.train_frames < holdout
    assert m.val_r > 0.8
    assert m.val_r > m.energy_r + 0.2
    assert m.ridge_r > 0.3  # the reference baseline finds the band too
    assert len(m.column_r) == 4


def test_held_out_and_unusable_frames_are_never_trained_on(
    trained: TrainedPersonModel,
    synthetic: Synthetic,
    features: FrameFeatures,
    usable: np.ndarray,
    holdout: int,
) -> None:
    rng = np.random.default_rng(3)
    targets = synthetic.targets()
    targets[UNTRACKED] = np.nan  # NaN would poison any use of the untracked frames
    targets[holdout:] = rng.uniform(0, 1, targets[holdout:].shape)
    mel = features.mel.copy()
    mel[holdout:] = rng.uniform(FLOOR_DB, 0, mel[holdout:].shape)
    corrupted = _train(replace(features, mel=mel), targets, usable, holdout)
    # Bit-identical weights: also shows that training is deterministic for a seed.
    for (name, a), b in zip(
        trained.net.state_dict().items(), corrupted.net.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert trained.closed == corrupted.closed
    assert np.isfinite(trained.metrics.val_r)
    assert trained.metrics.val_r != corrupted.metrics.val_r  # the held-out part did change


def test_cross_validation_scores_each_frame_unheard_and_the_model_hears_every_frame(
    synthetic: Synthetic, features: FrameFeatures, usable: np.ndarray
) -> None:
    targets = synthetic.targets()
    targets[UNTRACKED] = np.nan
    plain = _train(features, targets, usable, None)
    m = plain.metrics
    assert m.method == "cross-validation"
    assert m.folds == person_model.FOLDS
    assert m.val_frames == m.train_frames == int(usable.sum())  # all frames, out of fold
    assert m.val_r > 0.8
    assert m.val_r > m.energy_r + 0.2
    # Corrupt the audio and targets of fold 2 (and the audio around it): the networks that
    # predict fold 2 are bit-identical, the others learnt from the corrupted frames.
    bounds = np.linspace(0, len(features), person_model.FOLDS + 1).round().astype(int)
    lo, hi = bounds[2], bounds[3]
    rng = np.random.default_rng(5)
    bad = targets.copy()
    bad[lo:hi] = rng.uniform(0, 1, bad[lo:hi].shape)
    mel = features.mel.copy()
    mel[lo:hi] = rng.uniform(FLOOR_DB, 0, mel[lo:hi].shape)
    corrupted = _train(replace(features, mel=mel), bad, usable, None)
    cv_nets = [x.cv_nets for x in (plain, corrupted)]
    assert len(cv_nets[0]) == person_model.FOLDS * person_model.NETS_PER_FOLD
    for k, (a, b) in enumerate(zip(*cv_nets, strict=True)):
        assert _same_weights(a, b) == (k // person_model.NETS_PER_FOLD == 2), k
    # The model itself learnt from every frame, fold 2 included: all its networks changed.
    members = [list(x.net.members) for x in (plain, corrupted)]
    assert len(members[0]) == person_model.FULL_NETS
    assert not any(_same_weights(a, b) for a, b in zip(*members, strict=True))


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(u, v) for u, v in
               zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_a_slow_machine_shortens_the_schedule_to_fit_the_budget(
    synthetic: Synthetic, features: FrameFeatures, usable: np.ndarray, holdout: int
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(person_model, "STEPS", 100_000)  # far more than fits in the budget
        model = train_person_model(features, synthetic.targets(), usable, holdout, budget_s=2.5)
    assert model.metrics.shortened
    assert 20 < model.metrics.steps < 100_000
    assert model.metrics.train_seconds < 2.5 + 1.0  # slack for a busy test machine


def test_a_machine_that_slows_part_way_still_finishes_within_the_budget(
    synthetic: Synthetic, features: FrameFeatures, usable: np.ndarray, holdout: int
) -> None:
    # Fast at first (the schedule is sized from that pace), then every training step
    # takes 25 ms more, as when another process takes the core: a schedule sized once
    # at the start would overrun the budget by seconds.
    budget, slow_from = 2.5, time.perf_counter() + 0.8
    forward = person_model._MouthNet.forward_normalised

    def slowing(self: person_model._MouthNet, x: torch.Tensor) -> torch.Tensor:
        if time.perf_counter() > slow_from:
            time.sleep(0.025)
        return forward(self, x)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(person_model, "STEPS", 2_000)
        mp.setattr(person_model._MouthNet, "forward_normalised", slowing)
        model = train_person_model(features, synthetic.targets(), usable, holdout,
                                   budget_s=budget)
    assert model.metrics.shortened
    assert model.metrics.train_seconds < budget + 1.0  # as above; unchecked pace: +6 s


def test_a_slower_machine_within_the_budget_trains_the_same_model(
    trained: TrainedPersonModel, synthetic: Synthetic, features: FrameFeatures,
    usable: np.ndarray, holdout: int
) -> None:
    # Every step 4 ms slower (about half again), with a process's slow first step on top:
    # the schedule still fits the budget, so it must not change, nor the model.
    forward = person_model._MouthNet.forward_normalised
    calls = {"n": 0}

    def slower(self: person_model._MouthNet, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            calls["n"] += 1
            time.sleep(0.05 if calls["n"] == 1 else 0.004)
        return forward(self, x)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(person_model._MouthNet, "forward_normalised", slower)
        slow = _train(features, synthetic.targets(), usable, holdout)
    assert calls["n"] == slow.metrics.steps == trained.metrics.steps
    assert slow.metrics.train_seconds > trained.metrics.train_seconds
    assert _same_weights(slow.net, trained.net)
    assert slow.gain == trained.gain


def test_training_needs_enough_usable_frames(synthetic: Synthetic, features: FrameFeatures) -> None:
    usable = np.zeros(len(features), bool)
    usable[:10] = True
    with pytest.raises(ValueError, match="usable training frames"):
        train_person_model(features, synthetic.targets(), usable, 500)


# --- export and run time ---------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(trained: TrainedPersonModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "mouth.onnx"
    export_onnx(trained, path)
    return path


def test_onnx_run_time_matches_torch(
    trained: TrainedPersonModel, exported: Path, synthetic: Synthetic
) -> None:
    runtime = PersonMouthModel.load(exported)
    got = runtime.predict(synthetic.pcm, SR, synthetic.frame_times)
    feats = compute_features(synthetic.pcm, SR, synthetic.frame_times)
    with torch.no_grad():
        expected = trained.net(torch.from_numpy(feats.mel)).numpy()
    expected = np.clip(expected, trained.low, trained.high)
    assert got.shape == (len(synthetic.frame_times), 4)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_run_time_accepts_other_sample_rates_and_empty_input(
    exported: Path, synthetic: Synthetic
) -> None:
    from scipy.signal import resample_poly

    runtime = PersonMouthModel.load(exported)
    times = synthetic.frame_times[:100]
    at_16k = runtime.predict(synthetic.pcm[: 4 * SR], SR, times)
    at_44k = runtime.predict(resample_poly(synthetic.pcm[: 4 * SR], 441, 160), 44100, times)
    assert np.corrcoef(at_16k[:, 0], at_44k[:, 0])[0, 1] > 0.95
    assert runtime.predict(synthetic.pcm, SR, np.zeros(0)).shape == (0, 4)


def test_silence_gives_a_closed_mouth(
    trained: TrainedPersonModel, exported: Path, synthetic: Synthetic
) -> None:
    runtime = PersonMouthModel.load(exported)
    closed, span = trained.closed[0], trained.high[0] - trained.low[0]
    # A silent stretch inside speech: frames at least 300 ms from its edges.
    pcm = synthetic.pcm.copy()
    pcm[5 * SR : 7 * SR] = 0.0
    times = np.arange(5.3, 6.7, 1 / FPS)
    inside = runtime.predict(pcm, SR, times)[:, 0]
    assert np.abs(inside - closed).max() < 0.1 * span
    # No speech at all, at a different frame rate.
    none = runtime.predict(np.zeros(3 * SR, np.float32), SR, np.arange(0, 3, 1 / 30))[:, 0]
    assert np.abs(none - closed).max() < 0.1 * span
    # ... while speech opens the mouth well beyond that.
    speech = runtime.predict(synthetic.pcm, SR, synthetic.frame_times)[:, 0]
    assert np.percentile(speech, 90) > closed + 0.3 * span


def test_loading_a_broken_model_file_is_a_bundle_error(tmp_path: Path) -> None:
    bad = tmp_path / "mouth.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BundleError):
        PersonMouthModel.load(bad)
    with pytest.raises(BundleError):
        PersonMouthModel.load(tmp_path / "missing.onnx")


def test_training_examples_get_a_random_straight_tilt_across_the_bands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each training example's bands are raised or lowered along a straight line from the
    lowest band to the highest, by at most TILT_AUG_DB at either end and differently per
    example; the targets are untouched (level changes and mixup off here)."""
    from types import SimpleNamespace

    monkeypatch.setattr(person_model, "GAIN_AUG_DB", 0.0)
    monkeypatch.setattr(person_model, "MIXUP_ALPHA", 0.0)
    rng = np.random.default_rng(0)
    row = rng.uniform(-30.0, -10.0, (31, 40)).astype(np.float32)  # far above FLOOR_DB
    x = np.repeat(row[None], 300, axis=0)
    y = np.repeat(np.array([[0.1, 0.5, 0.2, 0.3]], np.float32), 300, axis=0)
    net = SimpleNamespace(y_mean=torch.zeros(4), y_std=torch.ones(4))
    xb, yb = next(person_model._batches(net, x, y, torch.Generator().manual_seed(1)))  # type: ignore[arg-type]
    change = xb.numpy() - row[None]
    ends = change[:, 0, -1]  # the highest band's change per example
    ramp = np.linspace(-1.0, 1.0, 40)
    assert np.allclose(change, ends[:, None, None] * ramp[None, None, :], atol=1e-4)
    assert np.abs(ends).max() <= person_model.TILT_AUG_DB + 1e-5
    assert ends.std() > person_model.TILT_AUG_DB / 3  # uniform over +-TILT_AUG_DB: sd 0.58 t
    assert (ends > 0).any() and (ends < 0).any()
    assert torch.equal(yb, torch.from_numpy(y[: len(yb)]))


def test_training_targets_lose_half_their_slow_drift_and_keep_the_fast_motion() -> None:
    t = np.arange(1000) / 25.0
    fast = 0.1 * np.sin(2 * np.pi * 4.0 * t)  # syllables
    smile = 0.3 * (t >= 20.0)  # an expression held from 20 s on, that audio cannot tell
    y = np.repeat((fast + smile)[:, None], 4, axis=1).astype(np.float32)
    ok = np.ones(len(t), bool)
    d = person_model.detrended(y, ok, t)
    before, after = slice(100, 450), slice(550, 900)  # over a second from the step
    np.testing.assert_allclose(d[before, 0] - d[before, 0].mean(),
                               fast[before] - fast[before].mean(), atol=0.01)
    step = d[after, 0].mean() - d[before, 0].mean()
    assert step == pytest.approx(0.3 * (1 - person_model.DETREND_SHARE), abs=0.01)
    # frames it may not use (held out, another fold's block) change nothing a second away
    cut = ok.copy()
    cut[500:] = False
    y2 = y.copy()
    y2[500:] = 9.0
    np.testing.assert_array_equal(person_model.detrended(y2, cut, t)[:450],
                                  person_model.detrended(y[:500], ok[:500], t[:500])[:450])


def test_predictions_that_move_less_than_the_person_are_spread_up_to_the_cap() -> None:
    t = np.arange(500) / 25.0
    real = np.stack([0.3 + 0.1 * np.sin(2 * np.pi * f * t) for f in (3, 4, 5, 6)], 1)
    pred = real.mean(0) + (real - real.mean(0)) * np.array([0.7, 0.4, 1.0, 1.2])
    centre, gain = person_model.spread_gain(pred.astype(np.float32), real.astype(np.float32))
    np.testing.assert_allclose(gain, [1 / 0.7, person_model.MAX_GAIN, 1.0, 1.0], rtol=1e-4)
    np.testing.assert_allclose(centre, real.mean(0), atol=1e-6)
    spread = centre + gain * (pred - centre)
    assert spread[:, 0].std() == pytest.approx(real[:, 0].std(), rel=1e-3)
