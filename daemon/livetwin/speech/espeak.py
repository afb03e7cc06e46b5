"""espeak-ng, the embedded default voice: libespeak-ng from the `espeakng-loader` wheel
through ctypes, with phoneme (IPA) and word events at exact sample positions.

The library is process-global and not thread-safe, so one engine object owns it and every
call goes through one lock; synthesis runs in a worker thread so the event loop never
blocks. Text is always passed as plain UTF-8 (never with the SSML flag) and `<`/`>` are
blanked before it reaches the library.
"""

# ruff: noqa: RUF001, RUF003 - Chinese punctuation (，。！？) is the point here

from __future__ import annotations

import asyncio
import ctypes
import re
import threading
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from livetwin.errors import BackendError, BackendTimeout, ConfigError
from livetwin.events import PhonemeTiming, SpeechAudio, WordTiming
from livetwin.speech.base import TTSBackend, VoiceSettings
from livetwin.speech.normalize import canonical_lang, split_sentences

# espeak_ng's speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_CHARS_UTF8 = 0x0001
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_EV_LIST_TERMINATED, _EV_WORD, _EV_PHONEME = 0, 1, 7
_PARAM_RATE, _PARAM_PITCH = 1, 3

DEFAULT_WPM = 175
DEFAULT_PITCH = 50
SILENCE = "_"  # phoneme name of pauses (espeak reports them with an empty IPA name)
DEFAULT_VOICES = {"en": "en-us", "de": "de", "zh": "cmn-latn-pinyin"}
_VOICE_ALIASES = {"en-gb": "en", "en-uk": "en", "zh": "cmn-latn-pinyin", "cmn": "cmn-latn-pinyin"}


class _EventId(ctypes.Union):
    _fields_ = (("number", ctypes.c_int), ("name", ctypes.c_char_p),
                ("string", ctypes.c_char * 8))


