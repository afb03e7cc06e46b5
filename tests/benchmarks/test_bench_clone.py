"""`livetwin bench --json` reports the clone figures (numbers, not pass/fail timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import mediagen

pytestmark = [pytest.mark.media, pytest.mark.slow]


def test_bench_json_reports_clone_figures(media, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # A 12 s cut of tedlieu: the bench's own run clones the whole shared clips; here the
    # figures' plumbing is what counts, and a short clone takes half the time.
    video = mediagen.make_clip(media("tedlieu_60s_edtalk_pose_source2.mp4"),
                               tmp_path / "ted12.mp4", start=5.0, duration=12.0)
    proc = subprocess.run([sys.executable, "-m", "livetwin.cli", "bench", "--json", "--only",
                           "clone", "--video", str(video)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    fig = figures["clone"][video.stem]
    assert "error" not in fig, fig
    for key in ("wall_s", "realtime_factor", "peak_rss_mb", "person_model_val_r",
                "energy_baseline_r"):
        assert isinstance(fig[key], float), (key, fig)
    assert fig["duration_s"] == pytest.approx(12.0, abs=0.1)
    assert 0 < fig["peak_rss_mb"] < 24 * 1024
    assert figures["machine"]["cpus"] >= 1
