"""The system clock jumps by hours mid-stream: the live output paces itself on the
monotonic clock, so frames keep coming at every tick and the receiver sees no gap.

In process, not a real clock change: setting the machine's clock would disturb every
other process on it (and needs root), so `time.time` is shifted by three hours forward
and then back inside this process while a real LiveOutput sends MPEG-TS over UDP to a
real receiver (livetwin/runtime/faults.py: clock_jump_row). `time.monotonic`, which a
real clock change does not move either, is left alone."""

from __future__ import annotations

import time

import pytest

from livetwin.runtime import faults

pytestmark = pytest.mark.slow


def test_a_wall_clock_jump_does_not_disturb_the_output() -> None:
    wall0 = time.time()
    row = faults.clock_jump_row(seconds=4.5)
    print(row.as_dict())
    assert abs(time.time() - wall0) < 60, "time.time was not restored"
    assert row.detail["received_after_jump"] >= 0.8 * row.ticks_due, row
    assert row.frames >= 0.9 * row.ticks_due, row
    assert row.resyncs == 0, row
    assert row.late_ticks <= max(10, row.ticks_due // 10), row
    assert row.receiver_max_gap_ms is not None and row.receiver_max_gap_ms < 1000, row
    assert row.detail["receiver_error"] is None
