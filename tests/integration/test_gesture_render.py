"""Gestures in a rendered say-video: the planned gestures show on their words (head
motions on the footage, arrows for follow/cart without clips), nothing changes outside
them, and the lips stay in sync throughout (the mouth moves with the head).

Frames of each gesture's start and stroke are saved as PNG under the test's tmp dir (and
/tmp/gesture_check/ when that folder exists) for a look."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest

from livetwin.events import GestureCue
from livetwin.render import say as say_mod

from .test_compositor import apertures

U8 = npt.NDArray[np.uint8]
TEXT = ("Welcome back, friends! This serum is exclusive to our shop. Does it sting? No, "
        "never. Guess what, it is really cheap. What do you think? Follow me now, and grab "
        "it in the cart below.")
SIZE, FPS = (960, 540), 25
CHECK_DIR = Path("/tmp/gesture_check")


def _render(avatar: str | Path, out: Path, gestures: bool) -> tuple[say_mod.SayResult, list[U8]]:
    req = say_mod.SayRequest(out=out, text=TEXT, size=SIZE, fps=FPS, gestures=gestures,
                             gesture_density=1.0)
    res = say_mod.say(avatar, req)
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return res, frames


def _save(frames: list[U8], cues: list[GestureCue], folder: Path, tag: str) -> None:
    dirs = [folder] + ([CHECK_DIR] if CHECK_DIR.is_dir() else [])
    for c in cues:
        for name, t in (("start", c.start), ("stroke", c.stroke)):
            img = cv2.cvtColor(frames[min(round(t * FPS), len(frames) - 1)], cv2.COLOR_RGB2BGR)
            for d in dirs:
                cv2.imwrite(str(d / f"{tag}_{c.gesture}_{name}.png"), img)


def _check(avatar: str | Path, tmp_path: Path, tag: str) -> None:
    res, on = _render(avatar, tmp_path / "on.mp4", True)
    _, off = _render(avatar, tmp_path / "off.mp4", False)
    _save(on, res.gestures, tmp_path, tag)
    assert len(on) == len(off) == res.frames
    names = {c.gesture for c in res.gestures}
    # Clip-less: follow and cart get the arrows and glances; other words head motions.
    assert {"cue_follow_arrow", "glance_up", "cue_cart_arrow", "glance_down"} <= names
    assert names & {"shake", "tilt_left", "tilt_right", "lean_in"}
    assert "raised_brows" in names  # a face gesture without a clip: the brows warped
    words = {c.gesture: c.word.lower() for c in res.gestures}
    assert words["cue_follow_arrow"] == "follow" and words["cue_cart_arrow"] == "cart"
    assert words.get("shake", "no") == "no"

    def diff(k: int) -> float:
        """The mean difference of the most changed 24x24 block of frame k."""
        d = np.abs(on[k].astype(np.float32) - off[k].astype(np.float32)).mean(axis=2)
        return float(cv2.blur(d, (24, 24)).max())

    active = np.zeros(len(on), bool)
    for c in res.gestures:
        active[max(0, int(c.start * FPS) - 1):int(c.end * FPS) + 2] = True
    quiet = [diff(k) for k in np.flatnonzero(~active)]
    strokes = [diff(round(c.stroke * FPS)) for c in res.gestures]
    # Same seed, same walk: outside the gestures the two videos are the same picture
    # (x264 noise only); at every stroke the gesture shows.
    assert max(quiet) < 8.0, max(quiet)  # x264 noise: about 2-3 on the demo
    floor = max(float(np.percentile(quiet, 90)), 1.0)
    assert min(strokes) > 4 * floor, (strokes, floor)
    # Lips in sync throughout: the mouth aperture per frame is the same with and without
    # the head moving (it moves with the head).
    a_on, a_off = apertures(on), apertures(off)
    ok = np.isfinite(a_on) & np.isfinite(a_off)
    assert ok.mean() > 0.95
    r = float(np.corrcoef(a_on[ok], a_off[ok])[0, 1])
    print(f"\n[{tag}] gestures {sorted(names)}; changed block at strokes min "
          f"{min(strokes):.1f} (quiet max {max(quiet):.1f}); aperture r on/off {r:.3f}")
    assert r > 0.9, r


def test_demo_avatar_gestures_on_its_words(tmp_path: Path) -> None:
    _check("demo", tmp_path, "demo")


@pytest.mark.media
@pytest.mark.slow
def test_video_clone_gestures_on_its_words(ted_twin: Path, tmp_path: Path) -> None:
    _check(ted_twin, tmp_path, "ted")


# ------------------------------------------------------------------ the pieces, on arrays


def test_head_motion_eases_in_and_out_and_leaves_the_rest_alone() -> None:
    from livetwin.render.head_motion import MOTIONS, Face, Motion, apply, envelope

    assert envelope(0.0, 0.4) == 0.0 and envelope(1.0, 0.4) == 0.0
    assert envelope(0.4, 0.4) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (360, 480, 3), dtype=np.uint8), (0, 0), 3)
    face = Face(240.0, 170.0, 100.0)
    for name in MOTIONS:
        m = Motion(name, 1.0, 1.4, 2.0)
        # Smooth: the pose changes little from one 25 fps frame to the next.
        poses = [m.pose(1.0 + k / 25) for k in range(26)]
        steps = [abs(a.dx - b.dx) + abs(a.dy - b.dy) + abs(a.angle - b.angle) / 100
                 + abs(a.scale - b.scale) for a, b in itertools.pairwise(poses)]
        assert max(steps) < 0.03, name
        assert poses[0].still and poses[-1].still
        out, box = apply(frame, face, m.pose(1.4), big=name in ("lean_in", "lean_back", "bow"))
        assert box is not None, name
        x0, y0, x1, y1 = box
        changed = np.abs(out.astype(int) - frame.astype(int)).sum(axis=2) > 0
        assert changed[y0:y1, x0:x1].any(), name
        outside = changed.copy()
        outside[y0:y1, x0:x1] = False
        assert not outside.any(), name
        # No seam: the region's border rows/columns are (nearly) the original pixels.
        edge = np.concatenate([np.abs(out[y0:y1, c].astype(int) - frame[y0:y1, c].astype(int))
                               .ravel() for c in (x0, x1 - 1)])
        assert edge.max() <= 2, name


def test_arrows_are_drawn_only_while_their_cue_runs() -> None:
    from livetwin.render.cues import CUES, Cue, draw

    frame = np.full((540, 960, 3), 60, np.uint8)
    for name in CUES:
        cue = Cue(name, 1.0, 1.3, 2.0)
        same, box = draw(frame, [cue], 0.5)
        assert same is frame and box is None
        out, box = draw(frame, [cue], 1.3)
        assert box is not None
        x0, y0, x1, y1 = box
        assert out[y0:y1, x0:x1].max() > 200  # a white arrow on dark footage
        rest = out.copy()
        rest[y0:y1, x0:x1] = 60
        assert (rest == 60).all()
        up = name == "cue_follow"
        assert (y1 < 540 * 0.35) if up else (y0 > 540 * 0.65)


def test_raised_brows_move_only_the_brows_up() -> None:
    from livetwin.render.head_motion import (
        BROW_POINTS,
        BROWS,
        Motion,
        apply_brows,
        face_from_landmarks,
    )

    # A synthetic face: landmarks on a grid, the eyebrow points on two dark bars.
    frame = np.full((300, 300, 3), 200, np.uint8)
    lm = np.stack(np.meshgrid(np.linspace(90, 210, 26), np.linspace(60, 240, 20)),
                  -1).reshape(-1, 2)[:478].astype(np.float32)
    for idx, bx in zip(BROW_POINTS, (125, 175), strict=True):
        lm[list(idx)] = np.stack([np.linspace(bx - 15, bx + 15, 5), np.full(5, 110.0)], -1)
        cv2.line(frame, (bx - 15, 110), (bx + 15, 110), (30, 30, 30), 3)
    face = face_from_landmarks(lm)
    assert face is not None and len(face.brows) == 2
    out, box = apply_brows(frame, face, 0.03)
    assert box is not None
    dark = np.flatnonzero(out[:, 125, 0] < 100)
    assert dark.mean() < 110 - 0.02 * face.size  # the brow moved up
    x0, y0, x1, y1 = box
    rest = out.copy()
    rest[y0:y1, x0:x1] = frame[y0:y1, x0:x1]
    assert (rest == frame).all()
    m = Motion("brows", 0.0, 0.4, 1.0)
    assert m.lift(0.0) == 0.0 and m.lift(0.4) == pytest.approx(BROWS["brows"](0.4, 0.4, 1.0))


@pytest.mark.media
@pytest.mark.slow
def test_recorded_clips_land_on_their_words_or_fall_back(ted_gestures: Path) -> None:
    """A clone with declared gesture clips: each clip played strokes within LATE_S of its
    word; one the loop graph cannot reach in time is shown as its head motion instead."""
    from livetwin.events import WordTiming
    from livetwin.render.engine import open_twin
    from livetwin.render.head_motion import LATE_S, plan_track, twin_face

    twin = open_twin(ted_gestures, max_side=540, fps=FPS)  # nod 20-21.6 s, shrug 41-42 s
    text = ("Hello everyone and welcome, today we have many new things. Exactly, of course. "
            "We will see a lot of products. Who knows, maybe it sells out. Honestly, yes.")
    words, t = [], 0.0
    for w in text.split():
        words.append(WordTiming(w.strip(".,"), t, t + 0.3))
        t += 0.36
    track = plan_track([(0.5, tuple(words))], "en", set(twin.gestures), FPS, density=1.0)
    clip_cues = [c for c in track.cues if c.how == "clip"]
    assert {c.gesture for c in clip_cues} >= {"nod", "shrug"}
    closed = np.zeros(4, np.float32)
    for k in range(round((t + 2.0) * FPS)):
        track.before(k, twin)
        rgb = twin.frame(closed, True)
        track.after(k, rgb, twin_face(twin))
    timing = track.clip_timing()
    played = {g for g, _, _ in timing}
    assert played, track.requested
    for gesture, planned, shown in timing:
        assert -1.0 / FPS <= shown - planned <= LATE_S + 1.0 / FPS, (gesture, planned, shown)
    # Every clip cue was decided: played (accepted) or not played (too late), and only
    # those not played were drawn procedurally.
    assert sorted(g for _, g, _ in track.requested) == sorted(c.gesture for c in clip_cues)
    assert len(timing) == sum(ok for _, _, ok in track.requested)
    assert len(track.fallbacks) <= sum(not ok for _, _, ok in track.requested)
    print(f"\n[clips] played {timing}; fell back to motions: {track.fallbacks}")
