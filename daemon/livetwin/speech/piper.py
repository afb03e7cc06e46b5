"""Piper voices (`voice.onnx` + `voice.onnx.json`) run through onnxruntime, with timings.

Text is phonemised the way Piper itself does it: espeak-ng IPA per clause, the clause's
punctuation kept, decomposed into codepoints (NFD), each codepoint mapped through the
voice's `phoneme_id_map`, framed as BOS, pad after every symbol, EOS. Timings come from
the model's duration output when it has one, else from espeak's durations refined on the
audio (see `piper_align`).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import re
import sys
import threading
import unicodedata
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from livetwin.errors import BackendError, InputError
from livetwin.events import SpeechAudio
from livetwin.speech import piper_align
from livetwin.speech.base import TTSBackend, VoiceSettings
from livetwin.speech.espeak import LIBRARY_LOCK
from livetwin.speech.espeak import get_engine as _espeak_engine
from livetwin.speech.normalize import sentences_to_speak

BOS, EOS, PAD = "^", "$", "_"
DEFAULT_HOP = 256  # samples per duration frame in Piper's VITS voices
_REQUIRED_INPUTS = ("input", "input_lengths", "scales")
_LANG_PREFIXES = {"en": ("en",), "de": ("de",), "zh": ("cmn", "zh", "yue")}


@dataclass(frozen=True)
class PiperVoiceConfig:
    """What livetwin reads from a Piper voice's `.onnx.json`."""

    sample_rate: int
    espeak_voice: str
    phoneme_id_map: dict[str, list[int]]
    noise_scale: float = 0.667
    length_scale: float = 1.0
    noise_w: float = 0.8
    num_speakers: int = 1
    speaker_id_map: dict[str, int] | None = None
    hop_length: int = DEFAULT_HOP

    @classmethod
    def load(cls, path: Path) -> PiperVoiceConfig:
        """Read and check a voice config; InputError says what is wrong with it."""
        if not path.is_file():
            raise InputError(f"Piper voice config {path} does not exist; put the voice's "
                             ".onnx.json file next to its .onnx file.")
        try:
            raw: Any = json.loads(path.read_text(encoding="utf-8"))
            inference = raw.get("inference", {})
            return cls(
                sample_rate=int(raw["audio"]["sample_rate"]),
                espeak_voice=str(raw["espeak"]["voice"]),
                phoneme_id_map={str(k): [int(i) for i in v]
                                for k, v in raw["phoneme_id_map"].items()},
                noise_scale=float(inference.get("noise_scale", 0.667)),
                length_scale=float(inference.get("length_scale", 1.0)),
                noise_w=float(inference.get("noise_w", 0.8)),
                num_speakers=int(raw.get("num_speakers", 1)),
                speaker_id_map={str(k): int(v)
                                for k, v in (raw.get("speaker_id_map") or {}).items()},
                hop_length=int(raw.get("hop_length", DEFAULT_HOP)),
            )
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
                ValueError, AttributeError) as exc:
            raise InputError(f"Piper voice config {path} is unreadable or incomplete "
                             f"({type(exc).__name__}: {exc}); use the .onnx.json that came "
                             "with the voice.") from None


