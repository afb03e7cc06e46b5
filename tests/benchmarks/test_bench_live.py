"""`livetwin bench --only live` measures a real `livetwin serve` under a hanging TTS and a
chat flood, and reports figures (numbers, not pass/fail timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow]


def test_bench_json_reports_live_figures() -> None:
    env = {**os.environ, "LIVETWIN_BENCH_LIVE_S": "12"}
    proc = subprocess.run([sys.executable, "-m", "livetwin.cli", "bench", "--json", "--only",
                           "live"], capture_output=True, text=True, timeout=600, check=False,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    fig = json.loads(proc.stdout)["live"]
    talk, stress = fig["phases"]["talking"], fig["phases"]["stress"]
    for phase in (talk, stress):
        # A frame at every tick: the count follows the wall clock, whatever the TTS does.
        assert phase["frames"] == pytest.approx(phase["seconds"] * fig["fps"], rel=0.1)
        assert phase["received_video_packets"] > 0.8 * phase["frames"]
        assert 0 < phase["cpu_cores"] < 2.0
    assert fig["receiver_error"] is None
    assert stress["chat_accepted"] > 0
    assert talk["speaking_share"] > 0.5  # the hanging TTS delays lines, it does not stop them
    assert fig["lines_spoken"] >= 1
    # Timestamps come from the tick index and the sample count, so the stream's A/V
    # offset cannot drift (AAC packets quantise it to 21 ms at any instant).
    assert abs(fig["stream_av_drift_s"]) < 1.0 / fig["fps"]
    assert isinstance(fig["max_gap_frames"], float)
