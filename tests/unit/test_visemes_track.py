# ruff: noqa: RUF001 - IPA symbols are the point of this file
"""Visemes and the mouth track (issue 3 item 4, ARCHITECTURE.md §4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from livetwin.errors import BundleError
from livetwin.events import PhonemeTiming, SpeechAudio
from livetwin.lipsync.person_onnx import PersonMouthModel
from livetwin.lipsync.track import (
    LEAD_S,
    ONSET_S,
    RELEASE_S,
    MouthRange,
    envelope_lag,
    plan_mouth,
    track_from_energy,
    track_from_phonemes,
)
from livetwin.lipsync.visemes import Viseme, is_known, parse, target, visemes

FPS = 25.0
SR = 16000
RANGE = MouthRange.default()


def _seq(spec: str, start: float = 0.0, dur: float = 0.1) -> list[PhonemeTiming]:
    """Phonemes separated by spaces, each `dur` long, back to back from `start`."""
    out = []
    for i, p in enumerate(spec.split()):
        out.append(PhonemeTiming(p, start + i * dur, start + (i + 1) * dur))
    return out


def _rel(values: np.ndarray) -> np.ndarray:
    return RANGE.relative(values)


# --- visemes -------------------------------------------------------------------------


@pytest.mark.parametrize(("phoneme", "expected"), [
    ("p", (Viseme.BILABIAL,)), ("ˈm", (Viseme.BILABIAL,)), ("f", (Viseme.LABIODENTAL,)),
    ("tʃ", (Viseme.POSTALVEOLAR,)), ("ts.h", (Viseme.POSTALVEOLAR,)),
    ("tɕh", (Viseme.POSTALVEOLAR,)), ("ʈʂ", (Viseme.POSTALVEOLAR,)), ("ts", (Viseme.ALVEOLAR,)),
    ("ˈaʊ", (Viseme.OPEN, Viseme.CLOSE_ROUND)), ("ˈuː", (Viseme.CLOSE_ROUND,)),
    ("yː", (Viseme.CLOSE_ROUND,)), ("ˈøː", (Viseme.MID_ROUND,)), ("ɜː", (Viseme.MID,)),
    ("ˈaiɜ", (Viseme.OPEN, Viseme.SPREAD)),  # pinyin voice: trailing ɜ is a tone
    ("ˈi.5", (Viseme.SCHWA,)), ("n̩", (Viseme.ALVEOLAR,)), ("_", (Viseme.SILENCE,)),
    ("", (Viseme.SILENCE,)), ("(en)", (Viseme.SILENCE,)), ("ɹ", (Viseme.RHOTIC,)),
])  # fmt: skip
def test_phonemes_map_to_classes(phoneme: str, expected: tuple[Viseme, ...]) -> None:
    assert visemes(phoneme) == expected
    assert is_known(phoneme)


def test_unknown_symbols_fall_back_to_neutral_without_raising() -> None:
    for junk in ("☃", "\ufffd", "Q!", "\x00", "ʘǂ", "ab\u0301c" * 20):
        classes, _ = parse(junk)
        assert classes
    assert visemes("☃") == (Viseme.NEUTRAL,)
    assert not is_known("☃")


def test_rounded_vowels_are_rounder_and_narrower_than_spread_ones() -> None:
    for rounded in ("u", "o", "y", "ø"):
        (cls,) = visemes(rounded)
        assert target(cls)[2] > target(Viseme.SPREAD)[2] + 0.5
        assert target(cls)[1] < target(Viseme.SPREAD)[1] - 0.5
    assert target(Viseme.LABIODENTAL)[3] > 0.5  # f v show the upper teeth


_IPA_SCRIPT = r"""
import ctypes, json, sys
import espeakng_loader as loader
lib = ctypes.CDLL(loader.get_library_path())
lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int,
                                      ctypes.c_int]
# AUDIO_OUTPUT_RETRIEVAL = 1 (no sound device)
assert lib.espeak_Initialize(1, 0, loader.get_data_path().encode(), 0) > 0
assert lib.espeak_SetVoiceByName(sys.argv[1].encode()) == 0
buf = ctypes.create_string_buffer(sys.stdin.read().encode())
ptr = ctypes.c_void_p(ctypes.addressof(buf))
out = []
while ptr.value:
    # phonememode: bit 1 = IPA, bits 8-23 = the separator between phonemes
    res = lib.espeak_TextToPhonemes(ctypes.byref(ptr), 1, 0x02 | (ord("_") << 8))
    for word in (res or b"").decode("utf-8", "replace").split():
        out += [p for p in word.split("_") if p]
