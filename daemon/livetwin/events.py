"""The small frozen dataclasses that flow between livetwin's stages.

This module imports nothing from the rest of livetwin, so every stage can depend on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
ByteArray = npt.NDArray[np.uint8]


class ChatKind(StrEnum):
    COMMENT = "comment"
    GIFT = "gift"
    FOLLOW = "follow"
    JOIN = "join"
    LIKE = "like"


class UtteranceSource(StrEnum):
    SCRIPT = "script"
    ANSWER = "answer"
    OPERATOR = "operator"
    GREETING = "greeting"
    FILLER = "filler"


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """One thing a viewer did on a platform."""

    platform: str
    user: str
    text: str
    kind: ChatKind = ChatKind.COMMENT
    received_at: float = field(default_factory=time.time)
    id: str = ""


@dataclass(frozen=True, slots=True)
class ViewerStats:
    """Audience size at a moment."""

    count: int
    at: float = field(default_factory=time.time)
    platform: str = ""


@dataclass(frozen=True, slots=True)
class Product:
    """A catalog entry; `facts` are the only claims that may be made on air."""

    id: str
    name: str
    price: float
    currency: str
    list_price: float | None = None
    stock: int | None = None
    facts: tuple[str, ...] = ()
    faq: tuple[tuple[tuple[str, ...], str], ...] = ()


@dataclass(frozen=True, slots=True)
class Utterance:
    """A line the twin is to speak."""

    text: str
    source: UtteranceSource
    product_id: str | None = None
    reply_to: str | None = None
    priority: int = 0
    intents: tuple[str, ...] = ()
    lang: str = "en"
    id: str = ""


@dataclass(frozen=True, slots=True)
class WordTiming:
    """A word and where it sounds, in seconds from the start of its audio."""

    word: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class PhonemeTiming:
    """A phoneme (in the backend's alphabet) and where it sounds, in seconds."""

    phoneme: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class SpeechAudio:
    """Synthesised (or recorded) speech: mono float32 PCM with optional timings."""

    pcm: FloatArray
    sample_rate: int
    words: tuple[WordTiming, ...] = ()
    phonemes: tuple[PhonemeTiming, ...] = ()
    utterance_id: str = ""

    @property
    def duration(self) -> float:
        return len(self.pcm) / float(self.sample_rate)


@dataclass(frozen=True, slots=True)
class MouthTrack:
    """Per-output-frame mouth-shape targets: rows are frames, columns the descriptor."""

    fps: float
    values: FloatArray  # shape (frames, 4): aperture, width, rounding, teeth
    source: str = ""  # "phonemes" | "person-model" | "energy"


@dataclass(frozen=True, slots=True)
class GestureCue:
    """A gesture to play: times in seconds from the start of its utterance."""

    gesture: str
    start: float
    stroke: float
    end: float
    word: str = ""


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One RGB frame of output, stamped on the media clock."""

    image: ByteArray
    pts: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """A block of output audio, stamped on the media clock."""

    pcm: FloatArray
    sample_rate: int
    pts: float