class _Event(ctypes.Structure):
    _fields_ = (("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId))


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass
class _Job:
    """One synthesis call: what the callback collects, and the flag that aborts it."""

    cancel: threading.Event
    chunks: list[np.ndarray] = field(default_factory=list)
    # (type, 1-based text position, sample index, IPA name)
    events: list[tuple[int, int, int, str]] = field(default_factory=list)


class _Engine:
    """The process-wide libespeak-ng; only ever used while holding `LIBRARY_LOCK`."""

    def __init__(self) -> None:
        try:
            import espeakng_loader

            self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data = espeakng_loader.get_data_path().encode()
        except (ImportError, OSError, RuntimeError) as exc:
            raise BackendError(
                f"libespeak-ng could not be loaded ({exc}); reinstall espeakng-loader."
            ) from None
        lib = self.lib
        lib.espeak_Initialize.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int)
        lib.espeak_Synth.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                     ctypes.c_void_p, ctypes.c_void_p)
        lib.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
        lib.espeak_SetParameter.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = (ctypes.c_void_p,)
        flags = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
        self.sample_rate = int(lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, flags))
        if self.sample_rate <= 0:
            raise BackendError("libespeak-ng failed to initialise its data; reinstall "
                               "espeakng-loader.")
        self.version = (lib.espeak_Info(None) or b"?").decode()
        self.job: _Job | None = None
        self._callback = _Callback(self._on_audio)  # kept alive: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: ctypes._Pointer[ctypes.c_short], n: int,
                  events: ctypes._Pointer[_Event]) -> int:
        job = self.job
        if job is None:
            return 1
        if wav and n > 0:
            job.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            ev = events[i]
            if ev.type in (_EV_WORD, _EV_PHONEME):
                name = ev.id.string.decode("utf-8", "replace") if ev.type == _EV_PHONEME else ""
                job.events.append((ev.type, ev.text_position, ev.sample, name))
            i += 1
        return 1 if job.cancel.is_set() else 0  # non-zero aborts synthesis mid-sentence

    def synth(self, text: str, voice: str, wpm: int, pitch: int, job: _Job) -> None:
        """Synthesise `text` into `job` (caller holds `LIBRARY_LOCK`)."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ConfigError(f"espeak has no voice {voice!r}; use e.g. "
                              f"{', '.join(DEFAULT_VOICES.values())} (variants: 'en-us+f3').")
        # set afresh each call: another user of the library may have replaced them
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_SetParameter(_PARAM_RATE, wpm, 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
        data = text.encode("utf-8") + b"\0"
        self.job = job
        try:
            rc = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0,
                                       _CHARS_UTF8 | _ENDPAUSE, None, None)
        finally:
            self.job = None
        if rc != 0 and not job.cancel.is_set():
            raise BackendError(f"espeak failed to synthesise (error {rc}).", retryable=True)


#: Held for every call into libespeak-ng in this process. Anyone else using the library
#: (piper's phonemiser) must hold it too: the library has one global state and callback.
LIBRARY_LOCK = threading.Lock()
_engine: _Engine | None = None


def get_engine() -> _Engine:
    """The engine, created on first use (caller holds `LIBRARY_LOCK`)."""
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


# ---------------------------------------------------------------- text -> espeak text


@dataclass(frozen=True)
class _Token:
    """A word of the original text and its character span in the text espeak reads."""

    start: int
    end: int
    word: str


_PUNCT_EDGES = "".join(chr(c) for c in range(0x2000, 0x2070)) + "\"'()[]{},.!?;:«»“”‘’„…-–—"
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_ZH_NUMERALS = set("零一二三四五六七八九十百千万亿两点负")
_ZH_PUNCT = str.maketrans({"，": ",", "。": ".", "！": "!", "？": "?", "、": ",", "；": ";",
                           "：": ":", "“": '"', "”": '"', "（": "(", "）": ")"})


def _blank_unsafe(text: str) -> str:
    """Blank (1:1, so positions hold) what must never reach espeak: markup brackets,
    control characters and symbols espeak would spell out (emoji names)."""
    return "".join(
        " " if ch in "<>" or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "So")
        else ch
        for ch in text
    )


def _word_tokens(text: str) -> list[_Token]:
    out = []
    for m in re.finditer(r"\S+", text):
        word = m[0].strip(_PUNCT_EDGES)
        if any(ch.isalnum() for ch in word):
            out.append(_Token(m.start(), m.end(), word))
    return out


def _zh_words(run: str) -> list[str]:
    """Words of a run of Han characters; numerals joined so 九十九 is one word."""
    from pypinyin.seg.mmseg import seg

    words: list[str] = []
    for word in seg.cut(run):
        if words and set(word) <= _ZH_NUMERALS and set(words[-1]) <= _ZH_NUMERALS:
            words[-1] += word
        else:
            words.append(word)
    return words


def _pinyin(run: str) -> list[str]:
    """One tone-numbered syllable per character ('' where pypinyin has none)."""
    from pypinyin import Style, lazy_pinyin

    # pypinyin accepts a callback returning a list (one item per character); its stubs
    # say str, hence the cast
    blank: Any = lambda chars: [""] * len(chars)  # noqa: E731
    syllables = lazy_pinyin(run, style=Style.TONE3, neutral_tone_with_five=True,
                            tone_sandhi=True, errors=blank)
    if len(syllables) != len(run):  # should not happen; keep the alignment anyway
        syllables = [(lazy_pinyin(ch, style=Style.TONE3, neutral_tone_with_five=True,
                                  errors=blank) or [""])[0] for ch in run]
    return syllables


def _prepare_zh(sentence: str) -> tuple[str, list[_Token]]:
    """Chinese -> pinyin with tone numbers (one espeak word per Chinese word), keeping
    which characters each espeak word came from."""
    parts: list[str] = []
    tokens: list[_Token] = []
    pos = 0

    def add(piece: str, word: str | None) -> None:
        nonlocal pos
        if parts:
            parts.append(" ")
            pos += 1
        parts.append(piece)
        if word:
            tokens.append(_Token(pos, pos + len(piece), word))
        pos += len(piece)

    last = 0
    for m in _HAN.finditer(sentence):
        _add_other(sentence[last:m.start()], add)
        syllables = iter(_pinyin(m[0]))
        for word in _zh_words(m[0]):
            spoken = "".join(next(syllables) for _ in word)
            if spoken:
                add(spoken, word)
        last = m.end()
    _add_other(sentence[last:], add)
    return "".join(parts), tokens


def _add_other(text: str, add: Callable[[str, str | None], None]) -> None:
    """Non-Han text inside Chinese: ASCII punctuation for the pauses, words as they are."""
    for m in re.finditer(r"\S+", _blank_unsafe(text.translate(_ZH_PUNCT))):
        word = m[0].strip(_PUNCT_EDGES)
        add(m[0], word if any(ch.isalnum() for ch in word) else None)


def _prepare(sentence: str, lang: str) -> tuple[str, list[_Token]]:
    """The text espeak reads and the original words with their spans in it."""
    if lang == "zh":
        return _prepare_zh(sentence)
    text = _blank_unsafe(sentence)
    return text, _word_tokens(text)


# ---------------------------------------------------------------- events -> timings


def _phonemes(events: list[tuple[int, int, int, str]], n: int, sr: int
              ) -> tuple[PhonemeTiming, ...]:
    """Each phoneme lasts until the next one starts; pauses are `SILENCE`."""
    marks = [(s, name or SILENCE) for kind, _, s, name in events if kind == _EV_PHONEME]
    if not marks or marks[0][0] > 0:
        marks.insert(0, (0, SILENCE))
    out: list[PhonemeTiming] = []
    for i, (start, name) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else n
        if end <= start or start >= n:
            continue
        if out and name == SILENCE and out[-1].phoneme == SILENCE:
            out[-1] = PhonemeTiming(SILENCE, out[-1].start, min(end, n) / sr)
            continue
        out.append(PhonemeTiming(name, start / sr, min(end, n) / sr))
    return tuple(out)


def _token_at(tokens: list[_Token], pos: int) -> int:
    """Index of the token holding 1-based text position `pos`, or -1."""
    for i, tok in enumerate(tokens):
        if tok.start <= pos - 1 < tok.end:
            return i
    return -1


def _words(events: list[tuple[int, int, int, str]], tokens: list[_Token], n: int,
           sr: int) -> tuple[WordTiming, ...]:
    """A word starts at its first sounding phoneme (the word event comes ~12 ms earlier,
    before any sound) and ends where its last sounding phoneme ends."""
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    phoneme_samples = [s for kind, _, s, _ in events if kind == _EV_PHONEME]
    for kind, pos, sample, name in events:
        idx = _token_at(tokens, pos)
        if idx < 0 or (kind == _EV_PHONEME and not name):
            continue
        if kind == _EV_WORD:
            starts.setdefault(idx, sample)
            continue
        if idx not in ends:  # first sounding phoneme of the word
            starts[idx] = sample
        nxt = next((s for s in phoneme_samples if s > sample), n)
        ends[idx] = max(ends.get(idx, 0), nxt)
    order = sorted(starts, key=lambda i: starts[i])
    out: list[WordTiming] = []
    for k, idx in enumerate(order):
        start = min(starts[idx], n)
        limit = starts[order[k + 1]] if k + 1 < len(order) else n
        end = min(max(ends.get(idx, limit), start), limit, n)
        out.append(WordTiming(tokens[idx].word, start / sr, end / sr))
    return tuple(out)


# ---------------------------------------------------------------- the backend


class EspeakTTS(TTSBackend):
    """espeak-ng voices for en, de and zh (pinyin voice), with word and IPA phoneme
    timings at exact sample positions."""

    name: ClassVar[str] = "espeak"
    gives_timings: ClassVar[bool] = True

    def __init__(self, *, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self.synthesised = 0  # sentences synthesised so far (monitoring, tests)

    @property
    def cache_id(self) -> str:
        """Identifies the engine and its version for caches of its audio."""
        with LIBRARY_LOCK:
            return f"espeak/{get_engine().version}"

    async def stream(self, text: str, *, lang: str, settings: VoiceSettings | None = None
                     ) -> AsyncIterator[SpeechAudio]:
        """Yield one SpeechAudio per sentence, each as soon as it is synthesised."""
        lang = canonical_lang(lang)
        settings = settings or VoiceSettings()
        voice = _voice(lang, settings)
        wpm = int(np.clip(round(DEFAULT_WPM * settings.rate), 80, 450))
        pitch = int(np.clip(round(DEFAULT_PITCH * settings.pitch), 0, 99))
        for sentence in split_sentences(text):
            audio = await self._sentence(sentence, lang, voice, wpm, pitch)
            if audio is not None:
                yield audio

    async def _sentence(self, sentence: str, lang: str, voice: str, wpm: int, pitch: int
                        ) -> SpeechAudio | None:
        job = _Job(cancel=threading.Event())
        try:
            async with asyncio.timeout(self.timeout_s):
                audio = await asyncio.to_thread(self._run, sentence, lang, voice, wpm,
                                                pitch, job)
        except TimeoutError:
            raise BackendTimeout(f"espeak took longer than {self.timeout_s:g} s for one "
                                 "sentence.") from None
        finally:
            job.cancel.set()  # a cancelled consumer stops the worker at its next chunk
        if audio is not None:
            self.synthesised += 1
        return audio

    async def warm_up(self, langs: tuple[str, ...] = ("en",)) -> None:
        """Load the library (and pinyin dictionaries for zh) before the first line."""
        for lang in langs:
            async for _ in self.stream("ok" if lang != "zh" else "好", lang=lang):
                pass

    def _run(self, sentence: str, lang: str, voice: str, wpm: int, pitch: int, job: _Job
             ) -> SpeechAudio | None:
        # pinyin conversion happens here too: its first call loads dictionaries (~150 ms)
        spoken, tokens = _prepare(sentence, lang)
        if not tokens:
            return None
        if not LIBRARY_LOCK.acquire(timeout=self.timeout_s):
            raise BackendTimeout("espeak is busy with another request; try again.")
        try:
            engine = get_engine()
            if job.cancel.is_set():
                return None
            engine.synth(spoken, voice, wpm, pitch, job)
            sr = engine.sample_rate
        finally:
            LIBRARY_LOCK.release()
        pcm = (np.concatenate(job.chunks) if job.chunks else np.zeros(0, np.int16))
        n = len(pcm)
        if n == 0:
            return None
        return SpeechAudio(
            pcm=(pcm.astype(np.float32) / 32768.0),
            sample_rate=sr,
            words=_words(job.events, tokens, n, sr),
            phonemes=_phonemes(job.events, n, sr),
        )


def _voice(lang: str, settings: VoiceSettings) -> str:
    """The espeak voice: the language default, a full name, or a '+variant' of it."""
    voice = settings.voice.strip()
    if not voice or voice.startswith("+"):
        return DEFAULT_VOICES[lang] + voice
    base, plus, variant = voice.partition("+")
    voice = _VOICE_ALIASES.get(base.lower(), base) + plus + variant
    if lang == "zh" and "pinyin" not in voice.lower():
        raise ConfigError(f"espeak voice {voice!r} cannot read Chinese here; use "
                          "'cmn-latn-pinyin' (optionally with a variant such as '+f3').")
    return voice
