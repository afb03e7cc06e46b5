"""Operator lines kept in the store until said (runtime/kept_lines.py): a daemon killed
before or while saying them says them after its restart."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from livetwin.runtime.kept_lines import MAX_AGE_S, STATE_KEY, KeptLines
from livetwin.runtime.live_events import LineEnded, LineFailed, LiveEvent
from livetwin.store import open_store
from livetwin.store.db import Store


class FakeTwin:
    """LiveTwin's say/subscribe, recording what was queued."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, str, str | None]] = []  # (id, text, lang)
        self.subscribers: list[Callable[[LiveEvent], None]] = []
        self._ids = itertools.count(1)

    def say(self, text: str, source: object = None, lang: str | None = None) -> str:
        line_id = str(next(self._ids))
        self.queued.append((line_id, text, lang))
        return line_id

    def subscribe(self, fn: Callable[[LiveEvent], None]) -> Callable[[], None]:
        self.subscribers.append(fn)
        return lambda: self.subscribers.remove(fn)

    def emit(self, event: LiveEvent) -> None:
        for fn in list(self.subscribers):
            fn(event)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'kept.db'}")
    yield s
    s.close()


def kept_texts(store: Store) -> list[str]:
    got = store.load_state(STATE_KEY)
    return [e["text"] for e in (got[0]["lines"] if got else [])]


def test_a_line_is_kept_until_it_ends_or_fails(store: Store) -> None:
    twin = FakeTwin()
    kept = KeptLines(store, twin)
    assert kept.start() == 0
    a = kept.say("First the blue one.", "en")
    b = kept.say("Then the red one.")
    assert kept_texts(store) == ["First the blue one.", "Then the red one."]
    twin.emit(LineEnded(a, skipped=False, tick=10))
    assert kept_texts(store) == ["Then the red one."]
    twin.emit(LineEnded("999", skipped=False, tick=11))  # not an operator line: no change
    twin.emit(LineFailed(b, "the voice failed"))
    assert kept_texts(store) == [] and kept.pending() == []


def test_after_a_crash_the_next_daemon_says_the_unsaid_lines_again(store: Store) -> None:
    now = [1000.0]
    first = KeptLines(store, FakeTwin(), clock=lambda: now[0])
    first.start()
    first.say("Old news.")
    now[0] += MAX_AGE_S - 10
    first.say("Free shipping ends at midnight.", "en")
    first.say("Say hi to the new viewers.")
    # killed here: no stop(), no end events; the next daemon starts 20 s later
    now[0] += 20
    twin = FakeTwin()
    second = KeptLines(store, twin, clock=lambda: now[0])
    assert second.start() == 2
    assert [(t, lang) for _, t, lang in twin.queued] == [
        ("Free shipping ends at midnight.", "en"), ("Say hi to the new viewers.", None)]
    assert kept_texts(store) == ["Free shipping ends at midnight.",
                                 "Say hi to the new viewers."]  # "Old news." is dropped
    twin.emit(LineEnded(twin.queued[0][0], skipped=False, tick=5))
    assert kept_texts(store) == ["Say hi to the new viewers."]


def test_a_stop_asked_for_forgets_the_unsaid_lines(store: Store) -> None:
    kept = KeptLines(store, FakeTwin())
    kept.start()
    kept.say("Never mind.")
    kept.stop(forget=True)
    assert kept_texts(store) == []
    twin = FakeTwin()
    assert KeptLines(store, twin).start() == 0 and twin.queued == []


def test_only_old_lines_left_are_cleared_from_the_store(store: Store) -> None:
    now = [0.0]
    KeptLines(store, FakeTwin(), clock=lambda: now[0]).say("Stale.")
    now[0] = MAX_AGE_S + 1
    twin = FakeTwin()
    assert KeptLines(store, twin, clock=lambda: now[0]).start() == 0
    assert twin.queued == [] and kept_texts(store) == []
