"""Gesture clip playback on a real clone (tedlieu, two clips declared at clone time): the
clip is entered and left through the loop graph without a visible jump, every clip frame
plays once in order, the twin walks on afterwards, and lip sync goes on over the clip
(face mesh on VideoTwin's output). A strip of frames across entry, clip and exit lands in
/tmp/gesture_check/ for a person to look at."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from livetwin.avatar.loops import LoopGraph
from livetwin.render.engine import VideoTwin
from livetwin.render.gestures import DEFAULT_MAX_WAIT_S, EXIT_S, GesturePlayer, load_clips
from livetwin.render.loop_walker import MIN_HOLD, LoopWalker

from .test_compositor import apertures

pytestmark = [pytest.mark.media, pytest.mark.slow]

CHECK_DIR = Path("/tmp/gesture_check")
U8 = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def ted(ted_gestures: Path) -> Path:
    return ted_gestures


def edge_costs(g: LoopGraph) -> dict[tuple[int, int], float]:
    return {(int(s), int(d)): float(c) for s, d, c in zip(g.src, g.dst, g.cost, strict=True)}


def test_clips_play_whole_and_enter_and_leave_through_the_graph(ted: Path) -> None:
    g = LoopGraph.load(ted / "loops.npz")
    clips = load_clips(ted)
    assert {c: (clips[c].start, clips[c].end) for c in clips} == {
        "nod": (500, 540), "shrug": (1025, 1050)}  # 25 fps
    costs = edge_costs(g)
    max_wait = round(DEFAULT_MAX_WAIT_S * g.fps)
    exit_n = round(EXIT_S * g.fps)
    waits, entry_costs, path_costs, kinds = [], [], [], []
    for seed in range(12):
        gid = ("nod", "shrug")[seed % 2]
        clip = clips[gid]
        player = GesturePlayer(LoopWalker(g, np.random.default_rng(seed),
                                          prefer_idle=seed % 3 == 0), clips)
        seq = [player.next() for _ in range(40 + 37 * seed)]
        assert player.request(gid)
        states = []
        for _ in range(max_wait + len(clip) + 10 * round(g.fps)):
            seq.append(player.next())
            states.append(player.state)
        offset = len(seq) - len(states)
        start, end = player.events
        entry = start.entry
        kinds.append(entry.kind)
        # Starts in time, with no jump that shows on the way in.
        assert entry.wait_frames <= max_wait
        assert not entry.visible and entry.max_jump_cost <= g.max_cost
        way_in = seq[len(seq) - len(states) - 1:][:entry.wait_frames + 1]
        cuts = [k for k in range(1, len(way_in)) if way_in[k] != way_in[k - 1] + 1]
        assert all(b - a >= MIN_HOLD for a, b in itertools.pairwise(cuts))  # no flicker
        waits.append(entry.wait_frames / g.fps)
        path_costs.append(entry.max_jump_cost)
        # Every clip frame once, in order (the entry skipped none).
        played = [f for f, s in zip(seq[offset:], states, strict=True) if s == "playing"]
        assert played == list(clip.frames[entry.skipped:])
        assert entry.skipped == 0
        first = offset + states.index("playing")
        last = first + len(played) - 1
        assert (start.step, start.frame, end.step) == (first, clip.start, last + 1)
        # The entry is a graph edge within the threshold (or a natural step); the exit
        # is the natural continuation of the footage.
        a, b = seq[first - 1], seq[first]
        assert b == a + 1 or costs[a, b] <= g.max_cost
        entry_costs.append(0.0 if b == a + 1 else costs[a, b])
        assert seq[last + 1:last + 1 + exit_n] == list(range(clip.end, clip.end + exit_n))
        # Then idle walking again, through graph edges only.
        assert states[last + exit_n + 1 - offset] == "idle"
        assert all((x, y) in costs for x, y in itertools.pairwise(seq))
        assert player.current_gesture is None
    print(f"gesture entries: {kinds.count('path')}/{len(kinds)} at the clip start, wait "
          f"median {np.median(waits):.2f} s max {max(waits):.2f} s; costliest jump on the way in "
          f"{max(path_costs):.2f}, at the clip's first frame {max(entry_costs):.2f} "
          f"(threshold {g.max_cost})")


def test_unknown_gesture_is_a_clear_error(ted: Path) -> None:
    twin = VideoTwin(ted, max_side=256, fps=25)
    assert twin.gestures == ["nod", "shrug"]
    with pytest.raises(KeyError, match=r"unknown gesture 'wave' \(known: nod, shrug\)"):
        twin.play_gesture("wave")


def label(img: U8, text: str) -> U8:
    out = img.copy()
    cv2.putText(out, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3)
    cv2.putText(out, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1)
    return out


def test_lip_sync_goes_on_over_the_clip(ted: Path) -> None:
    twin = VideoTwin(ted, max_side=480, fps=25, seed=1)
    mouth = twin.compositor.footage.mouth
    ok = twin.compositor.footage.usable & np.isfinite(mouth).all(axis=1)
    ap = mouth[ok, 0]
    opened = mouth[ok][int(np.argmin(np.abs(ap - np.percentile(ap, 95))))]
    closed = mouth[ok][int(np.argmin(np.abs(ap - np.percentile(ap, 5))))]
    for _ in range(30):
        twin.frame(closed, False)
    assert twin.play_gesture("nod")
    frames: list[U8] = []
    info: list[tuple[str, int, bool]] = []
    k = 0
    while len(info) < 200 and not (info and info[-1][0] == "idle" and
                                   any(s == "playing" for s, _, _ in info)):
        is_open = twin.player.state == "playing" and (k // 3) % 2 == 0
        if twin.player.state == "playing":
            k += 1
        out = twin.frame(opened if is_open else closed, True)
        frames.append(out)
        info.append((twin.player.state, twin.base_index, is_open))
    playing = [i for i, (s, _, _) in enumerate(info) if s == "playing"]
    assert [info[i][1] for i in playing] == list(range(500, 540))
    got = apertures([frames[i] for i in playing])
    want = np.array([info[i][2] for i in playing], float)
    keep = np.isfinite(got)
    assert keep.mean() > 0.9
    r = float(np.corrcoef(got[keep], want[keep])[0, 1])
    gap = float(np.mean(got[keep & (want > 0)]) - np.mean(got[keep & (want == 0)]))
    base = mouth[500:540, 0]
    r_base = float(np.corrcoef(base[keep], want[keep])[0, 1])
    print(f"lip sync over the clip: r(rendered aperture, open/closed target) = {r:.2f}, "
          f"open - closed = {gap:.3f} IOD (targets {opened[0]:.3f} / {closed[0]:.3f}); "
          f"the clip's own aperture vs the targets r = {r_base:.2f}")
    assert r > 0.5 or gap > 0.5 * (opened[0] - closed[0])
    # A strip across entry, clip and exit for a person to look at.
    first, last = playing[0], playing[-1]
    picks = [first - 3, first - 1, first, first + 1, first + 10, first + 20, last - 1, last,
             last + 1, last + 3, last + 6]
    tiles = [label(frames[i], f"{info[i][0][:5]} f{info[i][1]}{' open' if info[i][2] else ''}")
             for i in picks if 0 <= i < len(frames)]
    h = 200
    tiles = [cv2.resize(t, (round(t.shape[1] * h / t.shape[0]), h)) for t in tiles]
    rows = [np.concatenate(tiles[:6], axis=1), np.concatenate(tiles[6:], axis=1)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    CHECK_DIR.mkdir(exist_ok=True)
    cv2.imwrite(str(CHECK_DIR / "nod_strip.png"),
                cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
