"""The operator's gestures on the live twin (docs/gestures.md): a gesture from the library
shown now, speaking or not, one at a time (a new one replaces one still showing). The
tick thread asks `at(index)` which one shows at a tick and at which of its frames; the
dashboard's thread starts them with `play(name)`."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from livetwin.errors import InputError

if TYPE_CHECKING:
    from livetwin.render.engine import TwinSource
    from livetwin.render.head_motion import GestureTrack

LEAD_S = 0.2  # a gesture starts this long after the click


@dataclass
class Manual:
    """A gesture the operator asked for: its one-cue track, from tick `start` (None:
    the next tick) for `frames` ticks."""

    name: str
    track: GestureTrack
    frames: int
    start: int | None = None


class OperatorGestures:
    """The operator's gesture showing on `twin`, at `fps` ticks a second (module doc)."""

    def __init__(self, twin: TwinSource, fps: int) -> None:
        self._twin = twin
        self._fps = fps
        self._lock = threading.Lock()
        self._now: Manual | None = None

    @property
    def current(self) -> str | None:
        """The name of the gesture showing or about to, None when there is none."""
        m = self._now
        return m.name if m is not None else None

    def names(self) -> list[str]:
        """The library gestures this avatar can show: its recorded clips plus the head
        motions and on-screen cues drawn without one."""
        from livetwin.gesture.avatar import procedural_names
        from livetwin.gesture.library import default_library

        clips, names = set(getattr(self._twin, "gestures", ())), procedural_names()
        return sorted(g.id for g in default_library()
                      if g.id in clips or (g.procedural is not None and g.procedural in names))

    def play(self, name: str) -> float:
        """Show gesture `name` from LEAD_S on; its duration in seconds. InputError for a
        name this avatar cannot show."""
        from livetwin.gesture.library import default_library
        from livetwin.render.head_motion import GestureTrack, TimedCue

        if name not in self.names():
            raise InputError(f"no gesture {name[:60]!r} for this avatar; choose one of "
                             "GET /api/gestures.")
        g = default_library()[name]
        clips = set(getattr(self._twin, "gestures", ()))
        how = "clip" if g.id in clips else "cue" if g.category == "cue" else "motion"
        t = g.timing
        start, dur = LEAD_S, t.nominal_s
        cue = TimedCue(g.id, start, start + t.stroke * dur, start + dur, "", how,
                       g.procedural, t.stroke)
        track = GestureTrack([cue], self._fps)
        with self._lock:
            self._now = Manual(name, track, math.ceil((start + dur) * self._fps) + 1)
        return dur

    def at(self, index: int) -> tuple[Manual | None, int]:
        """The gesture showing at tick `index` and its frame; it ends by itself."""
        with self._lock:
            m = self._now
            if m is None:
                return None, 0
            if m.start is None:
                m.start = index
            if index - m.start >= m.frames:
                self._now = None
                return None, 0
            return m, index - m.start
