"""Crash safety of the show: the director's position (the rest of the pitch, the
rotation, the no-repeat memory, waiting operator lines) goes to the store on every line
start and a new director continues from it; the SQLite store runs in WAL mode with
synchronous=NORMAL and keeps its state record whole."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

from livetwin.config import ShowConfig
from livetwin.events import Product, UtteranceSource
from livetwin.runtime.live_events import LineStarted
from livetwin.show.catalog import CatalogItem
from livetwin.show.director import Director, DirectorSettings, ShowItem
from livetwin.show.runner import STATE_KEY, open_show
from livetwin.show.scripts import generate, generate_draft, sentences
from livetwin.show.strategy import Strategy, load_strategy
from livetwin.show.templates import Templates, load_templates
from livetwin.store import open_store
from livetwin.store.db import ScriptRecord

from ..live_harness import Events, Ticker, make_live

PRODUCTS = [
    Product(
        "lip-tint",
        "Aurora Velvet Lip Tint",
        99.0,
        "CNY",
        list_price=159.0,
        stock=500,
        facts=(
            "six shades, from nude to berry",
            "3.5 grams per tube",
            "stays on for about eight hours",
        ),
    ),
    Product(
        "mug", "Stone Mug", 39.0, "CNY", facts=("hand glazed", "holds 350 ml", "microwave safe")
    ),
]
SETTINGS = DirectorSettings(max_gap_s=6.0, repeat_window_s=600.0, lang="en")


def items(t: Templates, products: list[Product] = PRODUCTS) -> list[ShowItem]:
    return [
        ShowItem(
            p, 1.0, ScriptRecord(i, p.id, "en", 1, "approved", "template", generate(p, t).lines)
        )
        for i, p in enumerate(products)
    ]


def director(t: Templates, show: list[ShowItem], seed: int = 1) -> Director:
    return Director(show, t, Strategy(load_strategy()), SETTINGS, random.Random(seed))


def speak(d: Director, now: float, n: int) -> tuple[float, list[str]]:
    """Say `n` director lines one after the other (each 3 s, then the pause)."""
    said = []
    for _ in range(n):
        cue = None
        while cue is None:
            cue = d.next_line(now)
            now += 0.5
        d.on_line_started(now, cue.utterance.id)
        said.append(cue.utterance.text)
        now += 3.0
        d.on_line_ended(now, cue.utterance.id)
    return now, said


def mid_pitch(d: Director, now: float) -> tuple[float, list[str]]:
    """Speak until a pitch is in progress with lines still planned."""
    said: list[str] = []
    for _ in range(40):
        now, more = speak(d, now, 1)
        said += more
        if d.snapshot(now)["plan"]:
            return now, said
    raise AssertionError("no pitch in progress after 40 lines")


def roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(state))  # what the store keeps
    return out


def test_a_new_director_continues_the_pitch_with_the_next_line() -> None:
    t = load_templates("en")
    show = items(t)
    d = director(t, show)
    now, said = mid_pitch(d, 0.0)
    state = roundtrip(d.snapshot(now))
    plan = [p["text"] for p in state["plan"]]
    # the director that was not killed says these next
    _, reference = speak(d, now, len(plan))
    assert reference == plan
    # a fresh one (the restarted daemon, 20 s later, its clock starting at 0 again)
    again = director(t, items(t), seed=99)
    assert again.restore(state, now=5.0, away_s=20.0)
    later, resumed = speak(again, 5.0, len(plan))
    assert resumed == plan
    assert again.current_product == d.current_product
    # and nothing said before the crash comes back within the repeat window
    _, after = speak(again, later, 30)
    assert not set(after) & set(said)


def test_a_line_issued_but_never_heard_comes_first() -> None:
    t = load_templates("en")
    d = director(t, items(t))
    now, _ = mid_pitch(d, 0.0)
    cue = None
    while cue is None:
        cue = d.next_line(now)
        now += 0.5
    # killed before the issued line started sounding
    state = roundtrip(d.snapshot(now))
    again = director(t, items(t))
    assert again.restore(state, now=0.0, away_s=3.0)
    _, first = speak(again, 0.0, 1)
    assert first == [cue.utterance.text]


def test_a_withdrawn_script_is_not_resumed_and_operator_lines_wait() -> None:
    t = load_templates("en")
    d = director(t, items(t))
    now, _ = mid_pitch(d, 0.0)
    d.queue_operator("The operator says hello.", now)
    state = roundtrip(d.snapshot(now))
    product = state["plan"][0]["product_id"]
    # while the daemon was down the script of that product was rejected
    show = [i if i.product.id != product else ShowItem(i.product) for i in items(t)]
    again = director(t, show)
    assert again.restore(state, now=0.0, away_s=10.0)
    _, lines = speak(again, 0.0, 6)
    assert lines[0] == "The operator says hello."
    withdrawn = {
        s
        for i in items(t)
        if i.product.id == product and i.script
        for ln in i.script.lines
        for s in sentences(ln.text)
    }
    assert not set(lines) & withdrawn


def test_a_foreign_or_broken_record_means_a_fresh_start() -> None:
    t = load_templates("en")
    d = director(t, items(t))
    assert not d.restore({"v": 1, "lang": "de"}, 0.0)
    assert not d.restore({"v": 999}, 0.0)
    assert not d.restore({"v": 1, "lang": "en", "said": [["x"]]}, 0.0)
    cue = d.next_line(0.0)
    assert cue is not None and cue.utterance.source in (
        UtteranceSource.SCRIPT,
        UtteranceSource.FILLER,
    )


def test_sqlite_store_is_wal_with_normal_sync_and_keeps_the_state(tmp_path: Path) -> None:
    path = tmp_path / "livetwin.db"
    store = open_store(f"sqlite:///{path}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    assert store.load_state("show") is None
    store.save_state("show", {"v": 1, "plan": [{"text": "a"}]})
    store.save_state("show", {"v": 1, "plan": [{"text": "b"}]})
    store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert raw.execute("SELECT count(*) FROM show_state").fetchone() == (1,)
    raw.close()
    again = open_store(f"sqlite:///{path}")
    found = again.load_state("show")
    assert found is not None and found[0] == {"v": 1, "plan": [{"text": "b"}]}
    assert "sqlite (wal)" in again.ping()
    again.close()


def test_the_runner_keeps_the_position_and_a_new_show_resumes_it(tmp_path: Path) -> None:
    """A real LiveTwin speaks the approved script through open_show; the store holds the
    position after each line start; a second open_show (the restarted daemon) says the
    stored next line first."""
    store = open_store(f"sqlite:///{tmp_path / 'show.db'}")
    store.import_catalog([CatalogItem(p) for p in PRODUCTS])
    t = load_templates("en")
    for p in PRODUCTS:
        store.decide(generate_draft(store, p.id, t).id, "approved")
    cfg = ShowConfig(max_gap_s=2.0)

    def run() -> tuple[list[str], dict[str, Any] | None]:
        """One daemon run: three lines, then stopped; what it said and what it kept."""
        live = make_live()
        runner = open_show(live, store, cfg)
        runner.poll_s = 0.05
        runner.on_viewers(50)
        events = Events(live)
        try:
            runner.start()
            with Ticker(live):
                events.wait(
                    lambda e: sum(isinstance(x, LineStarted) for x in events.items) >= 3, 30
                )
        finally:
            runner.stop()
            live.close()
        found = store.load_state(STATE_KEY)
        assert found is not None and roundtrip(found[0]) == found[0]
        return [e.utterance.text for e in events.items if isinstance(e, LineStarted)], found[0]

    checked = 0
    _, state = run()
    for _ in range(6):
        said, next_state = run()
        if state is not None and state["plan"]:
            assert said[0] == state["plan"][0]["text"]
            checked += 1
        state = next_state
        if checked >= 2:
            break
    assert checked >= 1
    store.close()
