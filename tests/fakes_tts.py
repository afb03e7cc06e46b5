"""Fake TTS backends with failure knobs, in one place (style: livekit agents' fakes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from livetwin.errors import BackendError
from livetwin.events import SpeechAudio, WordTiming
from livetwin.speech.base import TTSBackend, VoiceSettings
from livetwin.speech.normalize import split_sentences

SR = 16000


def tone(seconds: float = 0.2, sr: int = SR) -> SpeechAudio:
    """A short, valid SpeechAudio."""
    t = np.arange(int(seconds * sr)) / sr
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return SpeechAudio(pcm, sr, words=(WordTiming("la", 0.0, seconds),))


@dataclass
class FakeTTS(TTSBackend):
    """Speaks each sentence as a tone. Knobs: `fail_times` (raise `error` on the first N
    sentences), `fail_after` (raise once N sentences were spoken), `delay_s` (per item),
    `hang` (never answer), `garbage` ("nan" | "loud" | "type" | "timings")."""

    name: ClassVar[str] = "fake"
    label: str = "fake"
    fail_times: int = 0
    fail_after: int | None = None
    error: Exception = field(default_factory=lambda: BackendError("boom", retryable=True))
    delay_s: float = 0.0
    hang: bool = False
    garbage: str = ""
    spoken: list[str] = field(default_factory=list)
    calls: int = 0

    async def stream(self, text: str, *, lang: str, settings: VoiceSettings | None = None
                     ) -> AsyncIterator[SpeechAudio]:
        for sentence in split_sentences(text):
            self.calls += 1
            if self.hang:
                await asyncio.Event().wait()
            if self.fail_times > 0:
                self.fail_times -= 1
                raise self.error
            if self.fail_after is not None and len(self.spoken) >= self.fail_after:
                raise self.error
            await asyncio.sleep(self.delay_s)
            self.spoken.append(sentence)
            yield self._item()

    def _item(self) -> SpeechAudio:
        good = tone()
        if self.garbage == "nan":
            return SpeechAudio(np.full(100, np.nan, np.float32), SR)
        if self.garbage == "loud":
            return SpeechAudio(np.full(100, 300.0, np.float32), SR)
        if self.garbage == "type":
            return b"\x00garbage"  # type: ignore[return-value]
        if self.garbage == "timings":
            return SpeechAudio(good.pcm, SR, words=(WordTiming("x", 5.0, 1.0),))
        return good
