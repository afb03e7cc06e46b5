# ruff: noqa: RUF001, RUF002, RUF003 - IPA symbols are the point of this file
"""IPA phonemes -> viseme classes -> mouth targets relative to the person's range.

A target is the 4-column descriptor of `avatar.face` (aperture, width, rounding, teeth)
in *relative* units: 0 is the low end of the person's own range (closed lips, narrowest
mouth, least protrusion, no teeth), 1 the high end (wide open, widest, most pursed, most
teeth). `track.MouthRange` turns them into descriptor units.

Phoneme names are parsed leniently, as espeak-ng writes them for English, German and the
Mandarin pinyin voice: stress (ˈ ˌ), length (ː ˑ), tone digits and tone letters, syllabic
and other combining marks, aspiration (`ph`, `tsh`, ʰ), language switches (`(en)`) and
espeak's ASCII retroflex/apical notation (`ts.` = ʈʂ, `s.` = ʂ, `i.` = apical i, `o-` =
ɤ). A name holding several vowels (a diphthong `aʊ`, Mandarin `iou`) yields one viseme per
element so the track can move through them. Anything unrecognised maps to NEUTRAL, a
mid shape; nothing here raises.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum


class Viseme(StrEnum):
    """Classes of visibly distinct mouth shapes."""

    SILENCE = "silence"
    BILABIAL = "bilabial"  # p b m: lips closed
    LABIODENTAL = "labiodental"  # f v: lower lip under the upper teeth
    DENTAL = "dental"  # θ ð: tongue between the teeth
    ALVEOLAR = "alveolar"  # t d n l s z ts: slightly open, teeth visible
    POSTALVEOLAR = "postalveolar"  # ʃ ʒ tʃ dʒ ɕ ʂ ʈʂ: lips pushed forward
    VELAR = "velar"  # k g ŋ h x: shape taken from the neighbours
    ROUND_GLIDE = "round_glide"  # w ɥ: tight rounding
    RHOTIC = "rhotic"  # ɹ ɻ: slight rounding
    OPEN = "open"  # a ɑ æ ɐ ʌ
    OPEN_ROUND = "open_round"  # ɒ ɔ
    MID = "mid"  # e ɛ ɜ ɤ
    SCHWA = "schwa"  # ə ɘ, apical Mandarin i
    SPREAD = "spread"  # i ɪ j ɯ: spread lips
    MID_ROUND = "mid_round"  # o ø œ ɵ
    CLOSE_ROUND = "close_round"  # u ʊ y ʏ
    NEUTRAL = "neutral"  # unknown symbols


@dataclass(frozen=True)
class VisemeShape:
    """A class's target and how strongly it holds each column against its neighbours
    (Cohen-Massaro dominance: strength and time constants before/after the segment)."""

    target: tuple[float, float, float, float]  # relative aperture, width, rounding, teeth
    strength: tuple[float, float, float, float]
    anticipation_s: tuple[float, float, float, float]  # dominance decay before the segment
    carryover_s: float  # dominance decay after the segment
    vowel: bool = False


# Consonants specify what they articulate with: lips (bilabials, labiodentals, rounding of
# w and ʃ) strongly, the rest weakly, so a vowel's width and rounding spread over the
# consonants around it. Rounding is anticipated far ahead (~200 ms: lips start rounding
# for /u/ during the consonants before it), the other columns less.
_VOWEL_SPAN = (0.04, 0.06, 0.06, 0.06)
_ROUND_SPAN = (0.04, 0.08, 0.20, 0.06)
_CONS_SPAN = (0.02, 0.04, 0.04, 0.03)
SHAPES: dict[Viseme, VisemeShape] = {
    Viseme.SILENCE: VisemeShape((0.0, 0.4, 0.3, 0.0), (1.0, 1.0, 1.0, 1.0), _VOWEL_SPAN, 0.06),
    Viseme.BILABIAL: VisemeShape((0.0, 0.45, 0.35, 0.0), (3.0, 0.6, 0.4, 3.0), _CONS_SPAN, 0.03),
    Viseme.LABIODENTAL: VisemeShape((0.08, 0.45, 0.2, 0.75), (4.0, 0.6, 0.6, 4.0), _CONS_SPAN,
                                    0.03),
    Viseme.DENTAL: VisemeShape((0.15, 0.55, 0.2, 0.6), (2.0, 0.4, 0.3, 2.0), _CONS_SPAN, 0.03),
    Viseme.ALVEOLAR: VisemeShape((0.12, 0.55, 0.25, 0.55), (1.2, 0.2, 0.2, 1.0), _CONS_SPAN,
                                 0.03),
    Viseme.POSTALVEOLAR: VisemeShape((0.12, 0.3, 0.75, 0.5), (1.2, 1.0, 1.5, 1.0), _ROUND_SPAN,
                                     0.04),
    Viseme.VELAR: VisemeShape((0.2, 0.5, 0.3, 0.2), (1.0, 0.1, 0.1, 0.2), _CONS_SPAN, 0.03),
    Viseme.ROUND_GLIDE: VisemeShape((0.12, 0.05, 1.0, 0.0), (2.0, 2.0, 2.0, 1.0), _ROUND_SPAN,
                                    0.05),
    Viseme.RHOTIC: VisemeShape((0.18, 0.35, 0.6, 0.2), (1.0, 1.0, 1.0, 0.5), _ROUND_SPAN, 0.04),
    Viseme.OPEN: VisemeShape((1.0, 0.65, 0.2, 0.35), (1.0, 1.0, 1.0, 1.0), _VOWEL_SPAN, 0.06,
                             True),
    Viseme.OPEN_ROUND: VisemeShape((0.75, 0.35, 0.6, 0.25), (1.0, 1.0, 1.0, 1.0), _ROUND_SPAN,
                                   0.06, True),
    Viseme.MID: VisemeShape((0.6, 0.7, 0.15, 0.5), (1.0, 1.0, 1.0, 1.0), _VOWEL_SPAN, 0.06,
                            True),
    Viseme.SCHWA: VisemeShape((0.4, 0.5, 0.25, 0.35), (0.7, 0.5, 0.5, 0.7), _VOWEL_SPAN, 0.05,
                              True),
    Viseme.SPREAD: VisemeShape((0.32, 0.95, 0.0, 0.7), (1.0, 1.0, 1.0, 1.0), _VOWEL_SPAN, 0.06,
                               True),
    Viseme.MID_ROUND: VisemeShape((0.5, 0.2, 0.85, 0.15), (1.0, 1.2, 1.2, 1.0), _ROUND_SPAN,
                                  0.06, True),
    Viseme.CLOSE_ROUND: VisemeShape((0.26, 0.05, 1.0, 0.05), (1.0, 1.5, 1.5, 1.0), _ROUND_SPAN,
                                    0.06, True),
    Viseme.NEUTRAL: VisemeShape((0.35, 0.5, 0.3, 0.3), (0.5, 0.3, 0.3, 0.5), _VOWEL_SPAN, 0.05),
}

_V = Viseme
# Symbols after cleaning, longest first when parsing. Affricates are one unit.
SYMBOLS: dict[str, Viseme] = {
    # pauses
    "_": _V.SILENCE, "|": _V.SILENCE, "||": _V.SILENCE, "#": _V.SILENCE,
    # lips
    "p": _V.BILABIAL, "b": _V.BILABIAL, "m": _V.BILABIAL, "ɱ": _V.LABIODENTAL,
    "ɸ": _V.BILABIAL, "β": _V.BILABIAL,
    "f": _V.LABIODENTAL, "v": _V.LABIODENTAL, "ʋ": _V.LABIODENTAL, "pf": _V.LABIODENTAL,
    "θ": _V.DENTAL, "ð": _V.DENTAL,
    # tongue tip
    "t": _V.ALVEOLAR, "d": _V.ALVEOLAR, "n": _V.ALVEOLAR, "l": _V.ALVEOLAR, "s": _V.ALVEOLAR,
    "z": _V.ALVEOLAR, "ɾ": _V.ALVEOLAR, "ɬ": _V.ALVEOLAR, "ɫ": _V.ALVEOLAR, "ts": _V.ALVEOLAR,
    "dz": _V.ALVEOLAR, "ʔ": _V.ALVEOLAR, "ɗ": _V.ALVEOLAR,
    # tongue blade / retroflex: lips forward
    "ʃ": _V.POSTALVEOLAR, "ʒ": _V.POSTALVEOLAR, "tʃ": _V.POSTALVEOLAR, "dʒ": _V.POSTALVEOLAR,
    "ɕ": _V.POSTALVEOLAR, "ʑ": _V.POSTALVEOLAR, "tɕ": _V.POSTALVEOLAR, "dʑ": _V.POSTALVEOLAR,
    "ʂ": _V.POSTALVEOLAR, "ʐ": _V.POSTALVEOLAR, "ʈʂ": _V.POSTALVEOLAR, "ɖʐ": _V.POSTALVEOLAR,
    "ts.": _V.POSTALVEOLAR, "s.": _V.POSTALVEOLAR, "z.": _V.POSTALVEOLAR,
    "ʈ": _V.ALVEOLAR, "ɖ": _V.ALVEOLAR, "ɳ": _V.ALVEOLAR, "ɭ": _V.ALVEOLAR,
    # back of the tongue: the lips follow the neighbours
    "k": _V.VELAR, "ɡ": _V.VELAR, "g": _V.VELAR, "ŋ": _V.VELAR, "x": _V.VELAR, "χ": _V.VELAR,
    "h": _V.VELAR, "ɦ": _V.VELAR, "ç": _V.VELAR, "ɣ": _V.VELAR, "q": _V.VELAR, "c": _V.VELAR,
    "ɟ": _V.VELAR, "ɲ": _V.VELAR, "ʁ": _V.VELAR, "ʀ": _V.VELAR, "r": _V.VELAR, "kx": _V.VELAR,
    # glides and rhotics
    "w": _V.ROUND_GLIDE, "ʍ": _V.ROUND_GLIDE, "ɥ": _V.ROUND_GLIDE,
    "ɹ": _V.RHOTIC, "ɻ": _V.RHOTIC, "ɚ": _V.RHOTIC, "ɝ": _V.RHOTIC, "j": _V.SPREAD,
    # vowels
    "a": _V.OPEN, "ɑ": _V.OPEN, "æ": _V.OPEN, "ɐ": _V.OPEN, "ʌ": _V.OPEN, "ɶ": _V.OPEN_ROUND,
    "ɒ": _V.OPEN_ROUND, "ɔ": _V.OPEN_ROUND,
    "e": _V.MID, "ɛ": _V.MID, "ɜ": _V.MID, "ɤ": _V.MID, "o-": _V.MID, "ɞ": _V.MID,
    "ə": _V.SCHWA, "ɘ": _V.SCHWA, "i.": _V.SCHWA, "ɿ": _V.SCHWA, "ʅ": _V.SCHWA, "ᵻ": _V.SCHWA,
    "i": _V.SPREAD, "ɪ": _V.SPREAD, "ɨ": _V.SPREAD, "ɯ": _V.SPREAD,
    "o": _V.MID_ROUND, "ø": _V.MID_ROUND, "œ": _V.MID_ROUND, "ɵ": _V.MID_ROUND,
    "u": _V.CLOSE_ROUND, "ʊ": _V.CLOSE_ROUND, "y": _V.CLOSE_ROUND, "ʏ": _V.CLOSE_ROUND,
    "ʉ": _V.CLOSE_ROUND,
}  # fmt: skip
_BY_LENGTH = sorted(SYMBOLS, key=len, reverse=True)
# Marks that change nothing visible: stress, length, tone letters, ties, syllable breaks.
_IGNORED = set("ˈˌ'ːˑ:˥˦˧˨˩ʰʲʷˠˤ˞‿͡-=~^*!\u200d") | set("12345")
# espeak's tone notation in the pinyin voice writes a tone as a trailing ɜ or digit after
# the syllable's vowel (`aiɜ`, `ɑ5`); a lone or lengthened ɜ is the English NURSE vowel.
_TONE_SUFFIX = re.compile(r"(?<=[aeiouyɑəɛɔæʊɪ.\-])ɜ(?!ː)$")
_LANGUAGE_SWITCH = re.compile(r"\([a-z\-]+\)")


def _clean(phoneme: str) -> str:
    text = _LANGUAGE_SWITCH.sub("", phoneme)
    text = unicodedata.normalize("NFD", text.replace("\ufffd", ""))
    # Combining marks (syllabic, nasal, tone diacritics) sit in category Mn.
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    text = unicodedata.normalize("NFC", text).strip().strip("\u0000")
    text = _TONE_SUFFIX.sub("", text)
    # Aspiration after a consonant (`ph`, `tsh`, `ts.h`): the lips do the same thing.
    text = re.sub(r"(?<=[ptkcq.sɕ])h", "", text)
    return text


def parse(phoneme: str) -> tuple[tuple[Viseme, ...], bool]:
    """Viseme classes of the elements of one phoneme name, and whether every symbol in it
    was recognised. Empty or pause-only names give (SILENCE,)."""
    text = _clean(phoneme)
    out: list[Viseme] = []
    known = True
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        for sym in _BY_LENGTH:
            if text.startswith(sym, i):
                if not out or out[-1] != SYMBOLS[sym] or SYMBOLS[sym] == Viseme.SILENCE:
                    out.append(SYMBOLS[sym])
                i += len(sym)
                break
        else:
            if ch not in _IGNORED and ch != ".":
                known = False
                out.append(Viseme.NEUTRAL)
            i += 1
    if not out:
        return (Viseme.SILENCE,), known
    visible = [v for v in out if v != Viseme.SILENCE]
    return (tuple(visible) if visible else (Viseme.SILENCE,)), known


def visemes(phoneme: str) -> tuple[Viseme, ...]:
    """Viseme classes of one phoneme name, one per element (diphthongs give several)."""
    return parse(phoneme)[0]


def is_known(phoneme: str) -> bool:
    """Whether every symbol of the phoneme name maps to a class (no NEUTRAL fallback)."""
    return parse(phoneme)[1]


def target(viseme: Viseme) -> tuple[float, float, float, float]:
    """The class's relative target (aperture, width, rounding, teeth), each in 0..1."""
    return SHAPES[viseme].target
