"""`livetwin gestures list|plan|guide|marks`: the public JSON fields (ARCHITECTURE §7), one-line
errors with exit code 2, and a guide whose sidecar `clone --gestures` accepts."""

# ruff: noqa: RUF001 - Chinese punctuation in the test sentences

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from livetwin.avatar.gesture_clips import load_sidecar
from livetwin.cli import main
from livetwin.gesture.library import default_library


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[dict[str, object]]:
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list)
    return data


def test_list_json_has_the_public_fields(capsys: pytest.CaptureFixture[str]) -> None:
    entries = _json(capsys, ["gestures", "list", "--json"])
    assert len(entries) == len(default_library()) >= 100
    for e in entries:
        assert {"id", "category", "intents", "direction"} <= set(e)
        if e["category"] == "deictic":
            assert e["direction"] in ("up", "down", "left", "right", "product", "camera")
    heads = _json(capsys, ["gestures", "list", "--json", "--category", "head"])
    assert heads and {e["category"] for e in heads} == {"head"}


def test_plan_json_has_the_public_fields(capsys: pytest.CaptureFixture[str]) -> None:
    cues = _json(capsys, ["gestures", "plan", "Hit follow and grab it in the cart!", "--json"])
    for c in cues:
        assert {"gesture", "start", "stroke", "end", "word"} <= set(c)
        assert c["start"] <= c["stroke"] <= c["end"]
    by_dir = {c["direction"]: c for c in cues}
    assert by_dir["up"]["word"] == "follow" and by_dir["down"]["word"] == "cart"


def test_plan_in_chinese_and_with_an_intent(capsys: pytest.CaptureFixture[str]) -> None:
    cues = _json(capsys, ["gestures", "plan", "宝宝们点个关注，下方小黄车1号链接", "--lang", "zh",
                          "--json"])
    assert [c["word"] for c in cues if c["direction"] in ("up", "down")] == ["关注", "小黄车"]
    cues = _json(capsys, ["gestures", "plan", "Do not miss tomorrow.", "--intent", "follow",
                          "--density", "0", "--json"])
    assert [c["direction"] for c in cues] == ["up"]


def test_plan_with_espeak_timings(capsys: pytest.CaptureFixture[str]) -> None:
    cues = _json(capsys, ["gestures", "plan", "Folgt mir jetzt!", "--lang", "de", "--voice",
                          "espeak", "--json"])
    assert cues and cues[0]["word"] == "Folgt"


def test_plan_for_the_demo_avatar_uses_only_what_it_renders(
        capsys: pytest.CaptureFixture[str]) -> None:
    from livetwin.gesture.avatar import renderable

    cues = _json(capsys, ["gestures", "plan", "Follow me and check the cart!", "--avatar",
                          "demo", "--json"])
    allowed = renderable(None)
    assert cues and {c["gesture"] for c in cues} <= allowed


@pytest.mark.parametrize(("argv", "needle"), [
    (["gestures", "plan", "hi", "--lang", "fr"], "not supported"),
    (["gestures", "plan", "hi", "--density", "2"], "--density"),
    (["gestures", "plan", "hi", "--intent", "nonsense"], "--intent"),
    (["gestures", "plan", "hi", "--voice", "piper"], "--voice"),
    (["gestures", "plan", "🙂🙂"], "nothing to say"),
    (["gestures", "list", "--category", "dance"], "--category"),
    (["gestures", "guide", "--only", "point_up,moonwalk"], "moonwalk"),
    (["gestures", "guide", "--only", "cue_cart_arrow"], "not recorded"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], needle: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and "\n" not in err


def test_guide_writes_a_page_and_a_sidecar_clone_accepts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    side, page = tmp_path / "gestures.yaml", tmp_path / "guide.html"
    assert main(["gestures", "guide", "--level", "essential", "--sidecar", str(side),
                 "--page", str(page)]) == 0
    text = capsys.readouterr().out
    assert "| 1 |" in text and "point_up" in text
    spans = load_sidecar(side)
    essential = [g.id for g in default_library() if g.record == "essential"]
    assert sorted(s.id for s in spans) == sorted(essential)
    assert spans[0].start >= 60.0  # after the minute of natural talk
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))
    assert "<table>" in page.read_text(encoding="utf-8")


def test_marks_follow_the_hands_inside_each_shot() -> None:
    from livetwin.gesture.marks import SAMPLE_FPS, suggest

    times = np.arange(0, 20, 1 / SAMPLE_FPS)
    active = (times >= 4.3) & (times < 6.1) | (times >= 12.0) & (times < 12.2)
    guide = {"point_up": {"start": 4.0, "end": 6.5}, "nod": {"start": 8.0, "end": 9.5},
             "thumbs_up": {"start": 11.5, "end": 13.0}}
    marks = {m.id: m for m in suggest(times, active, guide)}
    assert marks["point_up"].found
    assert marks["point_up"].start == pytest.approx(4.1, abs=0.11)
    assert marks["point_up"].end == pytest.approx(6.3, abs=0.11)
    assert not marks["nod"].found and (marks["nod"].start, marks["nod"].end) == (8.0, 9.5)
    assert not marks["thumbs_up"].found  # 0.2 s of hand is no gesture
    free = suggest(times, active, None)
    assert [m.id for m in free] == ["hand_1"]


@pytest.mark.media
def test_marks_command_on_a_real_take(media, tmp_path: Path,  # type: ignore[no-untyped-def]
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "marks.yaml"
    video = media("man_black_sweater_20s_latentsync_demo2.mp4")
    assert main(["gestures", "marks", str(video), "--out", str(out)]) == 0
    spans = load_sidecar(out)
    assert spans and all(0 <= s.start < s.end <= 21.0 for s in spans)
    assert "hand_1" in capsys.readouterr().out
