"""The soak of issue 11 (runtime/soak.py): the real demo show with a busy audience,
live, measured from outside.

`make soak` runs the hour (LIVETWIN_SOAK_S seconds, SOAK_MINUTES in the Makefile) and
asserts the targets of issue 11: RSS growth under 20 MB after the warm-up, A/V drift
under one frame, fps within 1 % of nominal. The default suite runs one minute of the
same harness, with the targets an hour needs relaxed to what a noisy minute can show."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from livetwin.runtime.soak import soak

REPO = Path(__file__).resolve().parents[2]
SOAK_S = os.environ.get("LIVETWIN_SOAK_S", "3600")  # make soak sets it
SHORT_S = 60.0


def _summary(report: dict[str, object]) -> str:
    return json.dumps(
        {k: v for k, v in report.items() if k != "series"}, indent=2, ensure_ascii=False
    )


@pytest.mark.soak
def test_an_hour_of_the_busy_show_stays_within_the_targets() -> None:
    report = soak(float(SOAK_S or 0), report_dir=REPO / "reports")
    print(_summary(report))  # make soak runs pytest -s: the report is on screen too
    targets = report["targets"]
    assert report["duration_s"] >= 0.99 * float(SOAK_S or 0)
    assert targets["rss_growth_mb"]["pass"], targets["rss_growth_mb"]
    assert targets["av_drift_frames"]["pass"], targets["av_drift_frames"]
    assert targets["fps_error"]["pass"], targets["fps_error"]


@pytest.mark.slow
def test_a_minute_of_soak_measures_the_whole_show(tmp_path: Path) -> None:
    report = soak(SHORT_S, sample_s=5.0, report_dir=tmp_path)
    summary = _summary(report)
    written = json.loads(Path(str(report["path"])).read_text(encoding="utf-8"))
    assert written["targets"] == report["targets"]
    assert report["samples"] == 13 and report["warmup_s"] == 6.0
    # The output keeps the clock whatever the chat does: a frame per tick (the full 1 %
    # target is the hour's; this machine's CPU is shared during the suite).
    fps = report["fps"]
    assert fps["measured"] == pytest.approx(fps["nominal"], rel=0.05), summary
    # Timestamps come from the tick index and the sample count: no A/V drift.
    assert report["targets"]["av_drift_frames"]["pass"], summary
    assert report["av"]["receiver_error"] is None, summary
    assert report["max_frame_gap"]["receiver_video_packets"] > 0.8 * fps["frames"], summary
    # A minute cannot show a leak under 20 MB/hour (allocator and caches settle for
    # minutes); it does show that RSS is measured and that nothing runs away.
    rss = report["rss_mb"]
    assert 100 < rss["start"] <= rss["max"] < rss["start"] + 500, summary
    # The busy audience reached the show, and the show talked and answered.
    assert report["chat"]["sent"] >= 3 * SHORT_S, summary
    assert report["chat"]["answered"] >= 1, summary
    assert report["lines_spoken"]["total"] >= 5, summary
    assert report["exit_code"] is not None
    assert report["errors"]["tracebacks"] == 0, summary
