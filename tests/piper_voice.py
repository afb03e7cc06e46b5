"""A small, valid Piper voice built by the tests themselves (no model download).

The ONNX graph takes Piper's inputs (`input` int64 [1, n], `input_lengths` int64 [1],
`scales` float32 [3], and `sid` int64 [1] for multi-speaker voices) and returns `output`
float32 [1, 1, samples]. Each phoneme id becomes a tone burst: its length is a fixed
number of 256-sample frames per id (times `length_scale`, rounded up like Piper's
`w_ceil`), its pitch depends on the id, and pad/BOS/EOS/space/stress/punctuation ids are
silent, so the audio is deterministic and the true phoneme boundaries are known exactly
(`token_samples`). `with_durations=True` also exposes the per-id frame counts as a second
output, the way `piper.patch_voice_with_alignment` does for real voices.
"""

from __future__ import annotations

import json
import math
import unicodedata
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

SAMPLE_RATE = 22050
HOP = 256

PAD, BOS, EOS = "_", "^", "$"
PUNCTUATION = list("!'(),-.:;?")
STRESS = ["ˈ", "ˌ"]  # noqa: RUF001
LENGTH = "ː"  # noqa: RUF001
VOWELS = set("aeiouyæøœɐɑɒɔəɘɚɛɜɞɤɨɪɯɵʉʊʌʏᵻ")  # noqa: RUF001
# The IPA symbols espeak-ng 1.52 writes for English and German (after NFD, as Piper
# decomposes them), plus the rest of the common inventory, so a test voice covers any
# test sentence in those languages.
IPA = [*list(
    "abcdefhijklmnopqrstuvwxyzæçðøħŋœɐɑɒɓɔɕɖɗɘəɚɛɜɞɟɠɡɢɣɤɥɦɧɨɪɫɬɭɮɯɰɱɲɳɴɵɶɸɹɺɻɽɾ"  # noqa: RUF001
    "ʀʁʂʃʄʈʉʊʋʌʍʎʏʐʑʒʔʕʘʙʛʜʝʟʡʢʲˑ˞βθχᵻⱱ"
), "\u0327", "\u0303", "\u032a", "\u032f", "\u0329", "ʰ", "ˤ", "ε", "↓", "#", '"', "↑"]


def phoneme_id_map() -> dict[str, list[int]]:
    """Piper's layout: pad 0, BOS 1, EOS 2, space 3, punctuation, then the IPA symbols."""
    symbols = [PAD, BOS, EOS, " ", *PUNCTUATION, *STRESS, LENGTH]
    symbols += [s for s in IPA if s not in symbols]
    return {symbol: [index] for index, symbol in enumerate(symbols)}


