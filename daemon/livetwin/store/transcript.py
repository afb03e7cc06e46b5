"""`StoredTranscript`: the daemon's transcript (runtime.transcript.Transcript) written
through to the store, so every spoken line is kept with its time, source, product and
the chat message it answers, across restarts. `since` reads the current daemon run
(`session`): line ids restart at 1 with every run, older runs stay in the table."""

from __future__ import annotations

import logging
import time
import uuid

from livetwin.runtime.transcript import Transcript, TranscriptEntry, entries_after
from livetwin.store.db import Store

log = logging.getLogger(__name__)


class StoredTranscript(Transcript):
    """A Transcript kept in `store` (module doc)."""

    def __init__(self, store: Store, session: str | None = None) -> None:
        super().__init__()
        self._added = 0
        self.store = store
        self.session = session or f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"

    def add(self, entry: TranscriptEntry) -> None:
        super().add(entry)
        self._added += 1
        try:
            self.store.add_transcript(self.session, entry.id, entry.at, entry.text,
                                      entry.source, entry.product_id, entry.reply_to)
        except Exception:  # a full disk must not stop the show; the memory copy remains
            log.exception("could not store transcript line %s", entry.id)

    def since(self, line_id: str | None = None) -> list[TranscriptEntry]:
        # the memory copy answers while it holds the whole run, or the line asked about
        # (a client polling every second); the table answers for older lines
        memory = super().since()
        whole = 0 < self._added <= len(memory)
        if not (whole or (line_id and any(e.id == line_id for e in memory))):
            memory = [TranscriptEntry(r.line_id, r.at, r.text, r.source, r.product_id,
                                      r.reply_to)
                      for _, r in self.store.transcript(self.session)]
        return entries_after(memory, line_id)
