"""FallbackTTS: any list of backends behind one, switching on failure or timeout.

Retries and switching live here and nowhere else (backends just raise). Text is fed to
the backends sentence by sentence, so when one fails mid-text the next one continues
with the sentence that failed and nothing already spoken is repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from livetwin.errors import BackendError, BackendTimeout, InputError
from livetwin.events import SpeechAudio
from livetwin.speech.base import TTSBackend, VoiceSettings
from livetwin.speech.normalize import split_sentences

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0  # per sentence piece; espeak needs ~10 ms, a slow server ~1-2 s
DEFAULT_COOLDOWN_S = 30.0  # a failed backend is skipped this long before it is tried again
_CLOSE_TIMEOUT_S = 1.0


def check_audio(audio: object, backend: str) -> SpeechAudio:
    """The item if it is usable speech; BackendError saying what is wrong otherwise.
    Timings that do not fit the audio are dropped (the mouth falls back to audio)."""
    if not isinstance(audio, SpeechAudio):
        raise BackendError(f"TTS backend {backend!r} returned {type(audio).__name__}, "
                           "not audio.")
    pcm = audio.pcm
    ok = (isinstance(pcm, np.ndarray) and pcm.ndim == 1 and pcm.dtype == np.float32
          and 0 < len(pcm) and 4000 <= audio.sample_rate <= 192_000)
    if not ok or not np.isfinite(pcm).all() or float(np.abs(pcm).max()) > 2.0:
        raise BackendError(f"TTS backend {backend!r} returned unusable audio (empty, not "
                           "mono float32, non-finite or far out of range).")
    if not _timings_fit(audio):
        log.warning("dropping timings from %s that do not fit its audio", backend)
        return SpeechAudio(pcm, audio.sample_rate, utterance_id=audio.utterance_id)
    return audio


def _timings_fit(audio: SpeechAudio) -> bool:
    limit = audio.duration + 0.05
    for seq in (audio.words, audio.phonemes):
        last = 0.0
        for t in seq:
            if not (math.isfinite(t.start) and math.isfinite(t.end)):
                return False
            if t.start < last - 1e-3 or t.end < t.start or t.end > limit:
                return False
            last = t.start
    return True


class FallbackTTS(TTSBackend):
    """Tries `backends` in order for each sentence; a backend that raises BackendError or
    stays silent past `timeout_s` is skipped for `cooldown_s`."""

    name: ClassVar[str] = "fallback"

    def __init__(self, backends: Sequence[TTSBackend], *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 retries: int = 0, cooldown_s: float = DEFAULT_COOLDOWN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not backends:
            raise InputError("FallbackTTS needs at least one backend.")
        self.backends = list(backends)
        self.timeout_s = timeout_s
        self.retries = retries  # extra tries of a backend on a retryable error
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failed_at: dict[int, float] = {}
        self._last_error: dict[int, str] = {}
        self.last_backend: str | None = None  # the backend that spoke the last sentence

    def health(self) -> dict[str, Any]:
        """For the watchdog: the primary's name, how many backends there are, which one
        spoke last and those whose last try failed (name -> error). A failed backend is
        tried again after `cooldown_s` with the next sentence: that try is the probe
        that reports it back."""
        failing = {self.backends[i].name: self._last_error.get(i, "failed")
                   for i in list(self._failed_at)}
        return {"primary": self.backends[0].name, "backends": len(self.backends),
                "last_backend": self.last_backend, "failing": failing}

    async def stream(self, text: str, *, lang: str, settings: VoiceSettings | None = None
                     ) -> AsyncIterator[SpeechAudio]:
        """Yield each sentence from the first backend that manages it."""
        for sentence in split_sentences(text):
            async for audio in self._sentence(sentence, lang, settings):
                yield audio

    async def aclose(self) -> None:
        """Close every backend."""
        for backend in self.backends:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(backend.aclose(), _CLOSE_TIMEOUT_S)

    def _order(self) -> list[int]:
        """Healthy backends first (in their order), then those cooling down."""
        now = self._clock()
        cooling = {i for i, t in self._failed_at.items() if now - t < self.cooldown_s}
        return ([i for i in range(len(self.backends)) if i not in cooling]
                + sorted(cooling))

    async def _sentence(self, sentence: str, lang: str, settings: VoiceSettings | None
                        ) -> AsyncIterator[SpeechAudio]:
        errors: list[tuple[str, Exception]] = []
        for idx in self._order():
            backend = self.backends[idx]
            for attempt in range(self.retries + 1):
                yielded = 0
                try:
                    async for audio in self._guarded(backend, sentence, lang, settings):
                        yielded += 1
                        yield audio
                    if self._failed_at.pop(idx, None) is not None:
                        log.info("TTS %s works again", backend.name)
                    self.last_backend = backend.name
                    return
                except (BackendError, InputError) as exc:
                    errors.append((backend.name, exc))
                    self._last_error[idx] = str(exc)
                    if yielded:  # part of this sentence was spoken: do not repeat it
                        self._failed_at[idx] = self._clock()
                        return
                    retry = isinstance(exc, BackendError) and exc.retryable
                    log.warning("TTS %s failed (%s)%s", backend.name, exc,
                                "; retrying" if retry and attempt < self.retries else "")
                    if not retry:
                        break
            if not isinstance(errors[-1][1], InputError):
                self._failed_at[idx] = self._clock()
        raise _all_failed(errors)

    async def _guarded(self, backend: TTSBackend, sentence: str, lang: str,
                       settings: VoiceSettings | None) -> AsyncIterator[SpeechAudio]:
        """The backend's items, each within the timeout and checked."""
        gen = backend.stream(sentence, lang=lang, settings=settings)
        try:
            while True:
                try:
                    item = await asyncio.wait_for(anext(gen), self.timeout_s)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise BackendTimeout(f"TTS backend {backend.name!r} gave no audio within "
                                         f"{self.timeout_s:g} s.") from None
                except (BackendError, InputError):
                    raise
                except Exception as exc:  # a backend bug must not end the show
                    raise BackendError(f"TTS backend {backend.name!r} crashed: {exc!r}",
                                       retryable=True) from exc
                yield check_audio(item, backend.name)
        finally:
            aclose = getattr(gen, "aclose", None)  # async generators have it; iterators may not
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(aclose(), _CLOSE_TIMEOUT_S)


def _all_failed(errors: list[tuple[str, Exception]]) -> Exception:
    """InputError when every backend refused the input, else one BackendError naming all."""
    if errors and all(isinstance(e, InputError) for _, e in errors):
        return errors[0][1]
    detail = "; ".join(f"{name}: {exc}" for name, exc in errors)
    retryable = any(isinstance(e, BackendError) and e.retryable for _, e in errors)
    return BackendError(f"Every TTS backend failed ({detail}).", retryable=retryable)
