"""The operator's lines kept across a crash: from `POST /api/say` until they have been
said to the end, each line is in the store (show_state key `operator_lines`), so a
daemon killed before or while saying it says it again after its restart (issue 11:
"queues worth keeping"). A line cut off by the crash is said again whole; a line
older than `MAX_AGE_S` at the restart is dropped (the moment it was meant for has
passed), and so is one the operator skipped or that failed. A stop the operator asks
for (Ctrl-C, SIGTERM) forgets the lines not yet said.

Only the operator's typed lines are kept: the show's position is kept by the runner
(show/runner.py), and chat answers are stale after a restart (the viewer may have left
and the chat moved on)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from livetwin.events import UtteranceSource
from livetwin.runtime.live_events import LineEnded, LineFailed, LiveEvent

if TYPE_CHECKING:
    from livetwin.runtime.live import LiveTwin
    from livetwin.store.db import Store

log = logging.getLogger(__name__)

STATE_KEY = "operator_lines"
MAX_AGE_S = 300.0


class KeptLines:
    """Operator lines on their way to the viewer, mirrored in `store` (module doc)."""

    def __init__(self, store: Store, live: LiveTwin, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.live, self.clock = store, live, clock
        self._lock = threading.Lock()
        self._lines: dict[str, dict[str, Any]] = {}  # live line id -> {text, lang, at}
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> int:
        """Follow the twin's events and queue the lines a previous daemon left unsaid;
        how many were queued again."""
        self._unsubscribe = self.live.subscribe(self.on_event)
        got = self.store.load_state(STATE_KEY)
        left = list((got[0] if got else {}).get("lines", []))
        now = self.clock()
        again = 0
        for entry in left:
            if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
                continue
            if now - float(entry.get("at", 0.0)) > MAX_AGE_S:
                log.info("an operator line from before the restart is too old to say now: "
                         "%r", entry["text"][:60])
                continue
            try:
                self.say(entry["text"], entry.get("lang"), at=float(entry["at"]))
                again += 1
            except Exception as exc:  # one bad record must not stop the daemon
                log.warning("could not queue an operator line again (%s)", exc)
        if left and not again:
            self._save()
        if again:
            log.warning("said again after the restart: %d operator line(s)", again)
        return again

    def stop(self, *, forget: bool = False) -> None:
        """Stop following the twin; `forget`: a stop the operator asked for, so the
        lines not yet said are not said by the next daemon either."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        if forget:
            with self._lock:
                self._lines.clear()
                self._save()

    def say(self, text: str, lang: str | None = None, *, at: float | None = None) -> str:
        """Queue the operator's line (LiveTwin.say's errors pass through) and keep it."""
        with self._lock:  # an end event for this id waits until it is recorded
            line_id = self.live.say(text, UtteranceSource.OPERATOR, lang=lang)
            self._lines[line_id] = {"text": text, "lang": lang,
                                    "at": self.clock() if at is None else at}
            self._save()
        return line_id

    def pending(self) -> list[str]:
        """The texts kept now, oldest first."""
        with self._lock:
            return [e["text"] for e in sorted(self._lines.values(), key=lambda e: e["at"])]

    def on_event(self, event: LiveEvent) -> None:
        """LiveTwin subscriber: a kept line that ended (said, skipped) or failed is done."""
        if not isinstance(event, LineEnded | LineFailed):
            return
        with self._lock:
            if self._lines.pop(event.id, None) is not None:
                self._save()

    def _save(self) -> None:
        lines = sorted(self._lines.values(), key=lambda e: e["at"])
        try:
            self.store.save_state(STATE_KEY, {"lines": lines})
        except Exception as exc:  # the line is still said; only its keeping failed
            log.warning("could not keep the operator's lines in the store (%s)", exc)
