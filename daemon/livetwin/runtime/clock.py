"""The media clock that paces the live output: tick i is due at start + i / fps.

Due times are computed from the tick index, never by adding periods, so the clock does
not drift. `RealClock` follows `time.monotonic`; `FakeClock` advances instantly (or only
when a test says so) so that hours of output can be tested in a second.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class MediaClock(Protocol):
    """Paces the tick loop; seconds are on the clock's own monotonic timeline."""

    fps: int

    def start(self) -> None:
        """Anchor tick 0 at the current time."""

    def now(self) -> float:
        """Current time in seconds on the clock's timeline."""

    def due(self, index: int) -> float:
        """When tick `index` is due."""

    def wait_for(self, index: int, stop: threading.Event) -> float:
        """Block until tick `index` is due (or `stop` is set); return how late it is (s)."""

    def rebase(self, index: int) -> None:
        """Re-anchor so that tick `index` is due now (after a hiccup too long to catch up)."""


class _BaseClock:
    def __init__(self, fps: int) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        self.fps = fps
        self._t0 = 0.0  # when tick 0 is due
        self._i0 = 0  # index the anchor refers to (changes on rebase)

    def now(self) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> None:
        """Anchor tick 0 at the current time."""
        self._t0, self._i0 = self.now(), 0

    def due(self, index: int) -> float:
        """When tick `index` is due: anchor + (index - anchor index) / fps."""
        return self._t0 + (index - self._i0) / self.fps

    def rebase(self, index: int) -> None:
        """Re-anchor so that tick `index` is due now."""
        self._t0, self._i0 = self.now(), index


class RealClock(_BaseClock):
    """Wall-clock pacing on `time.monotonic`."""

    def now(self) -> float:
        """Seconds of `time.monotonic`."""
        return time.monotonic()

    def wait_for(self, index: int, stop: threading.Event) -> float:
        """Sleep until tick `index` is due or `stop` is set; return the lateness (s)."""
        due = self.due(index)
        while True:
            left = due - time.monotonic()
            if left <= 0 or stop.is_set():
                break
            # Event.wait sleeps in one call; re-check because it may wake early.
            stop.wait(left)
        return max(0.0, time.monotonic() - due)


class FakeClock(_BaseClock):
    """A clock for tests: in `auto` mode waiting jumps time to the due tick at once;
    otherwise waiting blocks until `advance()` moves time past the due tick."""

    def __init__(self, fps: int, *, auto: bool = True, start_at: float = 1000.0) -> None:
        super().__init__(fps)
        self.auto = auto
        self._now = start_at
        self._cond = threading.Condition()

    def now(self) -> float:
        """The fake current time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward, e.g. to simulate a hiccup of the machine."""
        with self._cond:
            self._now += seconds
            self._cond.notify_all()

    def wait_for(self, index: int, stop: threading.Event) -> float:
        """Jump to the due time (auto) or wait for `advance()`; return the lateness (s)."""
        due = self.due(index)
        with self._cond:
            if self.auto:
                self._now = max(self._now, due)
            else:
                while self._now < due and not stop.is_set():
                    self._cond.wait(0.05)
            return max(0.0, self._now - due)
