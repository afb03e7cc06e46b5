"""Gesture clip playback: the renderer plays a gesture clip of the bundle (a nod, a wave,
declared at clone time in gestures.yaml as footage frame ranges) on request, entering and
leaving it through the loop graph so neither end shows a jump; lip sync goes on over the
clip (the compositor renders the mouth on whatever base frame comes).

`GesturePlayer` wraps the loop walker and is stepped once per footage frame like it:

- idle: the walker's frames (idle drift, random loops);
- entering: after `request`, a path through the graph to the clip's first frame, taking
  only jumps within the graph's threshold (`max_cost`, the ones that do not show), never
  passing through the clip itself, the soonest (cheapest within 0.5 s, else 1 s, ...)
  within `max_wait_s`;
- playing: the clip's frames in order at the footage rate;
- leaving: the natural continuation of the footage after the clip's last frame for
  EXIT_S (no jump can follow the clip at once), then idle again.

Where the clip's first frame cannot be reached in time, the entry falls back, in order,
to: a frame among the clip's first ENTRY_LEAD_S (the first frames are skipped); a path
that takes a jump above the threshold (the graph's forced ways out of dead ends); and as
a last resort a plain cut to the clip start. The `GestureEvent` of the clip start says
which (`entry`), so the live pipeline can log a visible cut.

A request while a clip is on its way or playing is queued: at most MAX_PENDING clips are
scheduled behind the current one (each planned from where the one before leaves); a
request beyond that is refused (`request` returns False) so a gesture never plays long
after the words it was meant for. The planner that chooses gestures is not here."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from livetwin.errors import BundleError
from livetwin.render.loop_walker import MIN_HOLD, LoopWalker

DEFAULT_MAX_WAIT_S = 3.0  # tedlieu: the clip start is reachable within 3 s from ~86 %
ENTRY_LEAD_S = 0.3  # fallback entry: anywhere in the clip's first 0.3 s (<= 1/4 clip)
HORIZON_S = 0.5  # the entry path is searched within 0.5 s, then 1 s, ... (soonest first)
EXIT_S = 0.2  # natural frames after the clip before the walker may jump again
MAX_PENDING = 1  # clips scheduled behind the current one

State = Literal["idle", "entering", "playing", "leaving"]
EntryKind = Literal["path", "late", "over_threshold", "cut"]


@dataclass(frozen=True)
class GestureClip:
    """A gesture clip: footage frames `start` (inclusive) to `end` (exclusive)."""

    id: str
    start: int
    end: int

    @property
    def frames(self) -> range:
        return range(self.start, self.end)

    def __len__(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class GestureEntry:
    """How a clip was entered: `kind` "path" (through the graph to its first frame),
    "late" (through the graph into its first frames, `skipped` of them not shown),
    "over_threshold" (a path with a jump above the graph's threshold), "cut" (no path in
    time: a plain cut, not a graph edge); `wait_frames` footage frames from the request
    to the clip's first frame shown; `max_jump_cost` the costliest jump on the way
    (natural steps 0; inf for a cut)."""

    kind: EntryKind
    wait_frames: int
    skipped: int
    max_jump_cost: float

    @property
    def visible(self) -> bool:
        """True where the entry may show a jump (a cut or a jump above the threshold)."""
        return self.kind in ("over_threshold", "cut")


@dataclass(frozen=True)
class GestureEvent:
    """A clip started ("start", at its first frame shown) or ended ("end", at the first
    frame after it); `step` counts `next()` calls from 0, `frame` is the footage frame."""

    kind: Literal["start", "end"]
    gesture: str
    step: int
    frame: int
    entry: GestureEntry


def load_clips(bundle_dir: Path) -> dict[str, GestureClip]:
    """The gesture clips of a bundle (its gestures.yaml; none without one)."""
    path = bundle_dir / "gestures.yaml"
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        entries = data.get("gestures") or [] if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ValueError("no 'gestures' list")
        clips = {}
        for e in entries:
            clip = GestureClip(str(e["id"]), int(e["start_frame"]), int(e["end_frame"]))
            if clip.end <= clip.start or clip.start < 0:
                raise ValueError(f"'{clip.id}' has an empty frame range")
            clips[clip.id] = clip
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{path} is not a readable gestures file ({exc}); clone again.") from None
    return clips


@dataclass
class _Step:
    state: State
    gesture: str | None = None
    clip_start: bool = False  # the first clip frame shown
    clip_last: bool = False  # the last clip frame shown
    entry: GestureEntry | None = None


class GesturePlayer:
    """The loop walker plus gesture clips (module doc): one footage frame per `next()`."""

    def __init__(
        self,
        walker: LoopWalker,
        clips: Mapping[str, GestureClip],
        *,
        on_event: Callable[[GestureEvent], None] | None = None,
    ) -> None:
        self.walker = walker
        self.graph = walker.graph
        n = self.graph.n_frames
        for clip in clips.values():
            if clip.end > n:
                raise BundleError(f"gesture '{clip.id}' (frames {clip.start}-{clip.end}) lies "
                                  f"outside the footage ({n} frames); clone again.")
        self.clips = dict(clips)
        self.on_event = on_event
        self.events: list[GestureEvent] = []
        self._schedule: deque[_Step] = deque()
        self._step = 0
        self._state: State = "idle"
        self._current: str | None = None
        self._entry: GestureEntry | None = None
        self._end_due: GestureEvent | None = None

    # -- public

    @property
    def state(self) -> State:
        """What the last `next()` showed: "idle", "entering", "playing" or "leaving"."""
        return self._state

    @property
    def current_gesture(self) -> str | None:
        """The gesture being entered, played or left (None while idle)."""
        return self._current

    @property
    def unfinished(self) -> int:
        """Clips requested whose last frame has not been shown yet (the one being
        entered or played, and those queued behind it)."""
        return sum(1 for s in self._schedule if s.clip_last)

    @property
    def prefer_idle(self) -> bool:
        return self.walker.prefer_idle

    @prefer_idle.setter
    def prefer_idle(self, value: bool) -> None:
        self.walker.prefer_idle = value

    def request(self, gesture_id: str, *, max_wait_s: float = DEFAULT_MAX_WAIT_S) -> bool:
        """Schedule gesture `gesture_id`: its first frame comes within `max_wait_s` of
        footage time (or after the clips before it); False when refused because
        MAX_PENDING clips already wait. Unknown ids raise KeyError; a clip without a
        tracked frame ValueError."""
        clip = self.clips.get(gesture_id)
        if clip is None:
            known = ", ".join(sorted(self.clips)) or "none: the bundle declares no gestures"
            raise KeyError(f"unknown gesture '{gesture_id}' (known: {known})")
        if self.unfinished >= 1 + MAX_PENDING:
            return False
        frames = self._playable(clip)
        self._schedule.extend(self._plan(clip, frames, max(0.0, max_wait_s)))
        return True

    def next(self) -> int:
        """The footage frame for this step (module doc)."""
        frame = self.walker.next()
        step = self._schedule.popleft() if self._schedule else _Step("idle")
        if self._end_due is not None:
            self._emit(GestureEvent("end", self._end_due.gesture, self._step, frame,
                                    self._end_due.entry))
            self._end_due = None
        self._state = step.state
        if step.state == "idle":
            self._current = None
        elif step.gesture is not None:
            self._current = step.gesture
        if step.entry is not None:
            self._entry = step.entry
        if step.clip_start:
            assert step.gesture is not None and step.entry is not None
            self._emit(GestureEvent("start", step.gesture, self._step, frame, step.entry))
        if step.clip_last:
            assert step.gesture is not None and self._entry is not None
            self._end_due = GestureEvent("end", step.gesture, self._step, frame, self._entry)
        self._step += 1
        return frame

    # -- internals

    def _emit(self, event: GestureEvent) -> None:
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def _playable(self, clip: GestureClip) -> list[int]:
        """The clip's frames from its first to its last usable one (entered and left
        through the graph, so both ends must be usable; frames between may not be)."""
        usable = [f for f in clip.frames if self.graph.usable[f]]
        if not usable:
            raise ValueError(f"gesture '{clip.id}' has no frame with a tracked face to play")
        return list(range(usable[0], usable[-1] + 1))

    def _plan(self, clip: GestureClip, frames: list[int], max_wait_s: float) -> list[_Step]:
        g, w = self.graph, self.walker
        fps = g.fps
        # Frames already queued in the walker (a clip before this one, or a steer by
        # someone else) play first; the path starts where they end.
        before = w.queued - len(self._schedule)
        origin = w.origin
        max_steps = max(1, round(max_wait_s * fps))
        lead = max(1, min(round(ENTRY_LEAD_S * fps), len(frames) // 4))
        first = [f for f in frames[:lead] if g.usable[f] and f != origin]
        # The way in never shows part of the clip (a gesture that starts, then restarts);
        # from inside it (the idle walk was there) it plays on out of it first.
        avoid = [f for f in clip.frames if f <= origin or origin not in clip.frames]
        options: list[tuple[EntryKind, list[int], float | None]] = [
            ("path", [frames[0]] if frames[0] != origin else [], g.max_cost),
            ("late", first, g.max_cost),
            ("over_threshold", first, None),
        ]
        # The soonest entry first: the cheapest path within 0.5 s, else within 1 s, ...
        horizons = sorted({*range(round(HORIZON_S * fps), max_steps, round(HORIZON_S * fps)),
                           max_steps})
        kind: EntryKind = "cut"
        path = [frames[0]]
        for option, targets, max_cost in options:
            found, rushed = None, None
            for steps in horizons if targets else []:
                found = w.path_to(targets, steps, max_cost=max_cost, avoid=avoid)
                if found and not _holds(origin, found):
                    # Jumps in quick succession (a frame or two between) flicker: wait
                    # longer for a calmer way in if there is one.
                    rushed, found = rushed or found, None
                if found:
                    break
            found = found or rushed
            if found:
                kind, path = option, found
                break
        skipped = frames.index(path[-1])
        shown = frames[skipped:]
        w.play([*path[:-1], *shown])
        exit_frames = self._exit_frames(shown[-1])
        w.play(exit_frames)
        entry = GestureEntry(kind, before + len(path), skipped,
                             self._max_jump_cost([origin, *path]) if kind != "cut"
                             else float("inf"))
        steps = [_Step("entering", clip.id) for _ in range(before + len(path) - 1)]
        steps += [_Step("playing", clip.id) for _ in shown]
        steps[before + len(path) - 1] = _Step("playing", clip.id, clip_start=True, entry=entry)
        steps[-1].clip_last = True
        steps += [_Step("leaving", clip.id) for _ in exit_frames]
        return steps

    def _exit_frames(self, last: int) -> list[int]:
        """The natural continuation after the clip's last frame (EXIT_S at most)."""
        g = self.graph
        out: list[int] = []
        f = last
        while len(out) < round(EXIT_S * g.fps) and f + 1 < g.n_frames:
            dst, _ = g.successors(f)
            if f + 1 not in dst:
                break
            f += 1
            out.append(f)
        return out

    def _max_jump_cost(self, seq: list[int]) -> float:
        cost = 0.0
        for a, b in itertools.pairwise(seq):
            if b == a + 1:
                continue
            dst, c = self.graph.successors(a)
            hit = [float(x) for d, x in zip(dst, c, strict=True) if d == b]
            cost = max(cost, hit[0] if hit else float("inf"))
        return cost


def _holds(origin: int, path: list[int]) -> bool:
    """True where every two jumps of origin + path are at least MIN_HOLD frames apart."""
    seq = [origin, *path]
    at = [k for k in range(1, len(seq)) if seq[k] != seq[k - 1] + 1]
    return all(b - a >= MIN_HOLD for a, b in itertools.pairwise(at))