def _tables(id_map: dict[str, list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames, pitch (Hz) and amplitude per id."""
    size = max(ids[0] for ids in id_map.values()) + 1
    frames = np.zeros(size, np.float32)
    pitch = np.zeros(size, np.float32)
    amp = np.zeros(size, np.float32)
    for symbol, (i,) in id_map.items():
        if symbol in (PAD, *STRESS) or unicodedata.combining(symbol):
            frames[i] = 0.0  # like a real voice, these take (almost) no time
        elif symbol == BOS:
            frames[i] = 3.0
        elif symbol == EOS:
            frames[i] = 5.0
        elif symbol == " ":
            frames[i] = 0.0
        elif symbol in PUNCTUATION:
            frames[i] = 10.0  # a clause pause
        elif symbol == LENGTH:
            frames[i], pitch[i], amp[i] = 2.0, 180.0, 0.4
        else:
            # fixed per id and unlike espeak's context-dependent durations, so the
            # proportional estimate is off by tens of ms until it is refined
            frames[i] = (6.0 if symbol in VOWELS else 4.0) + (i * 7) % 2
            pitch[i] = 160.0 + 53.0 * ((i * 11) % 37)
            amp[i] = 0.5
    return frames, pitch, amp


def build_model(*, num_speakers: int = 1, with_durations: bool = False,
                inputs: tuple[str, ...] = ("input", "input_lengths", "scales")
                ) -> onnx.ModelProto:
    """The ONNX graph of the test voice (see the module docstring)."""
    frames, pitch, amp = _tables(phoneme_id_map())
    f = TensorProto.FLOAT
    i64 = TensorProto.INT64
    const = helper.make_tensor
    nodes = [
        helper.make_node("Squeeze", ["input", "axis0"], ["ids"]),
        helper.make_node("Gather", ["frame_table", "ids"], ["frames"]),
        helper.make_node("Gather", ["scales", "one"], ["length_scale"]),
        helper.make_node("Mul", ["frames", "length_scale"], ["w"]),
        helper.make_node("Ceil", ["w"], ["w_ceil"]),
        helper.make_node("Mul", ["w_ceil", "hop"], ["nf"]),
        helper.make_node("Cast", ["nf"], ["n"], to=i64),
        helper.make_node("CumSum", ["n", "zero"], ["ends"]),
        helper.make_node("Sub", ["ends", "n"], ["starts"]),
        helper.make_node("ReduceSum", ["n", "axis0"], ["total"], keepdims=1),
        helper.make_node("Squeeze", ["total", "axis0"], ["total0"]),
        helper.make_node("Range", ["zero", "total0", "one"], ["t"]),
        helper.make_node("Unsqueeze", ["t", "one_axis"], ["t_col"]),
        helper.make_node("Unsqueeze", ["ends", "axis0"], ["ends_row"]),
        helper.make_node("LessOrEqual", ["ends_row", "t_col"], ["past"]),
        helper.make_node("Cast", ["past"], ["past_i"], to=i64),
        helper.make_node("ReduceSum", ["past_i", "one_axis"], ["token"], keepdims=0),
        helper.make_node("Gather", ["ids", "token"], ["sample_id"]),
        helper.make_node("Gather", ["pitch_table", "sample_id"], ["hz0"]),
        helper.make_node("Gather", ["amp_table", "sample_id"], ["a"]),
        helper.make_node("Gather", ["starts", "token"], ["t0"]),
        helper.make_node("Sub", ["t", "t0"], ["local_i"]),
        helper.make_node("Cast", ["local_i"], ["local"], to=f),
        helper.make_node("Mul", ["local", "two_pi_over_sr"], ["phase0"]),
    ]
    if num_speakers > 1:
        nodes += [
            helper.make_node("Cast", ["sid"], ["sid_f"], to=f),
            helper.make_node("Mul", ["sid_f", "tenth"], ["sid_shift"]),
            helper.make_node("Add", ["sid_shift", "onef"], ["sid_factor"]),
            helper.make_node("Mul", ["hz0", "sid_factor"], ["hz"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["hz0"], ["hz"]))
    nodes += [
        helper.make_node("Mul", ["phase0", "hz"], ["phase"]),
        helper.make_node("Sin", ["phase"], ["s"]),
        helper.make_node("Mul", ["s", "a"], ["y"]),
        helper.make_node("Reshape", ["y", "out_shape"], ["output"]),
    ]
    outputs = [helper.make_tensor_value_info("output", f, [1, 1, None])]
    if with_durations:
        nodes.append(helper.make_node("Reshape", ["w_ceil", "out_shape"], ["durations"]))
        outputs.append(helper.make_tensor_value_info("durations", f, [1, 1, None]))
    initializers = [
        const("axis0", i64, [1], [0]),
        const("one_axis", i64, [1], [1]),
        const("zero", i64, [], [0]),
        const("one", i64, [], [1]),
        const("hop", f, [], [float(HOP)]),
        const("two_pi_over_sr", f, [], [2.0 * math.pi / SAMPLE_RATE]),
        const("tenth", f, [], [0.1]),
        const("onef", f, [], [1.0]),
        const("out_shape", i64, [3], [1, 1, -1]),
        const("frame_table", f, [len(frames)], frames.tolist()),
        const("pitch_table", f, [len(pitch)], pitch.tolist()),
        const("amp_table", f, [len(amp)], amp.tolist()),
    ]
    declared = {
        "input": helper.make_tensor_value_info("input", i64, [1, None]),
        "input_lengths": helper.make_tensor_value_info("input_lengths", i64, [1]),
        "scales": helper.make_tensor_value_info("scales", f, [3]),
        "sid": helper.make_tensor_value_info("sid", i64, [1]),
    }
    names = list(inputs) + (["sid"] if num_speakers > 1 else [])
    graph = helper.make_graph(nodes, "piper_test_voice", [declared[n] for n in names],
                              outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def config(*, espeak_voice: str = "en-us", num_speakers: int = 1,
           length_scale: float = 1.0) -> dict[str, object]:
    """The voice's `.onnx.json`, in the layout of Piper's own voices."""
    cfg: dict[str, object] = {
        "audio": {"sample_rate": SAMPLE_RATE, "quality": "test"},
        "espeak": {"voice": espeak_voice},
        "language": {"code": espeak_voice.replace("-", "_")},
        "inference": {"noise_scale": 0.667, "length_scale": length_scale, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "phoneme_map": {},
        "phoneme_id_map": phoneme_id_map(),
        "num_symbols": len(phoneme_id_map()),
        "num_speakers": num_speakers,
        "speaker_id_map": {f"speaker{i}": i for i in range(num_speakers)}
        if num_speakers > 1 else {},
        "piper_version": "1.0.0",
    }
    return cfg


def write_voice(directory: Path, name: str = "test-voice", **options: object) -> Path:
    """Write `name.onnx` and `name.onnx.json` into `directory`; return the .onnx path.

    Options: espeak_voice, num_speakers, length_scale, with_durations, inputs."""
    directory.mkdir(parents=True, exist_ok=True)
    model_options = {k: options[k] for k in ("num_speakers", "with_durations", "inputs")
                     if k in options}
    config_options = {k: options[k] for k in ("espeak_voice", "num_speakers", "length_scale")
                      if k in options}
    path = directory / f"{name}.onnx"
    onnx.save(build_model(**model_options), str(path))  # type: ignore[arg-type]
    path.with_name(path.name + ".json").write_text(
        json.dumps(config(**config_options), ensure_ascii=False), encoding="utf-8")  # type: ignore[arg-type]
    return path


def token_samples(ids: list[int], *, length_scale: float = 1.0) -> np.ndarray:
    """How many samples the test voice makes for each id (the true alignment)."""
    frames, _, _ = _tables(phoneme_id_map())
    w = np.ceil(frames[np.asarray(ids)] * np.float32(length_scale))
    return (w * HOP).astype(np.int64)
