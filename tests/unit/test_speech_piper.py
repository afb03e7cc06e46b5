"""PiperTTS on a Piper voice the tests build (tests/piper_voice.py): loading, synthesis in
en and de, and how close its phoneme timings land to the voice's true boundaries."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from livetwin.errors import InputError
from livetwin.events import PhonemeTiming, SpeechAudio
from livetwin.speech import piper_align
from livetwin.speech.base import VoiceSettings
from livetwin.speech.piper import ESPEAK, PiperTTS
from tests import piper_voice

SENTENCES = {
    "en": ("en-us", ["Hello world, this costs ninety-nine dollars.",
                     "The quick brown fox jumps over the lazy dog.",
                     "Only today, you get two bottles for the price of one!"]),
    "de": ("de", ["Guten Tag, das kostet neunundneunzig Euro.",
                  "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
                  "Heute bekommen Sie zwei Flaschen zum Preis von einer."]),
}


def speak(tts: PiperTTS, text: str, lang: str, settings: VoiceSettings | None = None
          ) -> list[SpeechAudio]:
    async def go() -> list[SpeechAudio]:
        return [a async for a in tts.stream(text, lang=lang, settings=settings)]

    return asyncio.run(asyncio.wait_for(go(), 30))


def truth(tts: PiperTTS, voice: str, sentence: str, length_scale: float
          ) -> tuple[int, tuple[PhonemeTiming, ...]]:
    """The test voice's exact length and phoneme boundaries for `sentence`."""
    phonemes = ESPEAK.phonemize(voice, sentence)
    ids, spans = tts.phoneme_ids(phonemes)
    samples = piper_voice.token_samples(ids, length_scale=length_scale)
    seq = piper_align.units(phonemes, ESPEAK.phoneme_events(voice, sentence))
    total = int(samples.sum())
    return total, piper_align.from_durations(seq, spans, samples, total,
                                             piper_voice.SAMPLE_RATE)


def boundary_errors(got: tuple[PhonemeTiming, ...], want: tuple[PhonemeTiming, ...]
                    ) -> np.ndarray:
    named_got = [p for p in got if p.phoneme != piper_align.PAUSE]
    named_want = [p for p in want if p.phoneme != piper_align.PAUSE]
    assert [p.phoneme for p in named_got] == [p.phoneme for p in named_want]
    return np.array([abs(a.start - b.start) for a, b in zip(named_got, named_want, strict=True)]
                    + [abs(a.end - b.end) for a, b in zip(named_got, named_want, strict=True)])


def check_cover(audio: SpeechAudio) -> None:
    t = audio.phonemes
    assert t[0].start == 0.0 and abs(t[-1].end - audio.duration) < 1e-9
    assert all(a.end == b.start for a, b in itertools.pairwise(t))  # no gaps
    assert all(p.end > p.start for p in t)  # monotonic
    assert sum(p.phoneme != "_" for p in t) >= 10


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, bool, float], Path]:
    root = tmp_path_factory.mktemp("voices")
    out = {}
    for lang, (voice, _) in SENTENCES.items():
        for durations in (False, True):
            for scale in (1.0, 1.4):
                name = f"{voice}-{int(durations)}-{scale}"
                out[(lang, durations, scale)] = piper_voice.write_voice(
                    root / name, espeak_voice=voice, with_durations=durations,
                    length_scale=scale)
    return out


@pytest.mark.parametrize("lang", ["en", "de"])
def test_speaks_sentence_by_sentence_with_exact_length(voices: dict, lang: str) -> None:
    voice, sentences = SENTENCES[lang]
    tts = PiperTTS(voices[(lang, False, 1.0)])
    out = speak(tts, " ".join(sentences), lang)
    assert len(out) == len(sentences)
    for audio, sentence in zip(out, sentences, strict=True):
        total, _ = truth(tts, voice, sentence, 1.0)
        assert audio.sample_rate == 22050 and audio.pcm.dtype == np.float32
        assert len(audio.pcm) == total  # the model's deterministic output, no more, no less
        check_cover(audio)


