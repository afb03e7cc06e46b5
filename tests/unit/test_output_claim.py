"""The claim file by which one output process takes the sinks over from another that
holds a dead daemon's picture (output/pacer.py `Claim`): the two release stages."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

from livetwin.output.pacer import Claim


def test_take_over_signals_a_holding_predecessor_and_returns_its_pid(tmp_path: Path) -> None:
    holder = subprocess.Popen(["sleep", "30"])
    try:
        path = tmp_path / "output.claim"
        path.write_text(json.dumps({"pid": holder.pid, "state": "holding"}))
        claim = Claim(path)
        assert claim.take_over() == holder.pid
        assert holder.wait(5) != 0  # it got SIGTERM
        assert claim.read() == {"pid": os.getpid(), "state": "live"}
    finally:
        holder.kill()
        holder.wait()


def test_take_over_of_a_live_or_released_claim_waits_for_nobody(tmp_path: Path) -> None:
    path = tmp_path / "output.claim"
    assert Claim(path).take_over() is None  # no file yet
    path.write_text(json.dumps({"pid": 1, "state": "released"}))
    assert Claim(path).take_over() is None
    assert Claim(path).read()["state"] == "live"


def test_the_successor_may_send_at_picture_and_start_rtmp_at_all(tmp_path: Path) -> None:
    claim = Claim(tmp_path / "output.claim")
    claim.WAIT_S = 0.2
    me = os.getpid()
    assert not claim.wait_released(me, "picture")  # nothing released yet: times out
    claim.release("picture")
    assert claim.wait_released(me, "picture")
    assert not claim.wait_released(me, "all")  # the one-publisher sinks are still open
    later = threading.Timer(0.05, claim.release, args=("all",))
    later.start()
    claim.WAIT_S = 2.0
    t0 = time.monotonic()
    assert claim.wait_released(me, "all")
    assert 0.03 < time.monotonic() - t0 < 1.0
    later.join()
    assert not list(tmp_path.glob("*.released")), "the marker was left behind"


def test_release_all_marks_the_claim_released_only_when_it_is_still_ours(
        tmp_path: Path) -> None:
    claim = Claim(tmp_path / "output.claim")
    claim.write("holding")
    claim.release("picture")
    assert claim.read()["state"] == "holding"  # still sending nothing, still ours
    claim.release("all")
    assert claim.read() == {"pid": os.getpid(), "state": "released"}
    (tmp_path / "output.claim").write_text(json.dumps({"pid": 1, "state": "live"}))
    claim.release(None)
    assert claim.read() == {"pid": 1, "state": "live"}  # a successor's claim is kept
