"""What livetwin keeps between runs: catalog, scripts (drafts and approved versions) and
the transcript, in SQLite by default or any SQLAlchemy URL (PostgreSQL)."""

from livetwin.store.db import ScriptRecord, Store, open_store

__all__ = ["ScriptRecord", "Store", "open_store"]
