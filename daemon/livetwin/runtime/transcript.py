"""What the twin said (every line that started sounding) and the chat that reached it,
kept in memory for the API until the store (SQLite) takes over in a later issue."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass

from livetwin.events import ChatEvent

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class TranscriptEntry:
    """One spoken line: `at` is the unix time it started sounding in the output."""

    id: str
    at: float
    text: str
    source: str
    product_id: str | None
    reply_to: str | None
    skipped: bool = False

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "at": self.at, "text": self.text, "source": self.source,
                "product_id": self.product_id, "reply_to": self.reply_to}


class Transcript:
    """Spoken lines in the order they started (bounded, thread-safe)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._entries: deque[TranscriptEntry] = deque(maxlen=max_entries)

    def add(self, entry: TranscriptEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def since(self, line_id: str | None = None) -> list[TranscriptEntry]:
        """Entries that started after line `line_id` (all when None). An id not in the
        transcript (not spoken yet, or long gone) gives the entries with a higher id."""
        with self._lock:
            entries = list(self._entries)
        return entries_after(entries, line_id)


def entries_after(entries: list[TranscriptEntry], line_id: str | None
                  ) -> list[TranscriptEntry]:
    """The entries after line `line_id` (all when None); an id not among them gives the
    entries with a higher numeric id."""
    if line_id is None:
        return entries
    for i, e in enumerate(entries):
        if e.id == line_id:
            return entries[i + 1:]
    try:
        after = int(line_id)
    except ValueError:
        return entries
    return [e for e in entries if e.id.isdigit() and int(e.id) > after]


class ChatLog:
    """Chat messages that reached the daemon, with ids "c1", "c2", ... (bounded)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._events: deque[ChatEvent] = deque(maxlen=max_entries)

    def add(self, platform: str, user: str, text: str) -> ChatEvent:
        with self._lock:
            event = ChatEvent(platform=platform, user=user, text=text, id=f"c{next(self._ids)}")
            self._events.append(event)
        return event

    def recent(self, n: int = 100) -> list[ChatEvent]:
        with self._lock:
            return list(self._events)[-n:]
