"""Procedural head motions: what a twin without recorded gesture clips can still do with
its head (nod, shake, tilt, glance, lean, bow), drawn on whatever frame the renderer made.

A motion is a small similarity transform of the head (translation, rotation about the
neck, scale about the face) whose strength follows an envelope that eases in to the
cue's stroke and out to its end (cosine ramps: no jerk at either end). It is applied as a
smooth displacement field, not a cut-out: full strength inside an ellipse around the head,
falling to zero over a feather band, so the head moves and the background next to it
stretches a few pixels with it. No second edge can appear (there is no blend of two
images), and the mouth that the compositor already placed moves with the head, so lip sync
is unaffected. Amplitudes are in face heights (forehead to chin): a nod moves the head
about 6 % of that, a tilt turns it 7 degrees. Raised eyebrows are the same idea on a
smaller scale (`apply_brows`): the brows lift 3 % of the face height.

`GestureTrack` plays a plan on a render timeline (`livetwin say`): clips through the
twin's gesture player, head and brow motions here, arrows with render.cues.

The field is computed on a grid at 1/GRID of the head region and upsampled (cv2.resize),
then `cv2.remap` moves only that region: about 1-2 ms per frame for a 720p head."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

from livetwin.events import GestureCue, WordTiming

if TYPE_CHECKING:
    from livetwin.gesture.planner import PlannedCue

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
GRID = 4
PREDICT_S = 3.0  # the gesture player's longest wait for a clip (render.gestures)
LATE_S = 0.3  # a clip whose stroke would come later than this is not played
INNER = 1.0  # ellipse radius (in head radii) with full displacement
OUTER = 1.7  # ... falling to none here


@dataclass(frozen=True, slots=True)
class Pose:
    """A head offset: translation (face heights), rotation about the neck (degrees,
    positive = counter-clockwise on screen), scale about the face centre."""

    dx: float = 0.0
    dy: float = 0.0
    angle: float = 0.0
    scale: float = 1.0

    def __add__(self, other: Pose) -> Pose:
        return Pose(self.dx + other.dx, self.dy + other.dy, self.angle + other.angle,
                    self.scale * other.scale)

    @property
    def still(self) -> bool:
        return (abs(self.dx) < 1e-4 and abs(self.dy) < 1e-4 and abs(self.angle) < 1e-3
                and abs(self.scale - 1.0) < 1e-4)


@dataclass(frozen=True, slots=True)
class Face:
    """Where the head is in a frame: centre (x, y) and face height, in pixels; the two
    eyebrows as (x, y, half width) where the landmarks have them."""

    cx: float
    cy: float
    size: float
    brows: tuple[tuple[float, float, float], ...] = ()


def envelope(u: float, u_stroke: float) -> float:
    """0 at u=0, 1 at the stroke, 0 at u=1 (cosine ramps)."""
    if u <= 0.0 or u >= 1.0:
        return 0.0
    s = min(max(u_stroke, 0.05), 0.95)
    if u <= s:
        return 0.5 - 0.5 * math.cos(math.pi * u / s)
    return 0.5 + 0.5 * math.cos(math.pi * (u - s) / (1.0 - s))


def _swing(u: float, s: float, e: float, cycles: float) -> float:
    """A side-to-side oscillation whose widest swing is the stroke."""
    return e * math.cos(2 * math.pi * cycles * (u - s))


MotionFn = Callable[[float, float, float], Pose]  # (u, stroke u, envelope) -> pose
MOTIONS: dict[str, MotionFn] = {
    "nod": lambda u, s, e: Pose(dy=0.06 * e, scale=1.0 - 0.01 * e),
    "nod_small": lambda u, s, e: Pose(dy=0.035 * e),
    "nod_double": lambda u, s, e: Pose(dy=0.045 * e * abs(math.cos(2 * math.pi * (u - s)))),
    "shake": lambda u, s, e: Pose(dx=0.05 * _swing(u, s, e, 1.5)),
    "shake_small": lambda u, s, e: Pose(dx=0.03 * _swing(u, s, e, 1.0)),
    "tilt_left": lambda u, s, e: Pose(angle=-7.0 * e),
    "tilt_right": lambda u, s, e: Pose(angle=7.0 * e),
    "glance_up": lambda u, s, e: Pose(dy=-0.04 * e, scale=1.0 + 0.01 * e),
    "glance_down": lambda u, s, e: Pose(dy=0.05 * e, scale=1.0 - 0.01 * e),
    "turn_left": lambda u, s, e: Pose(dx=0.04 * e),
    "turn_right": lambda u, s, e: Pose(dx=-0.04 * e),
    "head_toss": lambda u, s, e: Pose(dy=-0.03 * e, angle=4.0 * e),
    "chin_up": lambda u, s, e: Pose(dy=-0.03 * e),
    "head_forward": lambda u, s, e: Pose(scale=1.0 + 0.05 * e),
    "lean_in": lambda u, s, e: Pose(dy=0.01 * e, scale=1.0 + 0.07 * e),
    "lean_back": lambda u, s, e: Pose(dy=-0.01 * e, scale=1.0 - 0.04 * e),
    "bow": lambda u, s, e: Pose(dy=0.06 * e, scale=1.0 - 0.02 * e),
}
BIG = frozenset({"lean_in", "lean_back", "bow"})  # the upper body moves: a bigger region
# Raised eyebrows: the brows (and the skin above them, less and less) move up by this many
# face heights at the stroke; below the brows the lift fades out over the upper eyelid.
BrowFn = Callable[[float, float, float], float]  # (u, stroke u, envelope) -> lift
BROWS: dict[str, BrowFn] = {
    "brows": lambda u, s, e: 0.03 * e,
    "brows_flash": lambda u, s, e: 0.035 * e,
}
BROW_POINTS = ((70, 63, 105, 66, 107), (336, 296, 334, 293, 300))  # face-mesh eyebrows


@dataclass(frozen=True, slots=True)
class Motion:
    """One procedural motion on the render timeline (seconds)."""

    name: str
    start: float
    stroke: float
    end: float

    def pose(self, t: float) -> Pose:
        """The offset at time `t` (identity outside the motion)."""
        if not self.start < t < self.end:
            return Pose()
        u = (t - self.start) / (self.end - self.start)
        s = (self.stroke - self.start) / (self.end - self.start)
        return MOTIONS[self.name](u, s, envelope(u, s))

    def lift(self, t: float) -> float:
        """The eyebrow lift at `t` (face heights; 0 outside the motion)."""
        if not self.start < t < self.end:
            return 0.0
        u = (t - self.start) / (self.end - self.start)
        s = (self.stroke - self.start) / (self.end - self.start)
        return BROWS[self.name](u, s, envelope(u, s))


def pose_at(motions: Iterable[Motion], t: float) -> tuple[Pose, bool]:
    """The summed pose at `t`, and whether a motion of the upper body is among them."""
    total, big = Pose(), False
    for m in motions:
        if m.start < t < m.end:
            total = total + m.pose(t)
            big = big or m.name in BIG
    return total, big


def _pixels(a: int, b: int) -> F32:
    return np.arange(a, b, dtype=np.float32)


def face_from_landmarks(points: F32) -> Face | None:
    """The head from face-mesh points (n, >=2) in frame pixels; None if not tracked."""
    xy = np.asarray(points, np.float32)[:, :2]
    if not np.isfinite(xy).all():
        return None
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    brows: tuple[tuple[float, float, float], ...] = ()
    if len(xy) >= 468:
        brows = tuple((float(xy[list(idx), 0].mean()), float(xy[list(idx), 1].mean()),
                       float(np.ptp(xy[list(idx), 0])) / 2) for idx in BROW_POINTS)
    return Face(float(x0 + x1) / 2, float(y0 + y1) / 2, float(y1 - y0), brows)


def apply_brows(frame: U8, face: Face, lift: float
                ) -> tuple[U8, tuple[int, int, int, int] | None]:
    """`frame` with both eyebrows raised by `lift` face heights (a local displacement
    field around each brow, zero at the region's edge), and the changed rectangle."""
    if lift <= 1e-4 or not face.brows:
        return frame, None
    h, w = frame.shape[:2]
    s = face.size
    up, down = 0.3 * s, 0.12 * s  # how far above / below a brow the lift reaches
    xs = [b[0] for b in face.brows]
    hw = max(b[2] for b in face.brows)
    by = min(b[1] for b in face.brows)
    x0, x1 = max(0, int(min(xs) - 1.6 * hw)), min(w, math.ceil(max(xs) + 1.6 * hw))
    y0, y1 = max(0, int(by - up)), min(h, math.ceil(max(b[1] for b in face.brows) + down))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return frame, None
    gx, gy = np.meshgrid(_pixels(x0, x1), _pixels(y0, y1))
    dy = np.zeros_like(gx)
    for bx, bry, bhw in face.brows:
        wx = np.clip(1.0 - np.abs(gx - bx) / (1.5 * bhw), 0.0, 1.0)
        d = gy - bry
        wy = np.where(d < 0, np.clip(1.0 + d / up, 0.0, 1.0), np.clip(1.0 - d / down, 0.0, 1.0))
        dy = np.maximum(dy, (0.5 - 0.5 * np.cos(np.pi * wx)) * (0.5 - 0.5 * np.cos(np.pi * wy)))
    map_y = (gy + lift * s * dy).astype(np.float32)
    out = frame.copy()
    out[y0:y1, x0:x1] = cv2.remap(frame, gx, map_y, cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
    return out, (x0, y0, x1, y1)


def apply(frame: U8, face: Face, pose: Pose, *, big: bool = False
          ) -> tuple[U8, tuple[int, int, int, int] | None]:
    """`frame` with the head moved by `pose` (module doc), and the changed rectangle
    (x0, y0, x1, y1); the frame itself when the pose is still."""
    if pose.still or face.size < 8:
        return frame, None
    h, w = frame.shape[:2]
    s = face.size
    # The head: an ellipse a little above the face centre (hair), chin at its inner edge.
    rx, ry, ry_low = (0.75 * s, 0.75 * s, 0.5 * s) if not big else (1.3 * s, 1.5 * s, 1.5 * s)
    ecx, ecy = face.cx, face.cy - 0.08 * s
    x0, x1 = max(0, int(ecx - OUTER * rx)), min(w, math.ceil(ecx + OUTER * rx))
    y0, y1 = max(0, int(ecy - OUTER * ry)), min(h, math.ceil(ecy + OUTER * ry))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return frame, None
    gw, gh = max(2, (x1 - x0) // GRID), max(2, (y1 - y0) // GRID)
    gx, gy = np.meshgrid(np.linspace(x0, x1 - 1, gw, dtype=np.float32),
                         np.linspace(y0, y1 - 1, gh, dtype=np.float32))
    # Below the centre the region ends sooner (ry_low), so the shoulders and collar stay
    # put and only the neck stretches.
    r = np.sqrt(((gx - ecx) / rx) ** 2 + ((gy - ecy) / np.where(gy > ecy, ry_low, ry)) ** 2)
    weight = np.clip((OUTER - r) / (OUTER - INNER), 0.0, 1.0)
    weight = (0.5 - 0.5 * np.cos(np.pi * weight)).astype(np.float32)
    # Forward transform of a head point p: rotate about the neck, scale about the face,
    # translate; the source of output pixel p is p - weight * (T(p) - p) (small motions).
    px, py = face.cx, face.cy + 0.65 * s  # the neck pivot
    a = math.radians(pose.angle)
    ca, sa = math.cos(a), math.sin(a)
    rxp = px + ca * (gx - px) + sa * (gy - py)
    ryp = py - sa * (gx - px) + ca * (gy - py)
    tx = face.cx + pose.scale * (rxp - face.cx) + pose.dx * s
    ty = face.cy + pose.scale * (ryp - face.cy) + pose.dy * s
    # Only the displacement is upsampled (it is zero at the region's edge), then added to
    # exact pixel coordinates, so the region joins the untouched frame without a seam.
    size = (x1 - x0, y1 - y0)
    map_x = _pixels(x0, x1)[None, :] - cv2.resize(weight * (tx - gx), size,
                                                  interpolation=cv2.INTER_LINEAR)
    map_y = _pixels(y0, y1)[:, None] - cv2.resize(weight * (ty - gy), size,
                                                  interpolation=cv2.INTER_LINEAR)
    out = frame.copy()
    out[y0:y1, x0:x1] = cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
    return out, (x0, y0, x1, y1)


# ------------------------------------------------------------------ on a render timeline


@dataclass(frozen=True, slots=True)
class TimedCue:
    """A planned gesture on the render timeline: `cue` times are seconds from the video's
    start; `how` is "clip" (the bundle's recorded clip), "motion" (a head motion here) or
    "cue" (an on-screen arrow, render.cues)."""

    gesture: str
    start: float
    stroke: float
    end: float
    word: str
    how: str
    procedural: str | None = None
    stroke_frac: float = 0.4  # where in a recorded clip its stroke falls (library timing)


class GestureTrack:
    """Plays planned gestures while frames are rendered: asks the twin for clips a little
    ahead, moves the head, draws the arrows. `before(k)` is called before the twin makes
    output frame k, `after(k, rgb)` on the frame it made."""

    def __init__(self, cues: list[TimedCue], fps: float) -> None:
        from livetwin.render.cues import Cue

        self.cues = sorted(cues, key=lambda c: c.start)
        self.fps = float(fps)
        self.motions = [Motion(c.procedural, c.start, c.stroke, c.end) for c in self.cues
                        if c.how == "motion" and c.procedural in MOTIONS]
        self.brows = [Motion(c.procedural, c.start, c.stroke, c.end) for c in self.cues
                      if c.how == "motion" and c.procedural in BROWS]
        self.arrows = [Cue(c.procedural, c.start, c.stroke, c.end) for c in self.cues
                       if c.how == "cue" and c.procedural]
        self._clips: dict[int, TimedCue] | None = None  # clips to request, in order
        self.requested: list[tuple[int, str, bool]] = []  # (frame, gesture, accepted)
        self.fallbacks: list[str] = []  # clips that could not come in time, shown procedurally
        self._played: list[TimedCue] = []  # clips requested, `start` = planned first frame
        self._player: Any = None

    def before(self, k: int, twin: object) -> None:
        """Request a clip at output frame k when it is due: the loop graph needs a while
        to reach a clip's first frame, so from PREDICT_S before the clip should start,
        each frame asks a copy of the twin's gesture player how long the way in would
        take if requested now, and requests for real once the clip's own stroke (its
        `stroke_frac`) would land on the cue's stroke or later (`clip_timing` says how
        close it came). A clip that would land more than LATE_S late is not played; its
        procedural version (a nod for a nod clip) is shown instead where there is one."""
        player = getattr(twin, "player", None)
        if self._clips is None:
            self._clips = {}
            if player is not None:
                self._player = player
                for c in self.cues:
                    clip = player.clips.get(c.gesture) if c.how == "clip" else None
                    if clip is not None:
                        lead = c.stroke_frac * len(clip) / player.graph.fps
                        self._clips[len(self._clips)] = TimedCue(
                            c.gesture, c.stroke - lead, c.stroke, c.end, c.word, c.how,
                            c.procedural, c.stroke_frac)
        if not self._clips or self._player is None:
            return
        first = min(self._clips)
        cue = self._clips[first]  # its `start`: when the clip's first frame should show
        now = k / self.fps
        if now < cue.start - PREDICT_S:
            return
        wait = _entry_wait(self._player, cue.gesture)
        if wait is not None and now + wait < cue.start - 0.5 / self.fps:
            return  # not yet: requested now, the clip would come early
        del self._clips[first]
        if wait is None or now + wait > cue.start + LATE_S:
            # The clip cannot come in time: a late gesture lands on the wrong words, so
            # show the procedural version if there is one, else nothing.
            self.requested.append((k, cue.gesture, False))
            self._fallback(cue, now)
            return
        accepted = bool(self._player.request(cue.gesture))
        self.requested.append((k, cue.gesture, accepted))
        if accepted:
            self._played.append(cue)

    def _fallback(self, cue: TimedCue, now: float) -> None:
        name = cue.procedural
        stroke = cue.stroke
        f = min(max(cue.stroke_frac, 0.05), 0.95)
        start = max(now, stroke - f / (1.0 - f) * (cue.end - stroke))  # the planned start
        if name in MOTIONS:
            self.motions.append(Motion(name, start, stroke, cue.end))
            self.fallbacks.append(cue.gesture)
        elif name in BROWS:
            self.brows.append(Motion(name, start, stroke, cue.end))
            self.fallbacks.append(cue.gesture)

    def clip_timing(self) -> list[tuple[str, float, float]]:
        """(gesture, planned stroke, shown stroke) in seconds for the clips played."""
        if self._player is None:
            return []
        fps = self._player.graph.fps
        starts = [e for e in self._player.events if e.kind == "start"]
        out = []
        for c, e in zip(self._played, starts, strict=False):
            clip = self._player.clips[c.gesture]
            stroke = (e.step + c.stroke_frac * len(clip) - e.entry.skipped) / fps
            out.append((c.gesture, c.stroke, stroke))
        return out

    def after(self, k: int, rgb: U8, face: Face | None
              ) -> tuple[U8, bool]:
        """Frame k with the head motion and arrows of its time; True if it was changed."""
        from livetwin.render.cues import draw

        t = k / self.fps
        changed = False
        if face is not None and self.brows:
            # Brows first, on the unmoved face whose landmarks `face` holds.
            rgb, box = apply_brows(rgb, face, sum(m.lift(t) for m in self.brows))
            changed = box is not None
        if face is not None and self.motions:
            pose, big = pose_at(self.motions, t)
            rgb, box = apply(rgb, face, pose, big=big)
            changed = changed or box is not None
        if self.arrows:
            rgb, box = draw(rgb, self.arrows, t)
            changed = changed or box is not None
        return rgb, changed


def _entry_wait(player: Any, gesture: str) -> float | None:
    """Seconds from now until `gesture`'s clip would show if requested now (a copy of the
    player is asked; the player itself is untouched); None if it would be refused."""
    sim = copy.deepcopy(player)
    if not sim.request(gesture):
        return None
    seen = len(sim.events)
    limit = round(2 * PREDICT_S * sim.graph.fps)
    for steps in range(1, limit + 1):
        sim.next()
        if any(e.kind == "start" and e.gesture == gesture for e in sim.events[seen:]):
            return float((steps - 1) / sim.graph.fps)
    return None


def twin_face(twin: object) -> Face | None:
    """Where the head is in the twin's last frame: the tracked landmarks of the video
    twin's base frame, or the photo avatar's landmarks."""
    comp = getattr(twin, "compositor", None)
    if comp is not None:
        return face_from_landmarks(comp.footage.landmarks[twin.base_index])  # type: ignore[attr-defined]
    lm = getattr(twin, "lm", None)
    return face_from_landmarks(lm) if lm is not None else None


def _clear(new: PlannedCue, kept: list[PlannedCue]) -> bool:
    """No overlap with an earlier sentence's cue on a shared body part, and the repeat gap
    of the same gesture kept (exclusions and counts are per utterance: the planner's)."""
    from livetwin.gesture.planner import CHANNEL_GAP_S

    g, c = new.gesture, new.cue
    for p in kept:
        gap = max(c.start - p.cue.end, p.cue.start - c.end)
        if g.channels & p.gesture.channels and gap < CHANNEL_GAP_S:
            return False
        if g.id == p.gesture.id and gap < g.rules.min_gap_s:
            return False
    return True


def plan_track(sentences: list[tuple[float, tuple[WordTiming, ...]]], lang: str,
               clips: Collection[str], fps: float, *, density: float | None = None,
               intents: Collection[str] = ()) -> GestureTrack:
    """Plan the gestures of spoken sentences (each: its start in seconds on the render
    timeline and its TTS word timings) for an avatar with recorded `clips`, and lay them
    on the render timeline. Across sentences a cue that would overlap an earlier one on
    a body part (or repeat a gesture too soon) is dropped. `intents` are the line's own
    (a show line asking for a follow gets its pointing gesture even without the
    trigger words)."""
    from livetwin.gesture.avatar import procedural_names
    from livetwin.gesture.library import default_library
    from livetwin.gesture.planner import DEFAULT_DENSITY, GesturePlanner, PlannedCue

    lib = default_library()
    names = procedural_names()
    available = {g.id for g in lib
                 if g.id in clips or (g.procedural is not None and g.procedural in names)}
    planner = GesturePlanner(lib, available=available,
                             density=DEFAULT_DENSITY if density is None else density)
    kept: list[PlannedCue] = []
    for offset, words in sentences:
        if not words:
            continue
        joiner = "" if lang == "zh" else " "
        plan = planner.plan(joiner.join(w.word for w in words), lang=lang, words=words,
                            intents=intents)
        for p in plan.cues:
            c = p.cue
            moved = PlannedCue(GestureCue(c.gesture, c.start + offset, c.stroke + offset,
                                          c.end + offset, c.word), p.gesture, p.trigger,
                               p.reason, p.word_index)
            if _clear(moved, kept):
                kept.append(moved)
    timed = []
    for p in kept:
        g, c = p.gesture, p.cue
        how = ("clip" if g.id in clips else "cue" if g.category == "cue" else "motion")
        timed.append(TimedCue(g.id, c.start, c.stroke, c.end, c.word, how, g.procedural,
                              g.timing.stroke))
    return GestureTrack(timed, fps)
