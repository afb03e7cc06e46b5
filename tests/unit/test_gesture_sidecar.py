"""The --gestures sidecar of `livetwin clone` (livetwin.avatar.gesture_clips)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from livetwin.avatar.gesture_clips import (
    EXAMPLE,
    MAX_LEN_S,
    MIN_LEN_S,
    GestureSpan,
    check_spans,
    clip_frames,
    load_sidecar,
)
from livetwin.errors import InputError
from tests import mediagen as mg


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gestures.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _refused(path: Path, *words: str) -> str:
    with pytest.raises(InputError) as info:
        load_sidecar(path)
    message = str(info.value)
    scrubbed = re.sub(r"(?:/[^/\s]+)+/", "", message)  # tmp folders are named after tests
    for w in words:
        assert w.lower() in scrubbed.lower(), f"{w!r} not in {message!r}"
    return message


def test_valid_sidecar(tmp_path: Path) -> None:
    path = mg.write_gestures(tmp_path / "g.yaml", {
        "point_down": {"start": 12.4, "end": 14.0}, "wave": {"start": 30, "end": 31.5}})
    assert load_sidecar(path) == [GestureSpan("point_down", 12.4, 14.0),
                                  GestureSpan("wave", 30.0, 31.5)]


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    spans = load_sidecar(_write(tmp_path, EXAMPLE))
    assert [s.id for s in spans] == ["point_down", "wave"]


@pytest.mark.parametrize("gid", ["wave", "point_down", "nod-2", "a", "v1.2", "x" * 64])
def test_good_ids(tmp_path: Path, gid: str) -> None:
    path = mg.write_gestures(tmp_path / "g.yaml", {gid: {"start": 1, "end": 2}})
    assert load_sidecar(path)[0].id == gid


def test_missing_file(tmp_path: Path) -> None:
    msg = _refused(tmp_path / "nope.yaml", "nope.yaml", "does not exist")
    assert "\n" not in msg


@pytest.mark.parametrize("text", ["gestures: [wave\n", "gestures:\n  wave: {start: 1\n"])
def test_not_yaml(tmp_path: Path, text: str) -> None:
    _refused(_write(tmp_path, text), "not readable YAML")


@pytest.mark.parametrize("text", ["", "- wave\n", "wave: {start: 1, end: 2}\n",
                                  "gestures:\n", "gestures: []\n", "gestures: {}\n",
                                  "gestures: wave\n"])
def test_no_gestures_mapping(tmp_path: Path, text: str) -> None:
    _refused(_write(tmp_path, text), "no 'gestures:' mapping")


@pytest.mark.parametrize("gid", ["Wave", "wave hand", "_wave", "-wave", "wävé", "x" * 65, 7,
                                 "point/down"])
def test_bad_ids(tmp_path: Path, gid: object) -> None:
    path = mg.write_gestures(tmp_path / "g.yaml", {gid: {"start": 1, "end": 2}})
    msg = _refused(path, f"'{gid}'", "not a valid gesture id")
    assert "\n" not in msg


@pytest.mark.parametrize("span", [{"start": 1}, {"end": 2}, {"start": "one", "end": 2},
                                  [1, 2], "1-2", None, {"start": None, "end": 2}])
def test_start_and_end_must_be_numbers(tmp_path: Path, span: object) -> None:
    path = mg.write_gestures(tmp_path / "g.yaml", {"wave": span})
    msg = _refused(path, "'wave'", "numeric start and end")
    assert "\n" not in msg


@pytest.mark.parametrize(("start", "end"), [(5.0, 5.0), (5.0, 5.1), (0.0, 20.0)])
def test_length_out_of_range(tmp_path: Path, start: float, end: float) -> None:
    path = mg.write_gestures(tmp_path / "g.yaml", {"wave": {"start": start, "end": end}})
    msg = _refused(path, "'wave'", f"lasts {end - start:.2f} s",
                   f"{MIN_LEN_S}-{MAX_LEN_S:.0f} s")
    assert "\n" not in msg


def test_end_before_start_says_so(tmp_path: Path) -> None:
    path = mg.write_gestures(tmp_path / "g.yaml", {"wave": {"start": 12, "end": 10}})
    _refused(path, "'wave'", "before")


@pytest.mark.parametrize(("start", "end"), [(1.0, 1.0 + MIN_LEN_S), (1.0, 1.0 + MAX_LEN_S)])
def test_length_limits_inclusive(tmp_path: Path, start: float, end: float) -> None:
    path = mg.write_gestures(tmp_path / "g.yaml", {"wave": {"start": start, "end": end}})
    assert load_sidecar(path)[0].end == end


@pytest.mark.parametrize("text", ["gestures: [wave\n", "gestures: {}\n"])
def test_every_message_is_one_line(tmp_path: Path, text: str) -> None:
    msg = _refused(_write(tmp_path, text), "gestures")
    assert "\n" not in msg


# --- check_spans: against the video's length -------------------------------------------------


def test_spans_inside_the_video() -> None:
    check_spans([GestureSpan("wave", 0.0, 2.0), GestureSpan("nod", 58.0, 60.0)], 60.0,
                Path("g.yaml"))


def test_end_within_a_millisecond_is_inside() -> None:
    check_spans([GestureSpan("wave", 58.0, 60.0005)], 60.0, Path("g.yaml"))


@pytest.mark.parametrize("span", [GestureSpan("wave", 58.0, 62.0), GestureSpan("wave", -1.0, 1.0),
                                  GestureSpan("wave", 70.0, 71.0)])
def test_span_outside_the_video(span: GestureSpan) -> None:
    with pytest.raises(InputError) as info:
        check_spans([GestureSpan("ok", 1.0, 2.0), span], 60.0, Path("g.yaml"))
    msg = str(info.value)
    assert "'wave'" in msg and "outside the video" in msg and "0-60.00 s" in msg
    assert "\n" not in msg


# --- clip_frames: frame ranges and tracking warnings -----------------------------------------


def test_clip_frames_ranges() -> None:
    times = np.arange(250) / 25.0
    usable = np.ones(250, bool)
    clips, warnings = clip_frames([GestureSpan("wave", 2.0, 3.5)], times, usable)
    assert warnings == []
    (c,) = clips
    assert (c["id"], c["start_frame"], c["end_frame"], c["tracked"]) == ("wave", 50, 88, 1.0)
    assert yaml.safe_load(yaml.safe_dump(clips)) == clips  # stored as plain YAML


def test_clip_frames_warn_where_tracking_is_poor() -> None:
    times = np.arange(250) / 25.0
    usable = np.ones(250, bool)
    usable[50:70] = False  # 20 of the 38 frames of the span
    clips, warnings = clip_frames([GestureSpan("wave", 2.0, 3.5)], times, usable)
    assert clips[0]["tracked"] == pytest.approx(18 / 38, abs=1e-3)
    (w,) = warnings
    assert "'wave'" in w and "47%" in w


def test_clip_frames_past_the_last_frame() -> None:
    times = np.arange(100) / 25.0  # 4 s decoded
    clips, warnings = clip_frames([GestureSpan("late", 5.0, 6.0)], times, np.ones(100, bool))
    assert clips[0]["start_frame"] == clips[0]["end_frame"] == 100
    assert clips[0]["tracked"] == 0.0
    assert len(warnings) == 1
