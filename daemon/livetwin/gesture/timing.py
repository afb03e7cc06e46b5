"""Word timings estimated from text, for planning without a TTS (`livetwin gestures plan`
without `--voice`, and tests).

A syllable-rate model per language: English and German words last their vowel-group count
(diphthongs as one, a final silent English "e" dropped) at SYLLABLE_RATE syllables per
second; a Chinese character is one syllable. Commas and similar add PAUSE_COMMA_S,
sentence ends PAUSE_END_S. espeak-ng speaks the corpus at about 4 syllables/s (its
default 175 wpm), which is what the rate is set to, so an estimated plan and a real one
place strokes on the same words; the absolute times differ by the TTS's own rhythm."""

# ruff: noqa: RUF001 - Chinese punctuation is the point here

from __future__ import annotations

import re

from livetwin.events import WordTiming

SYLLABLE_RATE = {"en": 4.2, "de": 4.0, "zh": 4.5}
WORD_GAP_S = 0.02
PAUSE_COMMA_S = 0.18
PAUSE_END_S = 0.35
_VOWELS = {"en": re.compile(r"[aeiouy]+"), "de": re.compile(r"(?:ei|ie|au|eu|äu|[aeiouyäöü])+")}
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff]+")
_COMMA = set(",;:、，；：—–")
_END = set(".!?。！？…")


def syllables(word: str, lang: str) -> int:
    """Estimated syllables of one word (at least 1 for a word with a letter or digit)."""
    if _HAN.fullmatch(word):
        return 1
    w = word.lower()
    pattern = _VOWELS["de" if lang == "de" else "en"]
    n = len(pattern.findall(w))
    if lang != "de" and n > 1 and w.endswith("e") and not w.endswith(("le", "ee")):
        n -= 1
    return max(n, 1 if any(ch.isalnum() for ch in w) else 0)


def estimate_words(text: str, lang: str) -> tuple[WordTiming, ...]:
    """Word timings for `text` as a TTS at the model's rate would speak it (module doc).
    Chinese is split per character; punctuation is not a word but adds its pause."""
    rate = SYLLABLE_RATE.get(lang, SYLLABLE_RATE["en"])
    t = 0.0
    out: list[WordTiming] = []
    for m in _TOKEN.finditer(text):
        tok = m[0]
        core = tok.strip("\"'()[]{}«»„“”‘’.,;:!?…、，；：。！？—–-")
        if core and any(ch.isalnum() for ch in core):
            dur = syllables(core, lang) / rate
            out.append(WordTiming(core, round(t, 4), round(t + dur, 4)))
            t += dur + WORD_GAP_S
        tail = tok[-1]
        if tail in _END:
            t += PAUSE_END_S
        elif tail in _COMMA:
            t += PAUSE_COMMA_S
    return tuple(out)
