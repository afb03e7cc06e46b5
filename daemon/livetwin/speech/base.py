"""The TTS backend contract: text in, one `SpeechAudio` per sentence out, as soon as each
sentence is synthesised. Cancelling the consuming task stops synthesis (interrupts).

Timings in each `SpeechAudio` are seconds from the start of that sentence's audio.
Backends that cannot give timings leave `words`/`phonemes` empty; the mouth track then
comes from the person audio-to-mouth model of the avatar bundle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar

from livetwin.events import SpeechAudio

LANGUAGES = ("en", "zh", "de")


@dataclass(frozen=True)
class VoiceSettings:
    """What a request may ask of any backend; backends ignore what they cannot do."""

    voice: str = ""  # backend-specific voice name ("" = the backend's default for lang)
    rate: float = 1.0  # speaking-rate factor
    pitch: float = 1.0  # pitch factor


class TTSBackend(ABC):
    """One TTS engine. Subclasses live one per file and are registered by `name`."""

    name: ClassVar[str]
    #: True when the audio comes with phoneme timings (drives the mouth directly).
    gives_timings: ClassVar[bool] = False

    @abstractmethod
    def stream(self, text: str, *, lang: str, settings: VoiceSettings | None = None
               ) -> AsyncIterator[SpeechAudio]:
        """Yield one SpeechAudio per sentence of `text` (already normalised for speech).

        Raises InputError for unusable input (unsupported language, ...), BackendError
        (retryable or not) / BackendTimeout when the engine fails.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release what the backend holds (sessions, connections)."""
