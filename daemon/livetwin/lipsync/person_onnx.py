"""The person audio-to-mouth model as a file: the trained network written out as an ONNX
graph (`export_onnx`, at clone time) and run with onnxruntime (`PersonMouthModel`, at
live time, `say --audio`, and for any voice without phoneme timings). Run time needs
neither torch nor the training code (person_model.py): the graph holds the per-person
normalisation, the spread and the silence gate, the metadata the feature settings."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from livetwin.errors import BundleError, InternalError
from livetwin.lipsync.features import FLOOR_DB, FeatureConfig, compute_features

if TYPE_CHECKING:
    from livetwin.lipsync.person_model import TrainedPersonModel, _EnsembleNet, _MouthNet

F32 = npt.NDArray[np.float32]

ONNX_OPSET = 17
# Descriptor units (aperture spans ~0.1); float32 rounding differences are ~1e-7.
ONNX_TOLERANCE = 1e-4
META_KEY = "livetwin.person_model"
META_VERSION = 1


def export_onnx(model: TrainedPersonModel, path: str | Path) -> Path:
    """Write the model as ONNX (features in dB -> descriptor units) with its settings in
    the metadata, and check that onnxruntime agrees with torch."""
    from livetwin.lipsync.person_model import _EnsembleNet, _MouthNet

    path = Path(path)
    net = model.net
    if not isinstance(net, _MouthNet | _EnsembleNet):
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


def _build_graph(net: _MouthNet | _EnsembleNet, cfg: FeatureConfig) -> onnx.ModelProto:
    """The network written out node by node. Hand-built because torch's exporters are
    either deprecated (TorchScript, warns) or slow and noisy (dynamo, ~10 s) for a
    network this small; `_check_export` guards the two against drifting apart. An ensemble
    is written as one chain per member, averaged before the gate."""
    from livetwin.lipsync.person_model import N_OUT, _EnsembleNet, _MouthNet

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

    members = [m for m in net.members if isinstance(m, _MouthNet)] if isinstance(
        net, _EnsembleNet) else [net]
    const("inv_sqrt2", 1.0 / np.sqrt(2.0))
    const("one", 1.0)
    const("half", 0.5)
    outs = [_member_nodes(m, f"m{j}.", node, const) for j, m in enumerate(members)]
    h = outs[0] if len(outs) == 1 else node(
        "Mul", [node("Sum", outs, "member_sum"), const("inv_members", 1.0 / len(outs))],
        "ungated")
    if isinstance(net, _EnsembleNet):
        centre = const("centre", net.centre.detach().cpu().numpy())
        h = node("Sub", [h, centre], "from_centre")
        h = node("Mul", [h, const("gain", net.gain.detach().cpu().numpy())], "spread")
        h = node("Add", [h, centre], "spread_out")
    first = members[0]
    state = {k: v.detach().cpu().numpy() for k, v in first.state_dict().items()}
    gate = _gate_nodes(first, node, const)
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


def _member_nodes(net: _MouthNet, p: str, node: Callable[..., str],
                  const: Callable[..., str]) -> str:
    """Nodes of one network up to its ungated descriptor; names prefixed with `p`."""
    from torch import nn

    state = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    h = node("Sub", ["features", const(p + "feat_mean", state["feat_mean"])], p + "centred")
    h = node("Mul", [h, const(p + "feat_scale", 1.0 / state["feat_scale"])], p + "scaled")
    h = node("Transpose", [h], p + "chan_first", perm=[0, 2, 1])
    for i, conv in enumerate(net.convs):
        assert isinstance(conv, nn.Conv1d)
        k = int(conv.kernel_size[0])
        w = const(p + f"conv{i}.w", state[f"convs.{i}.weight"])
        b = const(p + f"conv{i}.b", state[f"convs.{i}.bias"])
        c = node("Conv", [h, w, b], p + f"conv{i}", kernel_shape=[k], strides=[2],
                 pads=[k // 2, k // 2])  # fmt: skip
        # Exact (erf) GELU, as torch computes it; opset 17 has no Gelu op.
        e = node("Erf", [node("Mul", [c, "inv_sqrt2"], p + f"g{i}.a")], p + f"g{i}.b")
        g = node("Mul", [c, node("Add", [e, "one"], p + f"g{i}.c")], p + f"g{i}.d")
        h = node("Mul", [g, "half"], p + f"gelu{i}")
    h = node("Flatten", [h], p + "flat", axis=1)
    h = node("Gemm", [h, const(p + "head.w", state["head.weight"]),
                      const(p + "head.b", state["head.bias"])], p + "head", transB=1)  # fmt: skip
    h = node("Mul", [h, const(p + "y_std", state["y_std"])], p + "unscaled")
    h = node("Add", [h, const(p + "y_mean", state["y_mean"])], p + "ungated")
    return h


def _gate_nodes(net: _MouthNet, node: Callable[..., str], const: Callable[..., str]) -> str:
    """Nodes computing `_MouthNet.gate` from the input; returns the gate's name."""
    from livetwin.lipsync.person_model import GATE_HIGH_DB, GATE_LOW_DB

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
    from livetwin.lipsync.person_model import GATE_HIGH_DB, GATE_LOW_DB

    rng = np.random.default_rng(0)
    x = rng.uniform(FLOOR_DB, 0.0, (16, cfg.n_steps, cfg.n_mels)).astype(np.float32)
    x[0] = FLOOR_DB  # silence: gate shut
    x[1] = 0.5 * (GATE_LOW_DB + GATE_HIGH_DB)  # half-open gate
    return x


def _check_export(net: _MouthNet | _EnsembleNet, cfg: FeatureConfig, path: Path) -> None:
    """Raise if onnxruntime's output differs from torch's beyond ONNX_TOLERANCE."""
    import torch

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
            return np.zeros((0, len(self.closed)), np.float32)
        out = self._session.run(None, {"features": feats.mel})[0]
        return np.clip(out, self.low, self.high).astype(np.float32)
