"""The re-dub test's loop walks (render/redub.py, step 4 of its doc): the first starts
where `say` starts, the others where the live daemon might be when speech begins."""

from __future__ import annotations

import numpy as np

from livetwin.avatar.loops import LoopGraph
from livetwin.render.redub import _walk

N, FPS = 400, 25.0
IDLE_PEAK = 250


def graph() -> LoopGraph:
    # natural play plus a few jumps; one clear idle frame
    edges = [(i, i + 1, 0.0) for i in range(N - 1)] + [(399, 0, 1.0), (120, 300, 1.0)]
    edges.sort()
    src, dst, cost = (np.array(x) for x in zip(*edges, strict=True))
    idle = np.full(N, 0.1)
    idle[IDLE_PEAK] = 1.0
    return LoopGraph(src=src, dst=dst, cost=cost, idle_score=idle, usable=np.ones(N, bool),
                     fps=FPS, max_cost=1.5)


def test_the_first_walk_starts_at_says_idle_frame_whatever_the_seed() -> None:
    g = graph()
    assert {_walk(g, 90, FPS, seed)[0] for seed in range(4)} == {IDLE_PEAK}


def test_the_other_walks_start_at_different_frames() -> None:
    # A 3.6 s hold-out can pass without a single jump: walks that all began at the idle
    # frame were one walk counted five times.
    g = graph()
    walks = [_walk(g, 90, FPS, seed, idle_start=False) for seed in range(1, 5)]
    assert len({w[0] for w in walks}) >= 3
    assert all(len(w) == 90 for w in walks)
