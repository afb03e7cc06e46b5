"""ShowRunner: the director on a LiveTwin-like object. With a fake (driven step by step)
it keeps at most one director line in the backlog, maps the twin's line ids back to the
director, pauses with StateChanged and survives a full queue; with a real LiveTwin on a
fake voice the approved script is spoken and lands in the stored transcript."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from livetwin.events import ChatKind, Utterance, UtteranceSource
from livetwin.runtime.live_events import (
    LineEnded,
    LineStarted,
    LiveEvent,
    LiveState,
    QueueFull,
    StateChanged,
)
from livetwin.runtime.transcript import TranscriptEntry
from livetwin.show.director import Director, DirectorSettings
from livetwin.show.runner import ShowRunner, show_items
from livetwin.show.strategy import Strategy, load_strategy
from livetwin.show.templates import load_templates
from livetwin.store import open_store
from livetwin.store.transcript import StoredTranscript

from .test_show_director import PRODUCTS, approved


class FakeLive:
    """The LiveTwin protocol with failure knobs: lines are 'synthesised' when the test
    calls `start_next()`/`end()`."""

    def __init__(self) -> None:
        self.state = LiveState()
        self.queue: list[Utterance] = []
        self.said: list[Utterance] = []
        self.subscribers: list[Callable[[LiveEvent], None]] = []
        self.full = False
        self._ids = 0

    def say(self, text: str, source: UtteranceSource | str = UtteranceSource.OPERATOR,
            reply_to: str | None = None, product_id: str | None = None,
            lang: str | None = None, *, intents: Sequence[str] = (), priority: int = 0) -> str:
        if self.full:
            raise QueueFull("64 lines already wait to be spoken; try again later.")
        self._ids += 1
        u = Utterance(text, UtteranceSource(source), product_id, reply_to, priority,
                      tuple(intents), lang or "en", str(self._ids))
        self.queue.append(u)
        return u.id

    def backlog(self) -> int:
        return len(self.queue)

    def subscribe(self, fn: Callable[[LiveEvent], None]) -> Callable[[], None]:
        self.subscribers.append(fn)
        return lambda: self.subscribers.remove(fn)

    def emit(self, ev: LiveEvent) -> None:
        for fn in list(self.subscribers):
            fn(ev)

    def start_next(self) -> Utterance:
        u = self.queue.pop(0)
        self.said.append(u)
        self.emit(LineStarted(u, time.time(), 0))
        return u

    def end(self, u: Utterance) -> None:
        self.emit(LineEnded(u.id, False, 0))


def make_runner(live: FakeLive, clock: list[float]) -> ShowRunner:
    t = load_templates("en")
    d = Director(approved(t), t, Strategy(load_strategy()), DirectorSettings(),
                 random.Random(0))
    return ShowRunner(d, live, clock=lambda: clock[0])


def test_one_director_line_at_a_time_and_ids_mapped_back() -> None:
    live, clock = FakeLive(), [0.0]
    runner = make_runner(live, clock)
    live.subscribe(runner.on_event)
    assert runner.step() == "1"
    assert runner.step() is None and live.backlog() == 1  # nothing more while one waits
    for k in range(20):
        u = live.start_next()
        assert u.source in (UtteranceSource.SCRIPT, UtteranceSource.FILLER)
        assert u.intents or u.source is UtteranceSource.FILLER
        clock[0] += 0.1
        runner.step()  # may queue the next line while this one sounds (short pause)
        clock[0] += 3.0
        live.end(u)
        for _ in range(40):  # poll through the pause
            if live.backlog():
                break
            clock[0] += 0.25
            runner.step()
        assert live.backlog() == 1, k
    assert len({u.text for u in live.said}) == len(live.said)


def test_waiting_chat_answers_do_not_hold_the_show_back() -> None:
    """The twin lets a show line through after two answers, so the runner queues its
    next line while answers wait; still one show line at a time."""
    live, clock = FakeLive(), [0.0]
    runner = make_runner(live, clock)
    live.subscribe(runner.on_event)
    for i in range(3):
        live.say(f"Answer {i}.", UtteranceSource.ANSWER, reply_to=f"c{i}")
    show = runner.step()
    assert show is not None and live.backlog() == 4
    assert runner.step() is None  # its line waits: nothing more
    for _ in range(3):  # the answers sound first; the show line still waits
        live.end(live.start_next())
        assert runner.step() is None
    u = live.start_next()
    assert u.id == show and u.source in (UtteranceSource.SCRIPT, UtteranceSource.FILLER)


def test_off_air_holds_and_a_full_queue_is_survived() -> None:
    live, clock = FakeLive(), [0.0]
    runner = make_runner(live, clock)
    live.subscribe(runner.on_event)
    live.emit(StateChanged(LiveState(on_air=False)))
    for _ in range(20):
        clock[0] += 1
        assert runner.step() is None
    live.emit(StateChanged(LiveState(on_air=True, paused=True)))
    clock[0] += 1
    assert runner.step() is None
    live.emit(StateChanged(LiveState(on_air=True, paused=False)))
    live.full = True
    clock[0] += 1
    assert runner.step() is None  # refused by the twin: logged, the director moves on
    live.full = False
    clock[0] += 5  # past the pause after the refused line
    assert runner.step() is not None


def test_viewers_and_chat_reach_the_director() -> None:
    live, clock = FakeLive(), [0.0]
    runner = make_runner(live, clock)
    live.subscribe(runner.on_event)
    runner.on_viewers(5)
    assert runner.director.strategy.tier.name == "small"
    runner.on_chat(ChatKind.JOIN, "Anna")
    runner.queue_answer("It is 99 yuan.", reply_to="c1", purchase=True)
    runner.step()
    assert live.queue[0].source is UtteranceSource.ANSWER and live.queue[0].reply_to == "c1"
    u = live.start_next()
    live.end(u)
    clock[0] += 0.5
    runner.step()
    assert live.queue[0].source is UtteranceSource.GREETING and "Anna" in live.queue[0].text


def test_a_real_live_twin_speaks_the_approved_script(tmp_path: Path) -> None:
    from livetwin.server.app import Daemon
    from livetwin.server.auth import Token

    from ..live_harness import Events, Ticker, make_live

    store = open_store(f"sqlite:///{tmp_path / 'show.db'}")
    from livetwin.show.catalog import CatalogItem
    from livetwin.show.scripts import generate_draft

    store.import_catalog([CatalogItem(p) for p in PRODUCTS])
    t = load_templates("en")
    draft = generate_draft(store, "mug", t)
    generate_draft(store, "lip-tint", t)  # a draft only: never spoken
    store.decide(draft.id, "approved")
    live = make_live()
    transcript = StoredTranscript(store, session="test")
    daemon = Daemon(live, Token("x" * 20, "config"), transcript=transcript)
    live.subscribe(daemon.on_event)
    d = Director(show_items(store, "en"), t, Strategy(load_strategy()), DirectorSettings(),
                 random.Random(0))
    runner = ShowRunner(d, live, poll_s=0.05)
    runner.on_viewers(50)  # a short pause between lines
    events = Events(live)
    try:
        runner.start()
        with Ticker(live):
            events.wait(lambda e: isinstance(e, LineEnded), timeout=20)
            events.wait(lambda e: isinstance(e, LineStarted)
                        and e.utterance.id != "1", timeout=20)
    finally:
        runner.stop()
        live.close()
    started = [e.utterance for e in events.items if isinstance(e, LineStarted)]
    assert len(started) >= 2
    approved_texts = {ln.text for ln in draft.lines}
    for u in started:
        assert u.source in (UtteranceSource.SCRIPT, UtteranceSource.FILLER)
        assert u.product_id in (None, "mug")
        if u.source is UtteranceSource.SCRIPT:
            assert any(u.text in text for text in approved_texts)
    rows = StoredTranscript(store, session="test").since(None)
    assert [r.text for r in rows][:2] == [u.text for u in started][:2]
    assert all(isinstance(r, TranscriptEntry) and r.at > 0 for r in rows)
    assert rows[0].source in ("script", "filler")


def test_stored_transcript_survives_a_restart_and_answers_since(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    tr = StoredTranscript(open_store(url), session="run1")
    for k in range(1, 4):
        tr.add(TranscriptEntry(str(k), 100.0 + k, f"line {k}", "answer", "mug", f"c{k}"))
    again = StoredTranscript(open_store(url), session="run1")
    assert [e.to_json() for e in again.since("1")] == [
        {"id": "2", "at": 102.0, "text": "line 2", "source": "answer", "product_id": "mug",
         "reply_to": "c2"},
        {"id": "3", "at": 103.0, "text": "line 3", "source": "answer", "product_id": "mug",
         "reply_to": "c3"}]
    assert StoredTranscript(open_store(url), session="run2").since(None) == []


def test_stored_transcript_answers_from_memory_and_from_the_table(tmp_path: Path) -> None:
    """The daemon's own copy answers polls; a transcript over the same session that did
    not see the lines (a restart) reads them back from the table."""
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    first = StoredTranscript(store, session="s")
    for i in range(1, 6):
        first.add(TranscriptEntry(str(i), 1000.0 + i, f"line {i}", "script", None, None))
    assert [e.id for e in first.since("3")] == ["4", "5"]
    again = StoredTranscript(store, session="s")
    assert [e.text for e in again.since(None)] == [f"line {i}" for i in range(1, 6)]
    assert [e.id for e in again.since("4")] == ["5"]
    store.close()