print(json.dumps(out))
"""


def _espeak_ipa(text: str, voice: str) -> list[str]:
    """Phonemes libespeak-ng emits for `text` (IPA), through ctypes in a child process so
    this test never re-initialises the library under the espeak backend."""
    done = subprocess.run([sys.executable, "-c", _IPA_SCRIPT, voice], input=text,
                          capture_output=True, text=True, timeout=60, check=True)
    return list(json.loads(done.stdout))


TEXTS = {
    "en": ("The quick brown fox jumps over the lazy dog. She sells sea shells by the sea "
           "shore; ninety-nine judges measured the vision of the pleasure boat. Thank you "
           "very much for watching: our blue water bottle costs only nineteen dollars and "
           "ships worldwide with a year of warranty. Who would have thought? Church, "
           "garage, rhythm, button, little, feathers, azure, loyal, early, hour."),
    "de": ("Der schnelle braune Fuchs springt über den faulen Hund. Zwölf Boxkämpfer jagen "
           "Viktor quer über den großen Sylter Deich. Heute kostet die Flasche nur "
           "neunundneunzig Euro; vielen Dank fürs Zuschauen, schönen Abend noch! "
           "Pfannkuchen, Chemie, Bücher, Häuser, Tschüss, Quatsch, Rhythmus, Öl."),
    "cmn-latn-pinyin": (
        "huan1 ying2 da4 jia1 lai2 dao4 zhi2 bo1 jian1. zhe4 ge4 lan2 se4 de shui3 bei1 "
        "ke3 yi3 bao3 wen1 yi4 zheng3 tian1. jin1 tian1 zhi3 yao4 jiu3 shi2 jiu3 yuan2, "
        "shu4 liang4 you3 xian4, xi3 huan1 de peng2 you3 gan3 jin3 xia4 dan1. xie4 xie4 "
        "da4 jia1 de zhi1 chi2, wo3 men ming2 tian1 jian4. lü4 nü3 qu4 xue2 ri4 cong2 "
        "si1 ci2 zai4 cai2 zou3 er2 ruan3 chuang1 que4 shuo1 feng1 hua1 kuai4 guo2 nuan3"),
}


@pytest.mark.parametrize("voice", sorted(TEXTS))
def test_every_phoneme_espeak_emits_maps_to_a_known_class(voice: str) -> None:
    phonemes = _espeak_ipa(TEXTS[voice], voice)
    assert len(phonemes) > 100
    unknown = sorted({p for p in phonemes if not is_known(p)})
    assert not unknown, f"{voice}: unmapped phonemes {unknown}"


# --- the phoneme track ---------------------------------------------------------------


def test_track_length_is_duration_times_fps() -> None:
    for duration in (0.0, 0.04, 1.0, 2.52, 7.3):
        track = track_from_phonemes(_seq("h ə l əʊ"), duration, FPS, RANGE)
        assert track.values.shape == (round(duration * FPS), 4)
        assert track.fps == FPS and track.source == "phonemes"
        assert track.values.dtype == np.float32


def test_silence_closes_the_mouth_and_keeps_it_still() -> None:
    # Speech, a one-second pause, speech; leading and trailing silence.
    phonemes = [*_seq("h ə l əʊ", 0.5), PhonemeTiming("_", 0.9, 1.9), *_seq("w ɜː l d", 1.9)]
    track = track_from_phonemes(phonemes, 3.0, FPS, RANGE)
    t = (np.arange(len(track.values)) + 0.5) / FPS + LEAD_S
    still = ((t < 0.5 - ONSET_S) | ((t > 0.9 + RELEASE_S) & (t < 1.9 - ONSET_S))
             | (t > 2.3 + RELEASE_S))
    assert still.sum() > 30
    assert np.all(track.values[still] == RANGE.closed)
    assert np.all(np.diff(track.values, axis=0)[still[1:] & still[:-1]] == 0.0)
    assert _rel(track.values)[~still, 0].max() > 0.3  # it does speak


def test_bilabials_close_fully_even_when_short() -> None:
    for dur in (0.015, 0.03, 0.08):
        phonemes = [PhonemeTiming("a", 0.2, 0.5), PhonemeTiming("b", 0.5, 0.5 + dur),
                    PhonemeTiming("a", 0.5 + dur, 0.8)]
        rel = _rel(track_from_phonemes(phonemes, 1.0, FPS, RANGE).values)
        t = (np.arange(len(rel)) + 0.5) / FPS + LEAD_S
        near = np.abs(t - (0.5 + dur / 2)) < 0.1
        assert rel[near, 0].min() == pytest.approx(0.0, abs=1e-5), dur
        assert rel[t < 0.45, 0].max() > 0.7  # open on the /a/ before


def test_u_rounds_and_narrows_and_rounding_is_anticipated() -> None:
    def shape(vowel: str) -> np.ndarray:
        phonemes = _seq(f"s t {vowel} {vowel} t", 0.2)
        return _rel(track_from_phonemes(phonemes, 1.0, FPS, RANGE).values)

    u, i = shape("u"), shape("i")
    t = (np.arange(len(u)) + 0.5) / FPS + LEAD_S
    vowel = (t > 0.42) & (t < 0.58)
    assert u[vowel, 2].mean() > i[vowel, 2].mean() + 0.5  # rounding
    assert u[vowel, 1].mean() < i[vowel, 1].mean() - 0.5  # width
    # Rounding starts during the /st/ before the /u/ (anticipatory coarticulation).
    cons = (t > 0.3) & (t < 0.4)
    assert u[cons, 2].mean() > i[cons, 2].mean() + 0.2


def test_shapes_stay_within_the_persons_range() -> None:
    phonemes = _seq("ˈa m ˈuː f ˈiː ʃ ˈɔ tʃ ˈaɪ θ ˈɒ ☃ ɹ w", 0.1, 0.06)
    values = track_from_phonemes(phonemes, 1.5, FPS, RANGE).values
    assert np.all(values >= RANGE.low - 1e-6) and np.all(values <= RANGE.high + 1e-6)


def _synthetic_speech(lag_s: float = 0.0) -> tuple[list[PhonemeTiming], np.ndarray]:
    """Alternating open vowels and bilabials, with audio loud on the vowels, quiet on the
    consonants, silent in pauses; the phoneme timings are shifted by `lag_s`."""
    rng = np.random.default_rng(1)
    phonemes, pcm = [], np.zeros(int(4.0 * SR), np.float32)
    t = 0.3
    while t < 3.5:
        c, v = rng.uniform(0.05, 0.1), rng.uniform(0.08, 0.2)
        phonemes += [PhonemeTiming("m", t + lag_s, t + c + lag_s),
                     PhonemeTiming("a", t + c + lag_s, t + c + v + lag_s)]
        a, b = int((t + c) * SR), int((t + c + v) * SR)
        pcm[a:b] = 0.3 * np.sin(2 * np.pi * 220 * np.arange(b - a) / SR)
        pcm[int(t * SR):a] = 0.01 * rng.standard_normal(a - int(t * SR))
        t += c + v + (0.4 if rng.random() < 0.2 else 0.0)
    return phonemes, pcm


def test_lag_against_the_envelope_is_within_a_frame_and_detects_shifts() -> None:
    phonemes, pcm = _synthetic_speech()
    track = track_from_phonemes(phonemes, len(pcm) / SR, FPS, RANGE)
    assert abs(envelope_lag(track, pcm, SR)) <= 1.0 / FPS
    # Timings that say the sound comes 120 ms later make the mouth late by about that.
    late, _ = _synthetic_speech(0.12)
    lag = envelope_lag(track_from_phonemes(late, len(pcm) / SR, FPS, RANGE), pcm, SR)
    assert lag == pytest.approx(0.12, abs=1.0 / FPS)


def test_envelope_lag_of_a_constant_track_is_nan() -> None:
    track = track_from_phonemes([], 2.0, FPS, RANGE)
    assert np.isnan(envelope_lag(track, np.ones(2 * SR, np.float32), SR))


# --- energy baseline, plan_mouth, range ----------------------------------------------


def test_energy_baseline_is_closed_in_silence_and_opens_on_sound() -> None:
    pcm = np.zeros(3 * SR, np.float32)
    pcm[SR : 2 * SR] = 0.2 * np.sin(2 * np.pi * 200 * np.arange(SR) / SR)
    pcm[2 * SR :] += 1e-4 * np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    track = track_from_energy(pcm, SR, FPS, RANGE)
    assert track.source == "energy" and track.values.shape == (75, 4)
    assert np.all(track.values[:25] == RANGE.closed)  # digital silence
    assert np.all(track.values[51:] == RANGE.closed)  # room noise below the floor
    assert _rel(track.values[27:48])[:, 0].min() > 0.9


def test_plan_mouth_prefers_phonemes_then_the_model_then_energy() -> None:
    pcm = 0.1 * np.sin(np.arange(SR, dtype=np.float32))

    class FakeModel:
        def predict(self, pcm: np.ndarray, sr: int, times: np.ndarray) -> np.ndarray:
            return np.tile(RANGE.closed, (len(times), 1))

    with_timings = SpeechAudio(pcm, SR, phonemes=tuple(_seq("h a")))
    plain = SpeechAudio(pcm, SR)
    model = cast(PersonMouthModel, FakeModel())
    assert plan_mouth(with_timings, FPS, RANGE, model).source == "phonemes"
    assert plan_mouth(plain, FPS, RANGE, model).source == "person-model"
    assert plan_mouth(plain, FPS, RANGE).source == "energy"
    for track in (plan_mouth(with_timings, FPS), plan_mouth(plain, FPS, RANGE, model)):
        assert track.values.shape == (25, 4)


def test_range_from_descriptors_and_bundle(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mouth = np.column_stack([rng.uniform(0, 0.2, 500), rng.uniform(0.4, 0.6, 500),
                             rng.uniform(0.15, 0.2, 500), rng.uniform(0, 0.5, 500)])
    mouth[::7] = np.nan
    usable = np.isfinite(mouth).all(axis=1)
    r = MouthRange.from_descriptors(mouth, usable)
    assert r.closed[0] < 0.02 and r.low[0] == r.closed[0] and r.high[0] > 0.17
    assert np.all(r.high > r.low)
    np.savez(tmp_path / "track.npz", mouth=mouth, usable=usable, times=np.arange(500) / 25.0)
    assert np.allclose(MouthRange.from_bundle(tmp_path).high, r.high)
    with pytest.raises(BundleError):
        MouthRange.from_bundle(tmp_path / "missing.twin")
