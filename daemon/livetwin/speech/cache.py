"""A disk cache of synthesised speech (audio + timings): the 24/7 loop repeats lines.

Entries are .npz files under `home_dir()/cache/tts`, one per sentence, keyed by
(backend, voice settings, language, text); writes are atomic (temp file + rename) and
the least recently used entries go when the cache outgrows its size bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from livetwin.events import PhonemeTiming, SpeechAudio, WordTiming
from livetwin.speech.base import TTSBackend, VoiceSettings
from livetwin.speech.normalize import split_sentences

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
_FORMAT = 1  # bump when the entry layout changes; old entries then simply miss


def default_dir() -> Path:
    """Where the TTS cache lives (moves with LIVETWIN_HOME)."""
    from livetwin.config import home_dir

    return home_dir() / "cache" / "tts"


def cache_key(backend: str, settings: VoiceSettings, lang: str, text: str) -> str:
    """A stable key for one sentence of speech."""
    blob = json.dumps([_FORMAT, backend, dataclasses.asdict(settings), lang, text],
                      ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _encode(items: list[SpeechAudio]) -> bytes:
    meta = [{"sr": a.sample_rate,
             "words": [[w.word, w.start, w.end] for w in a.words],
             "phonemes": [[p.phoneme, p.start, p.end] for p in a.phonemes]} for a in items]
    arrays: dict[str, Any] = {f"pcm{i}": a.pcm for i, a in enumerate(items)}
    arrays["meta"] = np.array(json.dumps(meta, ensure_ascii=False))
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # uncompressed: speech barely compresses, loading stays fast
    return buf.getvalue()


def _decode(path: Path) -> list[SpeechAudio]:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        return [SpeechAudio(
            pcm=data[f"pcm{i}"].astype(np.float32, copy=False),
            sample_rate=int(m["sr"]),
            words=tuple(WordTiming(w, float(s), float(e)) for w, s, e in m["words"]),
            phonemes=tuple(PhonemeTiming(p, float(s), float(e)) for p, s, e in m["phonemes"]),
        ) for i, m in enumerate(meta)]


class TTSCache:
    """Bounded, LRU-evicted, crash-safe store of speech per key."""

    def __init__(self, root: Path | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root if root is not None else default_dir()
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._index: OrderedDict[str, int] | None = None  # key -> bytes, oldest first

    def _entries(self) -> OrderedDict[str, int]:
        if self._index is None:
            self.root.mkdir(parents=True, exist_ok=True)
            files = [(p.stat().st_mtime, p.stem, p.stat().st_size)
                     for p in self.root.glob("*.npz")]
            self._index = OrderedDict((k, size) for _, k, size in sorted(files))
        return self._index

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    @property
    def size_bytes(self) -> int:
        """Bytes the cache holds now."""
        with self._lock:
            return sum(self._entries().values())

    def get(self, key: str) -> list[SpeechAudio] | None:
        """The entry, marked as just used; None when absent or unreadable."""
        with self._lock:
            entries = self._entries()
            if key not in entries:
                return None
            path = self._path(key)
            try:
                items = _decode(path)
                os.utime(path)  # the LRU order survives restarts through mtime
            except (OSError, ValueError, KeyError):  # damaged or removed: drop it, miss
                del entries[key]
                with contextlib.suppress(OSError):
                    path.unlink()
                return None
            entries.move_to_end(key)
            return items

    def put(self, key: str, items: list[SpeechAudio]) -> None:
        """Store an entry atomically, then evict the least recently used over the bound."""
        data = _encode(items)
        with self._lock:
            entries = self._entries()
            fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self._path(key))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            entries[key] = len(data)
            entries.move_to_end(key)
            self._evict(entries)

    def _evict(self, entries: OrderedDict[str, int]) -> None:
        total = sum(entries.values())
        while total > self.max_bytes and len(entries) > 1:
            key, size = entries.popitem(last=False)
            with contextlib.suppress(OSError):
                self._path(key).unlink()
            total -= size

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            for key in list(self._entries()):
                with contextlib.suppress(OSError):
                    self._path(key).unlink()
            self._index = OrderedDict()


class CachedTTS(TTSBackend):
    """Serves sentences spoken before from the cache, the rest from `backend`."""

    name: ClassVar[str] = "cached"

    def __init__(self, backend: TTSBackend, cache: TTSCache | None = None) -> None:
        self.backend = backend
        self.cache = cache if cache is not None else TTSCache()
        self.hits = 0
        self.misses = 0

    @property
    def gives_timings(self) -> bool:  # type: ignore[override]
        """As the wrapped backend."""
        return self.backend.gives_timings

    def _backend_id(self) -> str:
        # a backend may name its engine/version/model (espeak does) so upgrades miss
        return str(getattr(self.backend, "cache_id", self.backend.name))

    async def stream(self, text: str, *, lang: str, settings: VoiceSettings | None = None
                     ) -> AsyncIterator[SpeechAudio]:
        """Yield each sentence from the cache when it is there, else synthesise and keep."""
        settings = settings or VoiceSettings()
        backend_id = await asyncio.to_thread(self._backend_id)
        for sentence in split_sentences(text):
            key = cache_key(backend_id, settings, lang, sentence)
            cached = await asyncio.to_thread(self.cache.get, key)
            if cached is not None:
                self.hits += 1
                for audio in cached:
                    yield audio
                continue
            self.misses += 1
            items: list[SpeechAudio] = []
            async for audio in self.backend.stream(sentence, lang=lang, settings=settings):
                items.append(audio)
                yield audio
            if items:  # only whole sentences are kept (a cancelled one never gets here)
                await asyncio.to_thread(self.cache.put, key, items)

    async def aclose(self) -> None:
        """Close the wrapped backend."""
        await self.backend.aclose()
