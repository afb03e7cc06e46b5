"""What `LiveTwin` (runtime/live.py) reports: the show's state and the start, end and
failure of each line, handed to subscribers by its dispatcher thread (docs/live.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from livetwin.errors import LivetwinError
from livetwin.events import Product, Utterance


class QueueFull(LivetwinError):
    """Too many lines wait for synthesis; try again when some were spoken."""


@dataclass(frozen=True)
class LiveState:
    """What the show is doing, as reported to clients."""

    paused: bool = False
    on_air: bool = True
    product: Product | None = None
    chat_target: tuple[str, str] | None = None  # (platform, channel)
    streaming: bool = False
    recording: bool = False


@dataclass(frozen=True)
class LineStarted:
    utterance: Utterance
    at: float  # unix seconds when it starts sounding
    tick: int


@dataclass(frozen=True)
class LineEnded:
    id: str
    skipped: bool
    tick: int


@dataclass(frozen=True)
class LineFailed:
    id: str
    message: str


@dataclass(frozen=True)
class StateChanged:
    state: LiveState


LiveEvent = LineStarted | LineEnded | LineFailed | StateChanged
Subscriber = Callable[[LiveEvent], None]
