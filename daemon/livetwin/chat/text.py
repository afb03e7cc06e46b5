"""Text folding shared by the safety gate and the answer database.

Chat arrives in any script, width and case, with invisible characters mixed in to dodge
filters. `fold` maps it to one comparable form: NFKC (full-width -> ASCII width),
casefold, traditional -> simplified Chinese (opencc, cached), invisible and control
characters removed, punctuation -> spaces. `tokens` then splits Latin words and turns
Chinese runs into characters and bigrams, which is what both the FTS5 index and the
scorer compare. `detect_lang` is a cheap guess between en, zh and de (the languages the
voice speaks): Han characters -> zh, German letters or function words -> de, else en.
"""

from __future__ import annotations

import functools
import re
import unicodedata

# Bidi overrides/isolates, zero-width characters and other "format" code points (Cf)
# plus C0/C1 controls: never useful in chat, often used to hide words from filters.
_INVISIBLE = re.compile(
    "[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5"
    "\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff"
    "\uffa0\ufff0-\ufffb]"
)
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[a-z0-9\u00c0-\u024f]+|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_GERMAN_WORDS = frozenset(
    "ist das der die den dem des und nicht ich du sie er wir ihr wie viel kostet kosten wo "
    "wann warum was wer welche welcher welches gibt es ein eine einen einem einer mit für "
    "auf hallo bist echt mensch versand versendet farben preis haben habt hat welche gibts "
    "kann können man lange hält lieferung nach deutschland wieviel bitte danke deine dein "
    "dass heute noch auch mir mich dich uns euch hilft gegen oder sind wird werden schon "
    "sehr im vom zum zur aus bei beim über ohne weil wenn aber nur jetzt hier mal ja nein "
    "kein keine allen sag sage gut gute schön".split()
)
_ENGLISH_WORDS = frozenset(
    "the is are you it what how does do this that and to of in for me my your can please "
    "have has there much many which when where why who an be with on at it's i'm its".split()
)


def strip_invisible(text: str) -> str:
    """`text` without control, bidi-override and zero-width characters."""
    return _INVISIBLE.sub("", text.replace("\t", " ").replace("\n", " ").replace("\r", " "))


@functools.lru_cache(maxsize=1)
def _t2s() -> object:
    import opencc

    return opencc.OpenCC("t2s")


@functools.lru_cache(maxsize=4096)
def to_simplified(text: str) -> str:
    """Traditional Chinese characters -> simplified (no-op for text without Han)."""
    if not _HAN.search(text):
        return text
    return str(_t2s().convert(text))  # type: ignore[attr-defined]


def fold(text: str) -> str:
    """The comparable form of `text` (module doc): lower-case, half-width, simplified,
    punctuation as single spaces."""
    text = strip_invisible(unicodedata.normalize("NFKC", text)).casefold()
    text = to_simplified(text)
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        out.append(" " if cat[0] in "PSZC" and ch not in "%" else ch)
    return " ".join("".join(out).split())


def tokens(folded: str) -> list[str]:
    """Words of folded text; a Han run gives its characters and its bigrams."""
    out: list[str] = []
    for m in _WORD.finditer(folded):
        w = m.group()
        if _HAN.match(w):
            out.extend(w)
            out.extend(w[i:i + 2] for i in range(len(w) - 1))
        else:
            out.append(w)
    return out


def has_han(text: str) -> bool:
    """Whether `text` has a Chinese character."""
    return bool(_HAN.search(text))


def contains_phrase(folded: str, phrase: str) -> bool:
    """Whether folded `phrase` occurs in `folded` text: as a substring for Chinese, on word
    boundaries otherwise (so 'hot' does not match 'shot'). A Latin phrase ending in '*'
    matches any word it starts (e.g. 'ship*' -> shipping), one starting with '*' any word
    it ends (German compounds: '*regierung' -> bundesregierung)."""
    if not phrase:
        return False
    if has_han(phrase):
        return phrase in folded
    return phrase_pattern(phrase).search(folded) is not None


@functools.lru_cache(maxsize=8192)
def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """The compiled regex `contains_phrase` uses for a Latin phrase."""
    body = re.escape(phrase.strip("*"))
    tail = "" if phrase.endswith("*") else r"(?![a-z0-9\u00c0-\u024f])"
    head = "" if phrase.startswith("*") else r"(?<![a-z0-9\u00c0-\u024f])"
    return re.compile(rf"{head}{body}{tail}")


def detect_lang(text: str) -> str:
    """en, zh or de: a cheap guess (module doc)."""
    if _HAN.search(text):
        return "zh"
    folded = fold(text)
    if re.search(r"[äöüß]", folded):
        return "de"
    words = folded.split()
    german = sum(w in _GERMAN_WORDS for w in words)
    english = sum(w in _ENGLISH_WORDS for w in words)
    return "de" if german > english else "en"