class PiperTTS(TTSBackend):
    """A Piper voice given by the user; sentence by sentence, with phoneme timings."""

    name = "piper"
    gives_timings = True

    def __init__(self, model: str | Path, config: str | Path | None = None, *,
                 speaker: str | int | None = None, threads: int = 1,
                 providers: Sequence[str] | None = None) -> None:
        self.model_path = Path(model).expanduser()
        config_path = Path(config).expanduser() if config else Path(f"{self.model_path}.json")
        if not self.model_path.is_file():
            raise InputError(f"Piper voice file {self.model_path} does not exist; give the "
                             "path of a Piper .onnx voice (with its .onnx.json beside it).")
        self.config = PiperVoiceConfig.load(config_path)
        self._session = _open_session(self.model_path, threads, providers)
        self._speaker = self._speaker_id(speaker)
        self._has_sid = any(i.name == "sid" for i in self._session.get_inputs())
        self._lock = threading.Lock()  # one inference at a time per session

    def _speaker_id(self, speaker: str | int | None) -> int | None:
        if self.config.num_speakers <= 1:
            return None
        if speaker is None or speaker == "":
            return 0
        if isinstance(speaker, int) or str(speaker).isdigit():
            sid = int(speaker)
        elif self.config.speaker_id_map and speaker in self.config.speaker_id_map:
            sid = self.config.speaker_id_map[speaker]
        else:
            known = ", ".join(sorted(self.config.speaker_id_map or {})) or "none"
            raise InputError(f"Piper voice {self.model_path.name} has no speaker "
                             f"{speaker!r}; choose one of: {known}.")
        if not 0 <= sid < self.config.num_speakers:
            raise InputError(f"Piper voice {self.model_path.name} has speakers 0 to "
                             f"{self.config.num_speakers - 1}, not {sid}.")
        return sid

    async def stream(self, text: str, *, lang: str, settings: VoiceSettings | None = None
                     ) -> AsyncIterator[SpeechAudio]:
        """Yield one SpeechAudio (with phoneme timings) per sentence of `text`."""
        self._check_lang(lang)
        settings = settings or VoiceSettings()
        sentences = sentences_to_speak(text)
        for sentence in sentences:
            yield await asyncio.to_thread(self.synthesize, sentence, settings)

    def _check_lang(self, lang: str) -> None:
        voice = self.config.espeak_voice.lower()
        prefixes = _LANG_PREFIXES.get(lang)
        if prefixes is None:
            raise InputError(f"Language {lang!r} is not supported; use one of en, de, zh.")
        if not voice.startswith(prefixes):
            raise InputError(f"Piper voice {self.model_path.name} speaks "
                             f"{self.config.espeak_voice}, not {lang}; choose a {lang} voice.")

    def synthesize(self, sentence: str, settings: VoiceSettings | None = None) -> SpeechAudio:
        """One sentence to audio with phoneme timings (blocking)."""
        settings = settings or VoiceSettings()
        phonemes = ESPEAK.phonemize(self.config.espeak_voice, sentence)
        ids, cp_tokens = self.phoneme_ids(phonemes)
        if len(ids) <= 3:
            return SpeechAudio(np.zeros(0, np.float32), self.config.sample_rate)
        pcm, durations = self._infer(ids, settings)
        seq = piper_align.units(phonemes, ESPEAK.phoneme_events(self.config.espeak_voice,
                                                                sentence))
        timings = None
        if durations is not None:
            samples = self._samples_per_token(durations, len(ids), len(pcm))
            if samples is not None:
                timings = piper_align.from_durations(seq, cp_tokens, samples, len(pcm),
                                                     self.config.sample_rate)
        if timings is None:
            timings = piper_align.estimate(pcm, self.config.sample_rate, seq)
        return SpeechAudio(pcm, self.config.sample_rate, phonemes=timings)

    def phoneme_ids(self, phonemes: Sequence[str]) -> tuple[list[int], list[range]]:
        """Piper's ids for `phonemes` (BOS, pad after each, EOS) and each codepoint's
        token positions; codepoints the voice does not know are skipped, as Piper does."""
        id_map = self.config.phoneme_id_map
        pad = id_map.get(PAD, [])
        ids = [*id_map.get(BOS, []), *pad]
        spans: list[range] = []
        for cp in phonemes:
            start = len(ids)
            if cp in id_map:
                ids += [*id_map[cp], *pad]
            spans.append(range(start, len(ids)))
        ids += id_map.get(EOS, [])
        return ids, spans

    def _infer(self, ids: list[int], settings: VoiceSettings
               ) -> tuple[np.ndarray, np.ndarray | None]:
        rate = settings.rate if settings.rate > 0 else 1.0
        feeds: dict[str, np.ndarray] = {
            "input": np.asarray([ids], np.int64),
            "input_lengths": np.asarray([len(ids)], np.int64),
            "scales": np.asarray([self.config.noise_scale, self.config.length_scale / rate,
                                  self.config.noise_w], np.float32),
        }
        if self._has_sid:
            speaker = self._speaker_id(settings.voice) if settings.voice else self._speaker
            feeds["sid"] = np.asarray([speaker or 0], np.int64)
        try:
            with self._lock:
                result = self._session.run(None, feeds)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BackendError(f"The Piper voice {self.model_path.name} failed to "
                               f"synthesise ({exc}).", retryable=False) from None
        pcm = np.clip(np.asarray(result[0], np.float32).reshape(-1), -1.0, 1.0)
        durations = np.asarray(result[1]).reshape(-1) if len(result) > 1 else None
        return pcm, durations

    def _samples_per_token(self, durations: np.ndarray, n_ids: int, total: int
                           ) -> np.ndarray | None:
        """Durations in frames (w_ceil) or samples, checked against the audio length."""
        if durations.size != n_ids:
            return None
        hop = self.config.hop_length
        for scale in (hop, 1):
            samples = np.round(durations.astype(np.float64) * scale).astype(np.int64)
            if abs(int(samples.sum()) - total) <= hop:
                return samples
        return None


