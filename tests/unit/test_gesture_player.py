"""GesturePlayer's state machine on a hand-made loop graph: entering through graph edges,
playing every clip frame once, leaving naturally, queueing, and the entry fallbacks when
the clip start is out of reach."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from livetwin.avatar.loops import LoopGraph
from livetwin.errors import BundleError
from livetwin.render.gestures import (
    EXIT_S,
    GestureClip,
    GestureEvent,
    GesturePlayer,
    load_clips,
)
from livetwin.render.loop_walker import LoopWalker

N, FPS = 200, 10.0
# Jumps (src, dst, cost): cheap ones under the threshold (1.5), one expensive 30 -> 120.
JUMPS = [(199, 0, 1.0), (49, 100, 1.0), (149, 20, 1.0), (30, 120, 3.0), (179, 60, 1.0)]
CLIPS = {
    "wave": GestureClip("wave", 100, 120),  # entered by 49 -> 100
    "late": GestureClip("late", 98, 118),  # 98 unreachable soon; 100 is (skips 2 frames)
    "far": GestureClip("far", 120, 140),  # only the expensive jump 30 -> 120 leads near
    "nod": GestureClip("nod", 160, 170),  # reached by natural play only
}


def graph() -> LoopGraph:
    edges = [(i, i + 1, 0.0) for i in range(N - 1)] + JUMPS
    edges.sort()
    src, dst, cost = (np.array(x) for x in zip(*edges, strict=True))
    return LoopGraph(src=src, dst=dst, cost=cost, idle_score=np.ones(N), usable=np.ones(N, bool),
                     fps=FPS, max_cost=1.5)


def player(start: int, seed: int = 0) -> GesturePlayer:
    walker = LoopWalker(graph(), np.random.default_rng(seed), prefer_idle=False, start=start)
    p = GesturePlayer(walker, CLIPS)
    p.next()  # shows `start`
    return p


def run(p: GesturePlayer, steps: int) -> tuple[list[int], list[str]]:
    frames, states = [], []
    for _ in range(steps):
        frames.append(p.next())
        states.append(p.state)
    return frames, states


def edges(g: LoopGraph) -> dict[tuple[int, int], float]:
    return {(int(s), int(d)): float(c) for s, d, c in zip(g.src, g.dst, g.cost, strict=True)}


def test_idle_player_is_the_bare_walker() -> None:
    g = graph()
    bare = LoopWalker(g, np.random.default_rng(3), prefer_idle=False)
    p = GesturePlayer(LoopWalker(g, np.random.default_rng(3), prefer_idle=False), CLIPS)
    assert [p.next() for _ in range(500)] == [bare.next() for _ in range(500)]
    assert p.state == "idle" and p.current_gesture is None and not p.events
    p.prefer_idle = True
    assert p.walker.prefer_idle


def test_clip_entered_played_and_left_through_the_graph() -> None:
    p = player(start=40)
    seen: list[GestureEvent] = []
    p.on_event = seen.append
    assert p.request("wave", max_wait_s=2.0)
    frames, states = run(p, 80)
    known = edges(p.graph)
    seq = [40, *frames]
    assert all((a, b) in known for a, b in itertools.pairwise(seq))
    first = states.index("playing")
    assert frames[:first] == list(range(41, 50))  # natural play to 49, then 49 -> 100
    assert set(states[:first]) == {"entering"}
    played = [f for f, s in zip(frames, states, strict=True) if s == "playing"]
    assert played == list(range(100, 120))
    last = first + len(played)
    exit_n = round(EXIT_S * FPS)
    assert states[last:last + exit_n] == ["leaving"] * exit_n
    assert frames[last:last + exit_n] == list(range(120, 120 + exit_n))
    assert states[last + exit_n] == "idle"
    assert [e.kind for e in p.events] == ["start", "end"] and seen == p.events
    start, end = p.events
    assert (start.gesture, start.frame, start.step) == ("wave", 100, first + 1)
    assert (end.frame, end.step) == (120, last + 1)
    assert start.entry.kind == "path" and not start.entry.visible
    assert start.entry.wait_frames == first + 1 and start.entry.max_jump_cost == 1.0


def test_state_and_current_gesture_follow_the_phases() -> None:
    p = player(start=45)
    p.request("wave")
    seen = set()
    for _ in range(60):
        p.next()
        seen.add((p.state, p.current_gesture))
    assert seen == {("entering", "wave"), ("playing", "wave"), ("leaving", "wave"),
                    ("idle", None)}


def test_unknown_gesture_is_a_clear_error() -> None:
    p = player(start=0)
    with pytest.raises(KeyError, match=r"unknown gesture 'jump' \(known: far, late, nod, wave\)"):
        p.request("jump")
    empty = GesturePlayer(LoopWalker(graph(), np.random.default_rng(0)), {})
    with pytest.raises(KeyError, match="declares no gestures"):
        empty.request("wave")


def test_requests_while_playing_are_queued_then_refused() -> None:
    p = player(start=45)
    assert p.request("wave")
    run(p, 10)
    assert p.state == "playing"
    assert p.request("nod", max_wait_s=5.0)  # queued behind wave
    assert not p.request("wave")  # one waits already: refused
    assert p.unfinished == 2
    frames, states = run(p, 200)
    kinds = [(e.kind, e.gesture) for e in p.events]
    assert kinds == [("start", "wave"), ("end", "wave"), ("start", "nod"), ("end", "nod")]
    played = [f for f, s in zip(frames, states, strict=True) if s == "playing"]
    assert played == [*range(106, 120), *range(160, 170)]  # wave from its 7th frame on
    known = edges(p.graph)
    assert all((a, b) in known for a, b in itertools.pairwise(frames))
    assert p.request("wave")  # idle again: accepted


def test_late_entry_skips_the_first_frames_when_the_start_is_out_of_reach() -> None:
    p = player(start=45)
    assert p.request("late", max_wait_s=1.0)  # 98 is 53 frames away; 100 is 5
    frames, states = run(p, 40)
    entry = p.events[0].entry
    assert (entry.kind, entry.skipped, entry.visible) == ("late", 2, False)
    assert [f for f, s in zip(frames, states, strict=True) if s == "playing"] == list(
        range(100, 118))


def test_expensive_jump_is_taken_and_reported_only_without_alternative() -> None:
    p = player(start=27)
    assert p.request("far", max_wait_s=1.0)
    frames, _ = run(p, 30)
    entry = p.events[0].entry
    assert entry.kind == "over_threshold" and entry.visible and entry.max_jump_cost == 3.0
    assert frames[:4] == [28, 29, 30, 120]


def test_unreachable_clip_is_cut_to_and_reported() -> None:
    p = player(start=60)
    assert p.request("nod", max_wait_s=1.0)  # 160 is 100 natural frames away, no jump
    frames, states = run(p, 20)
    entry = p.events[0].entry
    assert entry.kind == "cut" and entry.visible and entry.max_jump_cost == float("inf")
    assert frames[0] == 160 and states[0] == "playing" and entry.wait_frames == 1
    assert [f for f, s in zip(frames, states, strict=True) if s == "playing"] == list(
        range(160, 170))


def test_entry_does_not_pass_through_the_clip() -> None:
    # From inside the clip (the idle walk was there) it plays on out of it first and
    # comes back to its start through the graph, never re-entering it midway.
    p = player(start=105)
    p.request("wave", max_wait_s=30.0)
    frames, states = run(p, 300)
    first = states.index("playing")
    assert frames[:14] == list(range(106, 120)) and frames[first] == 100
    assert not set(frames[14:first]) & set(range(100, 120))


def test_load_clips(tmp_path: Path) -> None:
    assert load_clips(tmp_path) == {}
    (tmp_path / "gestures.yaml").write_text(
        "gestures:\n- {id: nod, start_s: 2.0, end_s: 3.0, start_frame: 50, end_frame: 75,"
        " tracked: 1.0}\n")
    clips = load_clips(tmp_path)
    assert clips == {"nod": GestureClip("nod", 50, 75)} and len(clips["nod"]) == 25
    (tmp_path / "gestures.yaml").write_text("gestures: [{id: nod}]\n")
    with pytest.raises(BundleError, match="not a readable gestures file"):
        load_clips(tmp_path)
    walker = LoopWalker(graph(), np.random.default_rng(0))
    with pytest.raises(BundleError, match="outside the footage"):
        GesturePlayer(walker, {"x": GestureClip("x", 190, 210)})


def test_path_to_max_cost_and_avoid() -> None:
    walker = LoopWalker(graph(), np.random.default_rng(0), start=27)
    walker.next()
    assert walker.path_to(120, 10) == [28, 29, 30, 120]
    assert walker.path_to(120, 10, max_cost=1.5) is None
    assert walker.path_to(35, 10, avoid=[31]) is None
    walker.play([5, 6, 7])
    assert walker.queued == 3 and walker.origin == 7
    assert [walker.next() for _ in range(4)] == [5, 6, 7, 8]
