"""The person audio-to-mouth model: trained at clone time on the person's own footage
(audio -> the 4-column mouth descriptor of `avatar.face`), exported to ONNX, and run at
live time on TTS audio when the TTS gives no phoneme timings (ARCHITECTURE.md §2, §4).

The network sees each video frame's log-mel context (`features.py`) and predicts the
descriptor of that frame. Per-person normalisation (feature means, descriptor means and
spreads) is part of the network, so the ONNX file maps dB features to descriptor units
on its own; the feature settings travel in the file's metadata.

In silence (digital zeros between TTS lines) a gate built into the network returns the
person's closed mouth. Training runs a fixed schedule (no early stopping), one torch
thread, deterministic for a seed unless a busy machine forces a shorter schedule.

Evaluation follows §4: the frames from `holdout_start` on (the last ~15 % of the footage)
are never trained on, and the model is scored there by the Pearson r of predicted against
real aperture, next to an energy-only baseline and a ridge regression on the same
features.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from livetwin.errors import BundleError, InternalError
from livetwin.lipsync.features import (
    FLOOR_DB,
    HOP_S,
    FeatureConfig,
    FrameFeatures,
    compute_features,
)

F32 = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

N_OUT = 4  # aperture, width, rounding, teeth (avatar.face.DESCRIPTOR_NAMES)
# Aperture is what lip sync is judged on; the other columns regularise the shared layers.
LOSS_WEIGHTS = (2.0, 1.0, 1.0, 1.0)
CHANNELS = 48
DROPOUT = 0.2
INPUT_DROPOUT = 0.1
# dB features are divided by this to bring them near unit scale.
DB_SCALE = 20.0
BATCH = 128
MIN_TRAIN_FRAMES = 50
# A fixed number of steps keeps training deterministic for a seed whatever the machine
# load; budget_s is only a guard (see `_fit`). ~12 ms a step on one core of the
# reference machine, so 400 steps take ~5 s (measured r: 300 ~ 400, 800 +0.01).
STEPS = 400
CALIBRATION_STEPS = 20
# Wall time kept free after training for scoring the held-out frames.
EVAL_RESERVE_S = 0.3
WARMUP_SHARE = 0.15
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-2
# Random level changes (+-dB) so the model does not lean on the absolute loudness.
GAIN_AUG_DB = 6.0
# Silence gate: when the loudest mel band within GATE_STEPS (10 ms steps) either side of
# the frame is below GATE_LOW_DB (dB re the speech level), the output is the closed mouth;
# above GATE_HIGH_DB the network alone. Pauses in real footage measure -37 dB or more
# (room tone), digital silence -60, so the gate acts on silence between TTS lines only.
# (Training on silent examples instead cost ~0.02 r on held-out speech.)
GATE_STEPS = 10
GATE_LOW_DB = -55.0
GATE_HIGH_DB = -45.0
# Frames at or below this aperture percentile define the person's closed mouth.
CLOSED_PERCENTILE = 10.0
INNER_VAL_SHARE = 0.15
# One thread: this network is too small to gain from two, and when the other core is busy
# (clone runs face tracking beside training) two spinning threads run 10x slower.
TORCH_THREADS = 1
RIDGE_ALPHAS = (1e1, 1e2, 1e3, 1e4, 1e5)
ONNX_OPSET = 17
# Descriptor units (aperture spans ~0.1); float32 rounding differences are ~1e-7.
ONNX_TOLERANCE = 1e-4
META_KEY = "livetwin.person_model"
META_VERSION = 1


@dataclass(frozen=True)
class PersonModelMetrics:
    """How the model did on the held-out frames, beside the two baselines of §4."""

    val_r: float  # Pearson r, predicted vs real aperture (nan when undefined)
    energy_r: float  # RMS envelope vs real aperture on the same frames
    ridge_r: float  # ridge regression on the same features
    column_r: tuple[float, ...]  # val r of each descriptor column
    val_frames: int
    train_frames: int
    train_seconds: float
    steps: int
    # The step schedule was cut to fit budget_s on a slow or busy machine; results are
    # then no longer reproducible for the seed.
    shortened: bool


@dataclass
class TrainedPersonModel:
    """A trained network plus what run time needs to use it."""

    net: nn.Module  # dB features (n, steps, mels) -> descriptor units (n, 4)
    config: FeatureConfig
    closed: tuple[float, ...]  # the person's closed-mouth descriptor
    low: tuple[float, ...]  # descriptor range seen in training, for clipping
    high: tuple[float, ...]
    metrics: PersonModelMetrics


class _MouthNet(nn.Module):
    """Strided 1-D convolutions over the time axis of the log-mel context, then a
    linear head; normalisation in and out is built in."""

    feat_mean: torch.Tensor
    y_mean: torch.Tensor
    y_std: torch.Tensor
    closed: torch.Tensor

    def __init__(
        self, cfg: FeatureConfig, feat_mean: F32, y_mean: F32, y_std: F32, closed: F32
    ) -> None:
        super().__init__()
        for name, value in (("feat_mean", feat_mean), ("y_mean", y_mean), ("y_std", y_std),
                            ("closed", closed)):  # fmt: skip
            self.register_buffer(name, torch.from_numpy(np.asarray(value, np.float32)))
        self.gate_window = (
            max(0, cfg.past_steps - GATE_STEPS),
            min(cfg.n_steps, cfg.past_steps + GATE_STEPS + 1),
        )
        self.in_drop = nn.Dropout(INPUT_DROPOUT)
        kernels = (5, 5, 3)
        chans = (cfg.n_mels, CHANNELS, CHANNELS, CHANNELS)
        self.convs = nn.ModuleList(
            nn.Conv1d(chans[i], chans[i + 1], k, stride=2, padding=k // 2)
            for i, k in enumerate(kernels)
        )
        self.drop = nn.Dropout(DROPOUT)
        n = cfg.n_steps
        for k in kernels:
            n = (n + 2 * (k // 2) - k) // 2 + 1
        self.head = nn.Linear(CHANNELS * n, N_OUT)

    def forward_normalised(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised descriptor from dB features (n, steps, mels)."""
        h = self.in_drop((x - self.feat_mean) / DB_SCALE).transpose(1, 2)
        for conv in self.convs:
            h = self.drop(nn.functional.gelu(conv(h)))
        return self.head(h.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Descriptor units from dB features (n, steps, mels), closed in silence."""
        y = self.forward_normalised(x) * self.y_std + self.y_mean
        return self.closed + self.gate(x) * (y - self.closed)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 1): 0 where the frame's surroundings are silent, 1 where there is sound."""
        lo, hi = self.gate_window
        loudest = x[:, lo:hi, :].amax(dim=(1, 2)).unsqueeze(1)
        return ((loudest - GATE_LOW_DB) / (GATE_HIGH_DB - GATE_LOW_DB)).clamp(0.0, 1.0)


def train_person_model(
    features: FrameFeatures,
    targets: F32,
    usable: BoolArray,
    holdout_start: int,
    *,
    budget_s: float = 8.0,
    seed: int = 0,
) -> TrainedPersonModel:
    """Train the audio-to-mouth model on frames before `holdout_start`, score it after."""
    t0 = time.perf_counter()
    y = np.asarray(targets, dtype=np.float32)
    ok = np.asarray(usable, dtype=bool).reshape(-1)
    if y.shape != (len(features), N_OUT) or ok.shape != (len(features),):
        raise ValueError(
            f"need targets ({len(features)}, {N_OUT}) and usable ({len(features)},) for "
            f"{len(features)} frames, got {y.shape} and {ok.shape}"
        )
    train_idx, val_idx = _split(features, ok, holdout_start)
    if len(train_idx) < MIN_TRAIN_FRAMES:
        raise ValueError(f"only {len(train_idx)} usable training frames; need {MIN_TRAIN_FRAMES}")
    x_train, y_train, x_val = features.mel[train_idx], y[train_idx], features.mel[val_idx]
    # The baseline first, so that the training schedule sees what time is left.
    ridge = ridge_baseline(x_train, y_train[:, 0], x_val)
    closed = _closed_descriptor(y_train)
    with _torch_threads(TORCH_THREADS), torch.random.fork_rng():
        torch.manual_seed(seed)  # weight init and dropout, without touching global state
        net = _MouthNet(
            features.config,
            x_train.mean(axis=(0, 1)),
            y_train.mean(axis=0),
            np.maximum(y_train.std(axis=0), 1e-6),
            closed,
        )
        steps, shortened = _fit(net, x_train, y_train, seed, t0 + budget_s - EVAL_RESERVE_S)
        net.eval()
        with torch.no_grad():
            pred = net(torch.from_numpy(x_val)).numpy()
    y_val = y[val_idx]
    metrics = PersonModelMetrics(
        val_r=pearson(pred[:, 0], y_val[:, 0]),
        energy_r=pearson(features.envelope[val_idx], y_val[:, 0]),
        ridge_r=pearson(ridge, y_val[:, 0]),
        column_r=tuple(pearson(pred[:, j], y_val[:, j]) for j in range(N_OUT)),
        val_frames=len(val_idx),
        train_frames=len(train_idx),
        train_seconds=time.perf_counter() - t0,
        steps=steps,
        shortened=shortened,
    )
    return TrainedPersonModel(
        net=net,
        config=features.config,
        closed=tuple(float(v) for v in closed),
        low=tuple(float(v) for v in y_train.min(axis=0)),
        high=tuple(float(v) for v in y_train.max(axis=0)),
        metrics=metrics,
    )


def _split(
    features: FrameFeatures, ok: BoolArray, holdout_start: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Usable training and held-out frame indices. Training frames whose future context
    reaches into the held-out part are dropped too, so no held-out audio is trained on."""
    n = len(features)
    idx = np.arange(n)
    cut = features.frame_times[holdout_start] if holdout_start < n else np.inf
    reach = features.frame_times + features.config.future_steps * HOP_S
    train = ok & (idx < holdout_start) & (reach < cut)
    val = ok & (idx >= holdout_start)
    return idx[train], idx[val]


def _closed_descriptor(y: F32) -> F32:
    """Median descriptor of the frames with the smallest apertures, with the least teeth
    seen (a closed mouth shows none; tracking noise can say otherwise)."""
    low = y[:, 0] <= np.percentile(y[:, 0], CLOSED_PERCENTILE)
    closed = np.median(y[low], axis=0).astype(np.float32)
    closed[3] = min(float(closed[3]), float(y[:, 3].min()))
    return closed


def _fit(net: _MouthNet, x: F32, y: F32, seed: int, deadline: float) -> tuple[int, bool]:
    """Train on a warm-up + cosine schedule of STEPS steps, shortened (once, after timing
    the first CALIBRATION_STEPS) when the machine is too slow to finish by `deadline`.
    Returns (steps done, whether the schedule was shortened)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    batches = _batches(net, x, y, gen)
    weights = torch.tensor(LOSS_WEIGHTS) / sum(LOSS_WEIGHTS) * N_OUT
    net.train()
    total, shortened, start = STEPS, False, time.perf_counter()
    step = 0
    while step < total:
        if step == CALIBRATION_STEPS:
            per_step = (time.perf_counter() - start) / step
            affordable = step + int((deadline - time.perf_counter()) / per_step)
            if affordable < total:
                total, shortened = max(affordable, step + 1), True
        for group in opt.param_groups:
            group["lr"] = _learning_rate(step, total)
        xb, yb = next(batches)
        loss = (((net.forward_normalised(xb) - yb) ** 2) * weights).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    return step, shortened


def _learning_rate(step: int, total: int) -> float:
    """Linear warm-up over WARMUP_SHARE of the steps, then cosine decay to zero."""
    warm = max(1, int(WARMUP_SHARE * total))
    if step < warm:
        return LEARNING_RATE * (step + 1) / warm
    return LEARNING_RATE * 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _batches(
    net: _MouthNet, x: F32, y: F32, gen: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled batches of (dB features, standardised targets), with random level
    changes."""
    xt = torch.from_numpy(x)
    yt = (torch.from_numpy(y) - net.y_mean) / net.y_std
    size = min(BATCH, len(xt))
    while True:
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(perm) - size + 1, size):
            batch = perm[i : i + size]
            gain = (torch.rand(len(batch), 1, 1, generator=gen) * 2 - 1) * GAIN_AUG_DB
            # Louder or quieter speech, floored like real features.
            yield (xt[batch] + gain).clamp(min=FLOOR_DB), yt[batch]


def pearson(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Pearson correlation; nan when either series is constant or shorter than 3."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    z = np.asarray(b, dtype=np.float64).reshape(-1)
    if len(x) < 3 or x.std() < 1e-12 or z.std() < 1e-12:
        return float("nan")
    return float(np.corrcoef(x, z)[0, 1])


def ridge_baseline(x_train: F32, y_train: F32, x_test: F32) -> F32:
    """Ridge regression from flattened features to one target; the penalty is chosen on
    the last INNER_VAL_SHARE of the training frames, then refit on all of them."""
    a = x_train.reshape(len(x_train), -1).astype(np.float64)
    b = x_test.reshape(len(x_test), -1).astype(np.float64)
    mu, sd = a.mean(axis=0), a.std(axis=0) + 1e-6
    a, b = (a - mu) / sd, (b - mu) / sd
    y = np.asarray(y_train, dtype=np.float64)
    cut = int(len(a) * (1.0 - INNER_VAL_SHARE))
    scores = [
        pearson(_ridge_fit(a[:cut], y[:cut], alpha)(a[cut:]), y[cut:]) for alpha in RIDGE_ALPHAS
    ]
    best = RIDGE_ALPHAS[int(np.nanargmax(scores))] if np.isfinite(scores).any() else 1e3
    return _ridge_fit(a, y, best)(b).astype(np.float32)


def _ridge_fit(
    a: npt.NDArray[np.float64], y: npt.NDArray[np.float64], alpha: float
) -> _RidgePredictor:
    """Ridge on centred targets, solved in whichever of the primal (features x features)
    or dual (frames x frames) form is smaller."""
    y_mean = float(y.mean())
    yc = y - y_mean
    n, d = a.shape
    if n < d:
        w = a.T @ np.linalg.solve(a @ a.T + alpha * np.eye(n), yc)
    else:
        w = np.linalg.solve(a.T @ a + alpha * np.eye(d), a.T @ yc)
    return _RidgePredictor(w, y_mean)


@dataclass(frozen=True)
class _RidgePredictor:
    w: npt.NDArray[np.float64]
    bias: float

    def __call__(self, a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return a @ self.w + self.bias


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run with torch's intra-op thread count set to `n`, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def export_onnx(model: TrainedPersonModel, path: str | Path) -> Path:
    """Write the model as ONNX (features in dB -> descriptor units) with its settings in
    the metadata, and check that onnxruntime agrees with torch."""
    path = Path(path)
    net = model.net
    if not isinstance(net, _MouthNet):
        raise TypeError(f"cannot export {type(net).__name__}")
    onnx_model = _build_graph(net, model.config)
    meta = {
        "version": META_VERSION,
        "config": asdict(model.config),
        "closed": list(model.closed),
        "low": list(model.low),
        "high": list(model.high),
    }
    helper.set_model_props(onnx_model, {META_KEY: json.dumps(meta)})
    onnx.checker.check_model(onnx_model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(onnx_model, str(path))
    _check_export(net, model.config, path)
    return path


def _build_graph(net: _MouthNet, cfg: FeatureConfig) -> onnx.ModelProto:
    """The network written out node by node. Hand-built because torch's exporters are
    either deprecated (TorchScript, warns) or slow and noisy (dynamo, ~10 s) for a
    network this small; `_check_export` guards the two against drifting apart."""
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, value: npt.ArrayLike) -> str:
        array = np.asarray(value)
        if array.dtype != np.int64:
            array = array.astype(np.float32)
        inits.append(numpy_helper.from_array(array, name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    state = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    h = node("Sub", ["features", const("feat_mean", state["feat_mean"])], "centred")
    h = node("Mul", [h, const("db_scale", 1.0 / DB_SCALE)], "scaled")
    h = node("Transpose", [h], "chan_first", perm=[0, 2, 1])
    const("inv_sqrt2", 1.0 / np.sqrt(2.0))
    const("one", 1.0)
    const("half", 0.5)
    for i, conv in enumerate(net.convs):
        assert isinstance(conv, nn.Conv1d)
        k = int(conv.kernel_size[0])
        w = const(f"conv{i}.w", state[f"convs.{i}.weight"])
        b = const(f"conv{i}.b", state[f"convs.{i}.bias"])
        c = node("Conv", [h, w, b], f"conv{i}", kernel_shape=[k], strides=[2],
                 pads=[k // 2, k // 2])  # fmt: skip
        # Exact (erf) GELU, as torch computes it; opset 17 has no Gelu op.
        e = node("Erf", [node("Mul", [c, "inv_sqrt2"], f"g{i}.a")], f"g{i}.b")
        g = node("Mul", [c, node("Add", [e, "one"], f"g{i}.c")], f"g{i}.d")
        h = node("Mul", [g, "half"], f"gelu{i}")
    h = node("Flatten", [h], "flat", axis=1)
    h = node("Gemm", [h, const("head.w", state["head.weight"]),
                      const("head.b", state["head.bias"])], "head", transB=1)  # fmt: skip
    h = node("Mul", [h, const("y_std", state["y_std"])], "unscaled")
    h = node("Add", [h, const("y_mean", state["y_mean"])], "ungated")
    gate = _gate_nodes(net, node, const)
    h = node("Mul", [gate, node("Sub", [h, const("closed", state["closed"])], "opening")],
             "gated_opening")  # fmt: skip
    node("Add", [h, "closed"], "descriptor")
    graph = helper.make_graph(
        nodes,
        "person_mouth_model",
        [helper.make_tensor_value_info(
            "features", TensorProto.FLOAT, ["n", cfg.n_steps, cfg.n_mels])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["n", N_OUT])],
        inits,
    )  # fmt: skip
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="livetwin"
    )


def _gate_nodes(net: _MouthNet, node: Callable[..., str], const: Callable[..., str]) -> str:
    """Nodes computing `_MouthNet.gate` from the input; returns the gate's name."""
    lo, hi = net.gate_window
    window = node("Slice", ["features", _ints(const, "gate_lo", lo), _ints(const, "gate_hi", hi),
                            _ints(const, "gate_axis", 1)], "gate_window")  # fmt: skip
    loudest = node("Flatten", [node("ReduceMax", [window], "gate_max", axes=[1, 2], keepdims=1)],
                   "loudest", axis=1)  # fmt: skip
    above = node("Sub", [loudest, const("gate_low", GATE_LOW_DB)], "gate_above")
    ramp = node("Mul", [above, const("gate_slope", 1.0 / (GATE_HIGH_DB - GATE_LOW_DB))], "ramp")
    return node("Clip", [ramp, const("zero", 0.0), "one"], "gate")


def _ints(const: Callable[..., str], name: str, value: int) -> str:
    """An int64 1-element initializer (Slice wants int64 starts/ends/axes)."""
    return const(name, np.array([value], np.int64))


def _probe_features(cfg: FeatureConfig) -> F32:
    """A fixed batch of plausible dB features, silence included, for checking exports."""
    rng = np.random.default_rng(0)
    x = rng.uniform(FLOOR_DB, 0.0, (16, cfg.n_steps, cfg.n_mels)).astype(np.float32)
    x[0] = FLOOR_DB  # silence: gate shut
    x[1] = 0.5 * (GATE_LOW_DB + GATE_HIGH_DB)  # half-open gate
    return x


def _check_export(net: _MouthNet, cfg: FeatureConfig, path: Path) -> None:
    """Raise if onnxruntime's output differs from torch's beyond ONNX_TOLERANCE."""
    x = _probe_features(cfg)
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(x)).numpy()
    got = _session(path).run(None, {"features": x})[0]
    err = float(np.max(np.abs(got - expected)))
    if not err <= ONNX_TOLERANCE:
        raise InternalError(
            f"the exported person model differs from torch by {err:.2g}; please report it"
        )


def _session(path: Path) -> ort.InferenceSession:
    """An onnxruntime session: DirectML on Windows when present, else CPU, one thread
    (the network is tiny and the cores are shared with rendering)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if sys.platform == "win32" and "DmlExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "DmlExecutionProvider")
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


class PersonMouthModel:
    """Run-time person model: audio in, per-frame mouth descriptor out."""

    def __init__(self, session: ort.InferenceSession, meta: dict[str, Any]) -> None:
        if meta.get("version") != META_VERSION:
            raise ValueError(f"unknown model version {meta.get('version')!r}")
        self._session = session
        self.config = FeatureConfig(**meta["config"])
        self.closed = np.asarray(meta["closed"], dtype=np.float32)
        self.low = np.asarray(meta["low"], dtype=np.float32)
        self.high = np.asarray(meta["high"], dtype=np.float32)

    @classmethod
    def load(cls, path: str | Path) -> PersonMouthModel:
        """Open an exported model file."""
        path = Path(path)
        if not path.is_file():
            raise BundleError(f"the person mouth model {path} is missing; clone the avatar again")
        try:
            session = _session(path)
            return cls(session, json.loads(session.get_modelmeta().custom_metadata_map[META_KEY]))
        # onnxruntime's errors (InvalidProtobuf, Fail, ...) share no base but Exception.
        except Exception as exc:
            raise BundleError(
                f"the person mouth model {path} cannot be read ({exc}); clone the avatar again"
            ) from None

    def predict(
        self,
        pcm: npt.NDArray[np.floating],
        sample_rate: int,
        frame_times: npt.ArrayLike,
        ref_db: float | None = None,
    ) -> F32:
        """Mouth descriptor (n_frames, 4) in descriptor units for audio at `frame_times`
        (seconds from the start of `pcm`), clipped to the person's range of motion."""
        feats = compute_features(pcm, sample_rate, frame_times, self.config, ref_db)
        if len(feats) == 0:
            return np.zeros((0, N_OUT), np.float32)
        out = self._session.run(None, {"features": feats.mel})[0]
        return np.clip(out, self.low, self.high).astype(np.float32)