def _open_session(path: Path, threads: int, providers: Sequence[str] | None) -> Any:
    """An onnxruntime session for a Piper voice (DirectML first on Windows)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if providers is None:
        providers = ["CPUExecutionProvider"]
        if sys.platform == "win32" and "DmlExecutionProvider" in available:
            providers = ["DmlExecutionProvider", "CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=options,
                                       providers=[p for p in providers if p in available])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise InputError(f"Piper voice file {path} is not a readable ONNX model ({exc}); "
                         "download the voice again.") from None
    names = {i.name for i in session.get_inputs()}
    if not set(_REQUIRED_INPUTS) <= names or not names <= {*_REQUIRED_INPUTS, "sid"}:
        raise InputError(f"{path} is not a Piper voice: its inputs are "
                         f"{', '.join(sorted(names))}, a Piper voice takes "
                         "input, input_lengths, scales (and sid).")
    return session


# --- espeak-ng through ctypes -----------------------------------------------------------

_CHARS_UTF8, _PHONEMES_IPA = 1, 0x02
_EVENT_END_LIST, _EVENT_PHONEME = 0, 7
_TERMINATOR = re.compile(r"([.,;:!?。，；：！？])[\s\"'”’)\]]*[^\s.,;:!?。，；：！？]?\s*$")  # noqa: RUF001


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


class _Espeak:
    """libespeak-ng from the espeakng-loader wheel: IPA per clause and phoneme events.

    The library keeps global state, so every call holds the process-wide lock of the
    espeak backend (which loads and initialises it) and sets voice and callback afresh.
    """

    def __init__(self) -> None:
        self._lib: Any = None
        self._rate = 22050
        self._lock = LIBRARY_LOCK
        self._samples = 0
        self._events: list[tuple[str, int]] = []
        self._callback = _Callback(self._on_audio)

    def _load(self) -> Any:
        if self._lib is None:
            engine = _espeak_engine()  # same flags as ours: sync, phoneme events, IPA
            lib = engine.lib
            lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
            lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p),
                                                  ctypes.c_int, ctypes.c_int]
            self._rate, self._lib = engine.sample_rate, lib
        return self._lib

    def _voice(self, lib: Any, voice: str) -> None:
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise InputError(f"espeak-ng has no voice {voice!r} (named in the Piper voice "
                             "config); fix espeak.voice in the .onnx.json.")

    def phonemize(self, voice: str, text: str) -> list[str]:
        """Piper's phoneme codepoints for one sentence: IPA per clause plus punctuation."""
        data = text.encode("utf-8")
        out: list[str] = []
        with self._lock:
            lib = self._load()
            self._voice(lib, voice)
            buf = ctypes.create_string_buffer(data)
            base = ctypes.addressof(buf)
            ptr = ctypes.c_void_p(base)
            while ptr.value:
                start = ptr.value - base
                ipa = (lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, _PHONEMES_IPA)
                       or b"").decode("utf-8", "replace")
                end = (ptr.value - base) if ptr.value else len(data)
                # espeak reads one character past the clause's end
                found = _TERMINATOR.search(data[start:end].decode("utf-8", "replace"))
                mark = found.group(1) if found else ""
                ipa = re.sub(r"\([^)]+\)", "", ipa).strip()  # language-switch flags
                if out and out[-1] != " ":
                    out.append(" ")
                out += unicodedata.normalize("NFD", ipa + _ascii_mark(mark))
        while out and out[-1] == " ":
            out.pop()
        return out

    def phoneme_events(self, voice: str, text: str) -> list[tuple[str, float]]:
        """espeak's own phonemes for `text` with their durations in seconds ("" = pause)."""
        data = text.encode("utf-8")
        with self._lock:
            lib = self._load()
            self._voice(lib, voice)
            self._samples, self._events = 0, []
            lib.espeak_SetSynthCallback(self._callback)
            lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, _CHARS_UTF8, None, None)
            events, total = self._events, max(self._samples, 1)
        out: list[tuple[str, float]] = []
        for k, (name, at) in enumerate(events):
            end = events[k + 1][1] if k + 1 < len(events) else max(total, at)
            out.append((unicodedata.normalize("NFD", name), (end - at) / self._rate))
        return out

    def _on_audio(self, wav: Any, count: int, events: Any) -> int:
        self._samples += max(0, count)
        i = 0
        while events[i].type != _EVENT_END_LIST:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                name = bytes(ev.id).split(b"\0", 1)[0].decode("utf-8", "replace")
                self._events.append((name, int(ev.sample)))
            i += 1
        return 0


def _ascii_mark(mark: str) -> str:
    """Piper voices know ASCII punctuation; a comma keeps a space after it, as in Piper."""
    ascii_mark = {"。": ".", "，": ",", "；": ";", "：": ":", "！": "!", "？": "?"}.get(mark, mark)  # noqa: RUF001
    return ascii_mark + (" " if ascii_mark in ",;:" else "")


ESPEAK = _Espeak()
