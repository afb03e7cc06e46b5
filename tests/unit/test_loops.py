"""Idle-loop graph and walker on synthetic footage whose content is known exactly."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from livetwin.avatar.face import EYE_OUTER_L, EYE_OUTER_R
from livetwin.avatar.loops import (
    APPEARANCE_DIM,
    FACE_THUMB,
    FRAME_THUMB,
    LoopGraph,
    appearance_features,
    box_from_landmarks,
    build_loop_graph,
)
from livetwin.errors import BundleError, MediaError
from livetwin.render.loop_walker import LoopWalker

FPS = 25.0
PERIOD = 50  # frames: the synthetic head sways with this period
LOWER_LIP = (14, 17, 84, 87, 88, 91, 95, 146, 178, 181, 314, 317, 318, 321, 324, 375, 402, 405)


def synthetic_clip(
    n: int = 1500, *, idle_from: int | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Footage of a face swaying with period PERIOD and talking (mouth cycling every 10
    frames, which divides PERIOD) until `idle_from`, then silent with a closed mouth."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    phase = 2 * np.pi * t / PERIOD
    talking = t < (n if idle_from is None else idle_from)
    aperture = np.where(talking, 0.2 * np.maximum(0.0, np.sin(2 * np.pi * t / 10)), 0.0)
    template = np.column_stack(
        [rng.uniform(80, 180, 478), rng.uniform(70, 200, 478), rng.uniform(-10, 10, 478)]
    ).astype(np.float32)
    template[EYE_OUTER_L, :2] = (100, 110)
    template[EYE_OUTER_R, :2] = (160, 110)
    lm = np.repeat(template[None], n, axis=0)
    lm[:, :, 0] += (6 * np.sin(phase))[:, None]
    lm[:, :, 1] += (3 * np.cos(phase))[:, None]
    lm[:, list(LOWER_LIP), 1] += (aperture * 60)[:, None]
    lm[:, :, :2] += rng.normal(0, 0.02, (n, 478, 2))
    state = np.column_stack(
        [np.sin(phase), np.cos(phase), np.sin(2 * phase), np.cos(2 * phase), 5 * aperture]
    )
    weights = rng.normal(0, 1, (state.shape[1], APPEARANCE_DIM))
    app = 0.5 + 0.2 * np.tanh(state @ weights) + rng.normal(0, 1e-3, (n, APPEARANCE_DIM))
    mouth = np.column_stack([aperture, np.full(n, 0.5), np.full(n, 0.18), np.zeros(n)])
    return {
        "appearance": app.astype(np.float32),
        "landmarks": lm.astype(np.float32),
        "mouth": mouth.astype(np.float32),
        "usable": np.ones(n, bool),
        "speech": talking.astype(np.float32),
    }


def build(clip: dict[str, np.ndarray], **kw: float) -> LoopGraph:
    return build_loop_graph(
        clip["appearance"],
        clip["landmarks"],
        clip["mouth"],
        clip["usable"],
        FPS,
        clip["speech"],
        **kw,
    )


@pytest.fixture(scope="module")
def periodic() -> LoopGraph:
    return build(synthetic_clip())


@pytest.fixture(scope="module")
def half_idle() -> LoopGraph:
    return build(synthetic_clip(idle_from=750))


def walk(graph: LoopGraph, steps: int, *, prefer_idle: bool, seed: int = 1) -> np.ndarray:
    walker = LoopWalker(graph, np.random.default_rng(seed), prefer_idle=prefer_idle)
    return np.array([walker.next() for _ in range(steps)])


def edge_set(graph: LoopGraph) -> set[tuple[int, int]]:
    return set(zip(graph.src.tolist(), graph.dst.tolist(), strict=True))


def reaches_forever(graph: LoopGraph) -> np.ndarray:
    """Frames from which an endless walk exists: prune frames without successors."""
    alive = graph.usable.copy()
    while True:
        live_edge = alive[graph.src] & alive[graph.dst]
        has_out = np.bincount(graph.src[live_edge], minlength=graph.n_frames) > 0
        new = alive & has_out
        if (new == alive).all():
            return alive
        alive = new


# ---------------------------------------------------------------------------- graph


def test_finds_the_period_jumps_and_no_others(periodic: LoopGraph) -> None:
    jump = periodic.is_jump
    skip = periodic.dst[jump] - (periodic.src[jump] + 1)
    off_phase = (skip + PERIOD // 2) % PERIOD - PERIOD // 2
    assert jump.sum() > 300
    # Exact: frame j is i + 1 plus whole periods. At the corners of the cost matrix a
    # neighbour one frame off may be the best there is.
    assert np.mean(off_phase == 0) > 0.99
    assert np.abs(off_phase).max() <= 1
    assert np.median(periodic.cost[jump]) < 0.3
    assert periodic.stats().exit_within_1s > 0.9
    assert periodic.stats().forced_transitions <= 1


def test_no_jump_shorter_than_min_jump(periodic: LoopGraph) -> None:
    clip = synthetic_clip()
    for min_jump_s in (1.0, 2.5):
        graph = build(clip, min_jump_s=min_jump_s)
        jump = graph.is_jump
        skip = np.abs(graph.dst[jump] - (graph.src[jump] + 1))
        assert skip.min() >= min_jump_s * FPS
    assert periodic.stats().transitions == int(periodic.is_jump.sum())


def test_every_usable_frame_plays_on_forever(periodic: LoopGraph) -> None:
    assert reaches_forever(periodic).all()
    assert periodic.successors(periodic.n_frames - 1)[0].size > 0


def test_unusable_frames_are_never_entered() -> None:
    clip = synthetic_clip()
    clip["usable"][300:340] = False
    clip["usable"][1480:] = False
    clip["landmarks"][~clip["usable"]] = np.nan  # tracking lost: garbage must not leak
    graph = build(clip)
    assert graph.usable[graph.dst].all()
    assert (reaches_forever(graph) == graph.usable).all()
    seq = walk(graph, 20_000, prefer_idle=False)
    assert graph.usable[seq].all()


def test_dead_ends_get_a_way_out_even_without_cheap_jumps() -> None:
    # Non-periodic drift: nothing looks alike, so only forced exits keep it playing.
    clip = synthetic_clip(200)
    rng = np.random.default_rng(3)
    clip["appearance"] = np.cumsum(rng.normal(0, 0.05, clip["appearance"].shape), axis=0)
    clip["appearance"] = clip["appearance"].astype(np.float32)
    graph = build(clip)
    assert reaches_forever(graph).all()
    assert graph.stats().forced_transitions >= 1


def test_too_short_footage_is_refused() -> None:
    clip = synthetic_clip(40)
    with pytest.raises(MediaError):
        build(clip)


def test_idle_score_follows_mouth_and_speech(half_idle: LoopGraph) -> None:
    idle = half_idle.idle_score
    assert idle[800:1450].mean() > 0.8
    assert idle[50:700].mean() < 0.2
    assert ((idle >= 0) & (idle <= 1)).all()


def test_save_load_round_trip(periodic: LoopGraph, tmp_path: Path) -> None:
    path = tmp_path / "loops.npz"
    periodic.save(path)
    back = LoopGraph.load(path)
    for name in ("src", "dst", "cost", "idle_score", "usable", "offsets"):
        np.testing.assert_array_equal(getattr(back, name), getattr(periodic, name))
    assert back.fps == periodic.fps and back.max_cost == periodic.max_cost
    assert back.stats() == periodic.stats()
    assert path.stat().st_size < 200_000


def test_load_rejects_a_broken_file(periodic: LoopGraph, tmp_path: Path) -> None:
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a graph")
    with pytest.raises(BundleError):
        LoopGraph.load(path)
    periodic.save(path)
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    with pytest.raises(BundleError):
        LoopGraph.load(path)
    with pytest.raises(BundleError):
        LoopGraph.load(tmp_path / "missing.npz")


def test_graph_arrays_are_frozen(periodic: LoopGraph) -> None:
    with pytest.raises(ValueError):
        periodic.cost[0] = 1.0


def test_successors_lists_natural_step_and_jumps(periodic: LoopGraph) -> None:
    dst, cost = periodic.successors(100)
    assert 101 in dst.tolist()
    assert cost[dst.tolist().index(101)] == 0
    assert np.all(np.diff(dst) > 0)


def test_stats_numbers_are_consistent(periodic: LoopGraph) -> None:
    stats = periodic.stats()
    assert stats.n_frames == stats.usable_frames == 1500
    assert 0 <= stats.exit_within_1s <= stats.exit_within_2s <= stats.exit_within_5s <= 1
    assert stats.median_cost <= stats.p90_cost <= periodic.max_cost
    assert stats.main_component_share > 0.9
    assert set(stats.as_dict()) >= {"transitions", "median_cost", "exit_within_2s"}


# ---------------------------------------------------------------------------- walker


def longest_repeat(seq: np.ndarray, max_lag: int) -> int:
    """Smallest lag L <= max_lag at which some stretch of L frames is played twice in a
    row (a cycle of period L), or 0 if there is none."""
    for lag in range(1, max_lag + 1):
        same = np.concatenate([[False], seq[lag:] == seq[:-lag], [False]])
        edges = np.flatnonzero(np.diff(same.astype(np.int8)))
        runs = edges[1::2] - edges[::2]
        if len(runs) and runs.max() >= lag:
            return lag
    return 0


def test_longest_repeat_finds_a_replayed_stretch() -> None:
    seq = np.concatenate([np.arange(80), np.arange(50, 200)])  # 50..79 played twice
    assert longest_repeat(seq, 100) == 30
    partial = np.concatenate([np.arange(100), np.arange(50, 80), np.arange(100, 200)])
    assert longest_repeat(partial, 100) == 0  # a replay 20 frames later is no cycle
    assert longest_repeat(np.arange(500), 100) == 0


@pytest.mark.parametrize("prefer_idle", [False, True])
def test_walker_plays_an_hour_without_short_cycles(half_idle: LoopGraph, prefer_idle: bool) -> None:
    steps = int(3600 * FPS)
    seq = walk(half_idle, steps, prefer_idle=prefer_idle)
    pairs = set(zip(seq[:-1].tolist(), seq[1:].tolist(), strict=True))
    assert pairs <= edge_set(half_idle)
    # No jump is taken again within a minute, so no cycle is shorter than a minute.
    jumps = np.flatnonzero(seq[1:] != seq[:-1] + 1)
    last: dict[tuple[int, int], int] = {}
    for k in jumps:
        key = (int(seq[k]), int(seq[k + 1]))
        assert k - last.get(key, -(10**9)) >= 60 * FPS, key
        last[key] = int(k)
    assert longest_repeat(seq, int(60 * FPS)) == 0
    assert 5 < len(jumps) / 60 < 40  # jumps per minute: neither frozen nor jittery


def test_prefer_idle_raises_the_idle_score(half_idle: LoopGraph) -> None:
    steps = int(600 * FPS)
    busy = half_idle.idle_score[walk(half_idle, steps, prefer_idle=False)].mean()
    calm = half_idle.idle_score[walk(half_idle, steps, prefer_idle=True)].mean()
    assert calm > busy + 0.2, (busy, calm)
    assert calm > 0.7


def test_switching_to_idle_drifts_into_idle_frames(half_idle: LoopGraph) -> None:
    walker = LoopWalker(half_idle, np.random.default_rng(5), prefer_idle=False, start=100)
    for _ in range(50):
        walker.next()
    walker.prefer_idle = True
    later = [walker.next() for _ in range(int(20 * FPS))]
    assert half_idle.idle_score[later[-int(10 * FPS) :]].mean() > 0.7


def test_walker_is_reproducible_with_the_same_rng(periodic: LoopGraph) -> None:
    a = walk(periodic, 5000, prefer_idle=False, seed=9)
    b = walk(periodic, 5000, prefer_idle=False, seed=9)
    np.testing.assert_array_equal(a, b)


def test_path_to_reaches_the_target_through_edges(periodic: LoopGraph) -> None:
    walker = LoopWalker(periodic, np.random.default_rng(0), prefer_idle=False, start=10)
    walker.next()
    path = walker.path_to(900, max_steps=100)
    assert path is not None and path[-1] == 900 and len(path) <= 100
    pairs = zip([10, *path[:-1]], path, strict=True)
    assert set(pairs) <= edge_set(periodic)
    assert walker.steer_to(range(900, 905), max_steps=100)
    played = [walker.next() for _ in range(len(path))]
    assert played[-1] in range(900, 905)
    assert walker.path_to(walker.current, 10) == []


def test_path_to_says_when_a_target_is_out_of_reach(periodic: LoopGraph) -> None:
    walker = LoopWalker(periodic, np.random.default_rng(0), prefer_idle=False, start=10)
    walker.next()
    assert walker.path_to(900, max_steps=2) is None


def test_goto_cuts_and_refuses_unusable_frames() -> None:
    clip = synthetic_clip()
    clip["usable"][300:340] = False
    graph = build(clip)
    walker = LoopWalker(graph, np.random.default_rng(0), start=5)
    assert walker.next() == 5
    walker.goto(700)
    assert walker.next() == 700
    assert walker.next() == 701
    with pytest.raises(ValueError):
        walker.goto(310)


# ---------------------------------------------------------------------------- features


def test_appearance_features_are_cheap_on_a_portrait_frame() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (1920, 1080, 3), dtype=np.uint8)
    box = (300, 400, 700, 900)
    feats = appearance_features(rgb, box)
    assert feats.shape == (APPEARANCE_DIM,) and feats.dtype == np.float32
    times = deque(maxlen=50)
    for _ in range(50):
        t0 = time.perf_counter()
        appearance_features(rgb, box)
        times.append(time.perf_counter() - t0)
    assert min(times) < 0.5e-3


def test_appearance_features_without_a_face_box() -> None:
    gray = np.full((256, 256, 3), 128, np.uint8)
    frame_only = appearance_features(gray, None)
    assert np.count_nonzero(frame_only) == FRAME_THUMB**2  # gray: no colour either
    assert np.allclose(frame_only[frame_only > 0], 128 / 255)
    with_face = appearance_features(gray, (60, 40, 200, 220))
    assert np.count_nonzero(with_face) == FRAME_THUMB**2 + FACE_THUMB**2
    assert np.array_equal(appearance_features(gray, (300, 300, 400, 400)), frame_only)
    red = np.zeros((256, 256, 3), np.uint8)
    red[..., 0] = 200
    assert np.count_nonzero(appearance_features(red, (60, 40, 200, 220))) == APPEARANCE_DIM


def test_box_from_landmarks_covers_the_face() -> None:
    lm = synthetic_clip(60)["landmarks"][0]
    x0, y0, x1, y1 = box_from_landmarks(lm)
    assert x0 <= lm[:, 0].min() and x1 >= lm[:, 0].max()
    assert y0 <= lm[:, 1].min() and y1 >= lm[:, 1].max()