@pytest.mark.parametrize("lang", ["en", "de"])
def test_durations_output_gives_exact_timings(voices: dict, lang: str) -> None:
    voice, sentences = SENTENCES[lang]
    tts = PiperTTS(voices[(lang, True, 1.4)])
    for sentence in sentences:
        (audio,) = speak(tts, sentence, lang)
        _, want = truth(tts, voice, sentence, 1.4)
        check_cover(audio)
        assert boundary_errors(audio.phonemes, want).max() < 1e-9


def test_estimated_timings_land_near_the_true_boundaries(voices: dict) -> None:
    """The espeak-proportional + energy method, measured on the test voice."""
    errors = []
    for lang, (voice, sentences) in SENTENCES.items():
        for scale in (1.0, 1.4):
            tts = PiperTTS(voices[(lang, False, scale)])
            for sentence in sentences:
                (audio,) = speak(tts, sentence, lang)
                _, want = truth(tts, voice, sentence, scale)
                check_cover(audio)
                errors.append(boundary_errors(audio.phonemes, want))
    err = np.concatenate(errors) * 1000
    summary = (f"median {np.median(err):.1f} ms, p90 {np.percentile(err, 90):.1f} ms, "
               f"max {err.max():.1f} ms, within 40 ms {np.mean(err <= 40):.0%}")
    print("piper timing error on the test voice:", summary)
    # measured: median ~11 ms, p90 ~80 ms, max ~130 ms (see piper_align's docstring)
    assert np.median(err) <= 40.0, summary
    assert np.percentile(err, 90) <= 120.0, summary


def test_rate_setting_stretches_speech(voices: dict) -> None:
    tts = PiperTTS(voices[("en", False, 1.0)])
    (normal,) = speak(tts, "Hello world.", "en")
    (slow,) = speak(tts, "Hello world.", "en", VoiceSettings(rate=0.5))
    assert slow.duration > 1.8 * normal.duration


def test_multi_speaker_voice_takes_a_speaker(tmp_path: Path) -> None:
    path = piper_voice.write_voice(tmp_path, num_speakers=3)
    (zero,) = speak(PiperTTS(path), "Hello.", "en")
    (two,) = speak(PiperTTS(path, speaker="speaker2"), "Hello.", "en")
    assert len(zero.pcm) == len(two.pcm) and not np.allclose(zero.pcm, two.pcm)
    with pytest.raises(InputError, match="no speaker 'nobody'"):
        PiperTTS(path, speaker="nobody")


def test_missing_voice_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"voice file .*missing\.onnx does not exist"):
        PiperTTS(tmp_path / "missing.onnx")


def test_missing_or_broken_json(tmp_path: Path) -> None:
    path = piper_voice.write_voice(tmp_path)
    config = path.with_name(path.name + ".json")
    config.unlink()
    with pytest.raises(InputError, match=r"config .*test-voice\.onnx\.json does not exist"):
        PiperTTS(path)
    config.write_text(json.dumps({"audio": {}}), encoding="utf-8")
    with pytest.raises(InputError, match="unreadable or incomplete"):
        PiperTTS(path)
    config.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="unreadable or incomplete"):
        PiperTTS(path)


def test_wrong_model_is_not_a_piper_voice(tmp_path: Path) -> None:
    path = piper_voice.write_voice(tmp_path)
    node = helper.make_node("Identity", ["image"], ["output"])
    graph = helper.make_graph(
        [node], "not_piper",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
              str(path))
    with pytest.raises(InputError, match="is not a Piper voice"):
        PiperTTS(path)
    path.write_bytes(b"this is not onnx")
    with pytest.raises(InputError, match="not a readable ONNX model"):
        PiperTTS(path)


def test_language_must_match_the_voice(voices: dict) -> None:
    tts = PiperTTS(voices[("en", False, 1.0)])
    with pytest.raises(InputError, match="speaks en-us, not de"):
        speak(tts, "Guten Tag.", "de")
    with pytest.raises(InputError, match="not supported"):
        speak(tts, "Bonjour.", "fr")
    with pytest.raises(InputError, match="no text"):
        speak(tts, "  ", "en")
