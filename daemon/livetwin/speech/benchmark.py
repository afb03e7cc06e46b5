"""Speech figures for `livetwin bench`: espeak time to first audio, real-time factor and
word-timing accuracy against the audio's energy onsets, per language.

Timing error, defined: the audio's short-time energy is the RMS over a 2 ms window at
every sample; "sound" is energy above the noise floor, set at 40 dB below the clip's
loudest window (espeak's silence is digital zero, so any floor between -30 and -60 dB
gives the same onsets). A word is measurable when, within +-60 ms of its reported start,
the energy rises from at least 20 ms of silence into sound; its error is that rise
minus the reported start. Words inside continuous speech have no energy onset and are
counted but not measured.
"""

# ruff: noqa: RUF001, RUF003 - Chinese punctuation (，。！？) is the point here

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

import numpy as np

from livetwin.events import FloatArray, SpeechAudio
from livetwin.speech.espeak import EspeakTTS
from livetwin.speech.normalize import normalize

RUNS = 30
_WINDOW_S, _FLOOR_DB, _SILENCE_S, _SEARCH_S = 0.002, -40.0, 0.020, 0.060
_VOCAB = ("today only this blender comes with a free glass jar and two spare blades for "
          "every order placed before midnight so grab yours while the stock lasts because "
          "our studio team tested each kitchen gadget twice and loved the quiet motor "
          "strong steel smooth soup fresh juice morning coffee").split()
TIMING_TEXTS = {
    "en": ["Today this blender costs only $99.", "Order now, and save 20% on the second one.",
           "The glass jar holds 1.5 l, perfect for smoothies."],
    "de": ["Heute kostet der Mixer nur 19,99 €.", "Bestellen Sie jetzt, und sparen Sie 20%.",
           "Der Glasbehälter fasst 1,5 l, ideal für Smoothies."],
    "zh": ["这款搅拌机今天只要99元。", "现在下单，第二件再省20%。",
           "玻璃杯能装1.5升，做果昔正合适。"],
}


def sentence_15(i: int) -> str:
    """A fresh 15-word English sentence for run `i` (fresh, so no cache can help)."""
    rng = random.Random(i)
    return " ".join(rng.choice(_VOCAB) for _ in range(15)).capitalize() + "."


def energy_onsets(pcm: FloatArray, sr: int) -> np.ndarray:
    """Sample indices where short-time energy rises out of >= 20 ms of silence."""
    win = max(1, int(_WINDOW_S * sr))
    energy = np.sqrt(np.convolve(pcm.astype(np.float64) ** 2, np.ones(win) / win, "same"))
    if len(energy) == 0 or energy.max() <= 0:
        return np.zeros(0, dtype=int)
    sound = energy > energy.max() * 10 ** (_FLOOR_DB / 20)
    rises = np.flatnonzero(sound[1:] & ~sound[:-1]) + 1
    need = int(_SILENCE_S * sr)
    silent_before = np.concatenate(([0], np.cumsum(~sound)))
    return np.array([r for r in rises if r >= need and silent_before[r] - silent_before[r - need]
                     == need], dtype=int)


def timing_errors(audio: SpeechAudio) -> tuple[list[float], int]:
    """Signed errors (s) of the measurable words, and how many words there were."""
    onsets = energy_onsets(audio.pcm, audio.sample_rate) / audio.sample_rate
    errors = []
    for w in audio.words:
        near = onsets[np.abs(onsets - w.start) <= _SEARCH_S]
        if len(near):
            errors.append(float(near[np.argmin(np.abs(near - w.start))] - w.start))
    return errors, len(audio.words)


async def _ttfa(tts: EspeakTTS, runs: int) -> dict[str, float]:
    firsts, totals, audio_s = [], [], 0.0
    for i in range(runs):
        t0 = time.perf_counter()
        first = None
        async for audio in tts.stream(sentence_15(i), lang="en"):
            first = first if first is not None else time.perf_counter() - t0
            audio_s += audio.duration
        totals.append(time.perf_counter() - t0)
        firsts.append(first if first is not None else float("nan"))
    ms = np.array(firsts) * 1000
    return {"ttfa_p50_ms": float(np.percentile(ms, 50)),
            "ttfa_p95_ms": float(np.percentile(ms, 95)),
            "rtf": sum(totals) / audio_s, "runs": runs}


async def _timing(tts: EspeakTTS) -> dict[str, dict[str, float]]:
    out = {}
    for lang, texts in TIMING_TEXTS.items():
        errors: list[float] = []
        words = 0
        for text in texts:
            async for audio in tts.stream(normalize(text, lang), lang=lang):
                errs, n = timing_errors(audio)
                errors += errs
                words += n
        abs_ms = [abs(e) * 1000 for e in errors]
        out[lang] = {
            "median_abs_error_ms": statistics.median(abs_ms) if abs_ms else float("nan"),
            "median_signed_error_ms": statistics.median(errors) * 1000 if errors else float("nan"),
            "words_measured": len(errors), "words": words,
        }
    return out


async def _figures(runs: int) -> dict[str, Any]:
    tts = EspeakTTS()
    t0 = time.perf_counter()
    await tts.warm_up(("en", "de", "zh"))
    cold_ms = (time.perf_counter() - t0) * 1000
    figures: dict[str, Any] = await _ttfa(tts, runs)
    figures["cold_start_ms"] = cold_ms
    figures["timing"] = await _timing(tts)
    return {"espeak": figures}


def speech_figures(runs: int = RUNS) -> dict[str, Any]:
    """Measure espeak: TTFA p50/p95 over `runs` fresh 15-word sentences, RTF, and word
    onset error vs energy onsets for en/zh/de."""
    return asyncio.run(_figures(runs))


if __name__ == "__main__":
    import json

    print(json.dumps(speech_figures(), indent=2, ensure_ascii=False))
