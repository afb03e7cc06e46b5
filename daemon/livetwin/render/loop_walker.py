"""Playing the idle-loop graph forever: the walker the renderer calls once per frame,
avoiding short repeating cycles, drifting toward idle frames while the twin is silent, and
steering toward target frames (gesture clips enter and leave through the graph)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from livetwin.avatar.loops import LoopGraph

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


# Walker scoring, in units of transition cost (a kept jump costs at most `max_cost`,
# 1.5-2.5): retaking a jump within `no_repeat_s` costs REPEAT_PENALTY..2x (more the more
# recent, so the oldest wins when every jump ahead was taken lately); landing on frames
# shown within `recent_s` costs up to RECENT_WEIGHT (more the more recent); each second a
# segment is longer or shorter than a length drawn at random between `min_segment_s` and
# `max_segment_s` costs LENGTH_WEIGHT, and each second short of `min_segment_s`
# SHORT_WEIGHT more; the landing frame's future cost (the cheapest jumps ahead of it,
# with the repeat penalties of the moment) counts FUTURE_WEIGHT; heading for footage not
# shown for long (discounted staleness over EXPLORE_HORIZON_S) is worth up to
# EXPLORE_WEIGHT; in idle mode the idle share of the next seconds is worth IDLE_WEIGHT,
# and the idle value of the best way on from the landing frame (which guides the drift
# over several jumps) IDLE_VALUE_WEIGHT.
REPEAT_PENALTY = 50.0
RECENT_WEIGHT = 6.0
LENGTH_WEIGHT = 0.5
SHORT_WEIGHT = 3.0
# Two jumps fewer than MIN_HOLD frames apart cost HOLD_PENALTY more: a last resort, e.g.
# when the only other way on is a jump just taken.
MIN_HOLD = 3
HOLD_PENALTY = 5.0
IDLE_WEIGHT = 6.0
IDLE_VALUE_WEIGHT = 2.0
FUTURE_WEIGHT = 1.0
SEARCH_HORIZON_S = 60.0  # how far along the natural run a segment may end
EXPLORE_WEIGHT = 4.0
EXPLORE_HORIZON_S = 10.0
EXPLORE_ITERATIONS = 40
STALE_S = 120.0  # a frame not shown for this long is as good as new
JUMP_PENALTY = 0.3  # path_to: one jump more must save at least this much cost
VALUE_HORIZON_S = 2.0  # discount horizon of the idle value and the future cost


class LoopWalker:
    """Plays a LoopGraph forever, one frame index per output frame (`next()`).

    It plays natural runs of about `min_segment_s`..`max_segment_s` and then takes a
    jump, drawn at random (Gumbel noise of `temperature`) among cheap ones, avoiding jumps
    taken within `no_repeat_s` and landing on frames shown within `recent_s`, and heading
    for parts of the footage not shown for long; so there is no short repeating cycle.
    With `prefer_idle` (set it while the twin is silent) it drifts toward frames with a
    high idle score and stays there. `goto` cuts to a frame (start, end of a gesture
    clip); `path_to`/`steer_to` reach a target frame range through the graph."""

    def __init__(
        self,
        graph: LoopGraph,
        rng: np.random.Generator,
        *,
        prefer_idle: bool = True,
        start: int | None = None,
        min_segment_s: float = 1.0,
        max_segment_s: float = 6.0,
        no_repeat_s: float = 60.0,
        recent_s: float = 20.0,
        temperature: float = 0.5,
    ) -> None:
        self.graph = graph
        self._rng = rng
        fps = graph.fps
        self._min_seg = max(1, round(min_segment_s * fps))
        self._max_seg = max(self._min_seg, round(max_segment_s * fps))
        self._no_repeat = max(1, round(no_repeat_s * fps))
        self._recent = round(recent_s * fps)
        self._horizon = round(SEARCH_HORIZON_S * fps)
        self._temperature = temperature
        self._jump = graph.is_jump
        self._run_end = _run_ends(graph)
        self._gamma = float(np.exp(-1.0 / (VALUE_HORIZON_S * fps)))
        self._future = _future_cost(graph, self._gamma)
        # Scaled so the most idle way on is worth 1: footage without a single fully idle
        # frame still drifts toward its calmest parts.
        self._idle_scale = 1.0 / max(float(graph.idle_score.max()), 1e-6)
        self._idle_value = _idle_value(graph, self._gamma)
        self._idle_cumsum = np.concatenate([[0.0], np.cumsum(graph.idle_score, dtype=np.float64)])
        self._explore_gamma = float(np.exp(-1.0 / (EXPLORE_HORIZON_S * fps)))
        self._explore = np.ones(graph.n_frames)
        self._stale = round(STALE_S * fps)
        self._by_dst = np.argsort(graph.dst, kind="stable")
        self._jump_taken = np.full(len(graph.src), -(10**12), np.int64)
        self._last_seen = np.full(graph.n_frames, -(10**12), np.int64)
        self._step = 0
        self._cur = -1
        self._plan = -1  # edge index of the jump that ends the current segment
        self._queue: list[int] = []  # frames to show next (steering or a cut), reversed
        self._prefer_idle = prefer_idle
        first = self._pick_start() if start is None else start
        self.goto(first)

    @property
    def current(self) -> int:
        """The frame returned by the last `next()` (-1 before the first)."""
        return self._cur

    @property
    def prefer_idle(self) -> bool:
        """True while the twin is silent: drift toward and stay in idle frames."""
        return self._prefer_idle

    @prefer_idle.setter
    def prefer_idle(self, value: bool) -> None:
        if value != self._prefer_idle:
            self._prefer_idle = value
            self._plan = -1  # replan for the new mode at the next frame

    @property
    def steering(self) -> bool:
        """True while a path from `steer_to` is being played."""
        return bool(self._queue)

    def next(self) -> int:
        """The frame to show next."""
        if self._queue:
            frame = self._queue.pop()
        else:
            if self._plan < 0:
                self._plan = self._plan_segment()
            if self._cur == self.graph.src[self._plan]:
                frame = int(self.graph.dst[self._plan])
                self._plan = -1
            else:
                frame = self._cur + 1
        self._visit(frame)
        return frame

    def goto(self, frame: int) -> None:
        """Cut to `frame`: the next `next()` returns it (start, or after a gesture clip)."""
        if not (0 <= frame < self.graph.n_frames and self.graph.usable[frame]):
            raise ValueError(f"frame {frame} is not a usable frame of the loop graph")
        self._queue = [int(frame)]
        self._plan = -1

    @property
    def queued(self) -> int:
        """Frames queued (by `goto`, `steer_to` or `play`) that `next()` returns first."""
        return len(self._queue)

    def play(self, frames: Iterable[int]) -> None:
        """Queue `frames` (a gesture clip) after what is queued: `next()` returns them in
        order, then the walker plays on from the last one through the graph (so it must
        be a usable frame). They need not be joined by graph edges."""
        frames = [int(f) for f in frames]
        if any(not 0 <= f < self.graph.n_frames for f in frames):
            raise ValueError("play: a frame lies outside the footage")
        self._queue = frames[::-1] + self._queue
        self._plan = -1

    def steer_to(
        self,
        targets: int | Iterable[int],
        max_steps: int,
        *,
        max_cost: float | None = None,
        avoid: Iterable[int] = (),
    ) -> bool:
        """Follow the cheapest path to one of `targets` (see `path_to`); False if none."""
        path = self.path_to(targets, max_steps, max_cost=max_cost, avoid=avoid)
        if path is None:
            return False
        self._queue = path[::-1] + self._queue  # after what is queued (a pending cut)
        self._plan = -1
        return True

    def path_to(
        self,
        targets: int | Iterable[int],
        max_steps: int,
        *,
        max_cost: float | None = None,
        avoid: Iterable[int] = (),
    ) -> list[int] | None:
        """The frames `next()` would return to reach one of `targets` within `max_steps`
        frames through natural steps and jumps, the cheapest way (each jump adds its cost
        plus JUMP_PENALTY); [] if already there, None if out of reach. It starts where the
        walker will be once a queued cut or path is played. With `max_cost` only jumps
        costing at most that are taken; frames in `avoid` (other than targets) are never
        passed through."""
        n = self.graph.n_frames
        want = np.zeros(n, bool)
        want[np.asarray(list(_as_iter(targets)), np.int64)] = True
        want &= self.graph.usable
        if not want.any():
            return None
        origin = self.origin
        if want[origin]:
            return []
        blocked = np.zeros(n, bool)
        blocked[np.asarray(list(avoid), np.int64)] = True
        blocked &= ~want
        return _cheapest_path(
            self.graph, self._by_dst, origin, want, max_steps, max_cost, blocked
        )

    @property
    def origin(self) -> int:
        """Where the walker will be once what is queued is played (where `path_to`
        starts)."""
        return self._queue[0] if self._queue else self._cur

    # -- internals

    def _pick_start(self) -> int:
        usable = np.flatnonzero(self.graph.usable)
        if self._prefer_idle:
            return int(usable[np.argmax(self._idle_value[usable])])
        return int(self._rng.choice(usable))

    def _visit(self, frame: int) -> None:
        if self._cur >= 0 and frame != self._cur + 1:
            g = self.graph
            a, b = g.offsets[self._cur], g.offsets[self._cur + 1]
            hit = np.flatnonzero(g.dst[a:b] == frame)
            if len(hit):  # a cut by `goto` is not an edge and is not remembered
                self._jump_taken[a + hit[0]] = self._step
        self._last_seen[frame] = self._step
        self._step += 1
        self._cur = frame

    def _candidates(self) -> I64:
        """Jump edges that can end the segment starting at the current frame: anywhere
        on the natural run ahead, within SEARCH_HORIZON_S."""
        g, cur = self.graph, self._cur
        end = min(int(self._run_end[cur]), cur + self._horizon)
        idx = np.arange(g.offsets[cur], g.offsets[end + 1])
        idx = idx[self._jump[idx]]
        if not len(idx):  # build_loop_graph gives every run end a jump
            raise AssertionError("loop graph has a dead end")
        return idx

    def _plan_segment(self) -> int:
        g, cur, step = self.graph, self._cur, self._step
        idx = self._candidates()
        src, dst = g.src[idx], g.dst[idx]
        repeat = self._repeat_penalties()
        score = -g.cost[idx] - repeat[idx] - FUTURE_WEIGHT * self._future_value(repeat)[dst]
        ahead = np.minimum(dst[:, None] + np.arange(self._min_seg), g.n_frames - 1)
        fresh = (step - self._last_seen[ahead]) / self._recent
        fresh[(ahead >= cur) & (ahead <= src[:, None])] = 0.0  # shown in this segment
        score -= RECENT_WEIGHT * np.clip(1.0 - fresh, 0.0, 1.0).mean(axis=1)
        length = src - cur + 1
        target = self._rng.uniform(self._min_seg, self._max_seg)
        score -= LENGTH_WEIGHT * np.abs(length - target) / g.fps
        score -= SHORT_WEIGHT * np.maximum(self._min_seg - length, 0) / g.fps
        score -= HOLD_PENALTY * (length < MIN_HOLD)
        if self._prefer_idle:
            score += self._idle_scale * (
                IDLE_WEIGHT * self._idle_share(cur, src, dst)
                + IDLE_VALUE_WEIGHT * self._idle_value[dst]
            )
        score += EXPLORE_WEIGHT * self._explore_value()[dst]
        score += self._temperature * self._rng.gumbel(size=len(idx))
        return int(idx[int(np.argmax(score))])

    def _repeat_penalties(self) -> F64:
        """Per edge: the penalty for taking it now (jumps taken within `no_repeat_s`)."""
        age = (self._step - self._jump_taken) / self._no_repeat
        return REPEAT_PENALTY * np.where(age < 1.0, 2.0 - age, 0.0)

    def _future_value(self, repeat: F64) -> F64:
        """Per frame: the future cost with the repeat penalties of the moment, so that
        the walker does not land where the only ways on are jumps it just took (the
        end of the clip, say). Warm-started like `_explore_value`."""
        edge = self.graph.cost + repeat
        self._future = _bellman(
            self.graph,
            np.zeros(self.graph.n_frames),
            edge,
            self._gamma,
            "min",
            start=self._future,
            iterations=EXPLORE_ITERATIONS,
        )
        return self._future

    def _explore_value(self) -> F64:
        """Per frame: discounted staleness (time since shown, up to STALE_S) of the most
        novel way on from it, so the walker heads for parts of the footage it has not
        shown for long even when they are several jumps away. Warm-started from the last
        plan, a few value iterations a plan keep it current."""
        g, gamma = self.graph, self._explore_gamma
        stale = np.minimum((self._step - self._last_seen) / self._stale, 1.0)
        if self._prefer_idle:  # explore the idle parts only, not away from them
            stale *= np.minimum(g.idle_score * self._idle_scale, 1.0)
        base = (1.0 - gamma) * np.where(g.usable, stale, 0.0)
        self._explore = _bellman(
            g,
            base,
            np.zeros(len(g.src)),
            gamma,
            "max",
            start=self._explore,
            iterations=EXPLORE_ITERATIONS,
        )
        return self._explore

    def _idle_share(self, cur: int, src: I32, dst: I32) -> F64:
        """Mean idle score of the next frames if the segment ends with src -> dst: the
        rest of this run up to src, then at least `min_segment_s` (up to
        `max_segment_s` in all) from dst on."""
        cs = self._idle_cumsum
        played = src - cur + 1
        after = np.maximum(self._max_seg - played, self._min_seg)
        stop = np.minimum(dst + after, self._run_end[dst] + 1)
        total = cs[src + 1] - cs[cur] + cs[stop] - cs[dst]
        return total / (played + stop - dst)


def _as_iter(targets: int | Iterable[int]) -> Iterable[int]:
    return [int(targets)] if isinstance(targets, int | np.integer) else targets


def _run_ends(g: LoopGraph) -> I64:
    """Per frame: the last frame reached by natural steps alone."""
    n = g.n_frames
    has_next = np.zeros(n, bool)
    has_next[g.src[~g.is_jump]] = True
    end = np.arange(n, dtype=np.int64)
    for i in range(n - 2, -1, -1):
        if has_next[i]:
            end[i] = end[i + 1]
    return end


def _bellman(
    g: LoopGraph,
    base: F64,
    edge: F64,
    gamma: float,
    best: str,
    start: F64 | None = None,
    iterations: int | None = None,
) -> F64:
    """Fixed point of v = base + gamma * best_edges(edge + v[dst]) by value iteration
    (vectorised over edges, ~10-60 us an iteration; from scratch it takes about as many
    iterations as the longest natural run, warm-started from `start` a few suffice)."""
    nodes = np.flatnonzero(np.diff(g.offsets) > 0)
    starts = g.offsets[nodes]
    reduce = np.minimum.reduceat if best == "min" else np.maximum.reduceat
    v = base.copy() if start is None else start
    for _ in range(20 * g.n_frames if iterations is None else iterations):
        new = base.copy()
        new[nodes] += gamma * reduce(edge + v[g.dst], starts)
        if np.max(np.abs(new - v)) < 1e-5:
            return new
        v = new
    return v


def _future_cost(g: LoopGraph, gamma: float) -> F64:
    """Per frame: discounted cost of the jumps the cheapest way on from it will take
    (Video Textures' future cost: low where a cheap exit comes soon)."""
    base = np.zeros(g.n_frames)
    return _bellman(g, base, g.cost.astype(np.float64), gamma, "min")


def _idle_value(g: LoopGraph, gamma: float) -> F64:
    """Per frame: discounted mean idle score of the most idle way on from it."""
    base = (1.0 - gamma) * g.idle_score.astype(np.float64)
    return _bellman(g, base, np.zeros(len(g.src)), gamma, "max")


def _cheapest_path(
    g: LoopGraph,
    by_dst: I64,
    origin: int,
    want: B,
    max_steps: int,
    max_cost: float | None = None,
    blocked: B | None = None,
) -> list[int] | None:
    """Layered shortest path (exact under the step limit): layer s holds the cheapest
    cost of being at each frame after s frames. Jumps above `max_cost` and frames in
    `blocked` are never used."""
    src, dst = g.src[by_dst], g.dst[by_dst]
    w = (g.cost[by_dst] + JUMP_PENALTY * g.is_jump[by_dst] + 1e-3).astype(np.float64)
    if max_cost is not None:
        w[g.cost[by_dst] > max_cost] = np.inf
    has_in = np.flatnonzero(np.bincount(dst, minlength=g.n_frames) > 0)
    starts = np.searchsorted(dst, has_in)
    layers = [np.full(g.n_frames, np.inf)]
    layers[0][origin] = 0.0
    best, best_at = np.inf, (-1, -1)
    for s in range(1, max_steps + 1):
        layer = np.full(g.n_frames, np.inf)
        layer[has_in] = np.minimum.reduceat(layers[-1][src] + w, starts)
        if blocked is not None:
            layer[blocked] = np.inf
        layers.append(layer)
        hit = np.where(want, layer, np.inf)
        t = int(np.argmin(hit))
        if hit[t] < best:
            best, best_at = float(hit[t]), (s, t)
        if layer.min() >= best:  # every longer path costs more
            break
    if not np.isfinite(best):
        return None
    s, v = best_at
    path = [v]
    while s > 1:
        a, b = np.searchsorted(dst, [v, v + 1])
        u = src[a:b]
        k = int(np.argmin(np.abs(layers[s - 1][u] + w[a:b] - layers[s][v])))
        v, s = int(u[k]), s - 1
        path.append(v)
    return path[::-1]
