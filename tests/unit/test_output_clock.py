"""The media clock and the tick arithmetic of docs/live.md."""

from __future__ import annotations

import threading
import time

import pytest

from livetwin.output.live import samples_in_tick
from livetwin.runtime.clock import FakeClock, RealClock


@pytest.mark.parametrize("fps", [24, 25, 30, 60])
@pytest.mark.parametrize("rate", [44100, 48000])
def test_samples_in_tick_add_up_exactly(fps: int, rate: int) -> None:
    counts = [samples_in_tick(i, fps, rate) for i in range(10 * fps + 7)]
    assert sum(counts) == round(len(counts) * rate / fps)
    assert max(counts) - min(counts) <= 1


def test_real_clock_due_times_never_drift() -> None:
    clock = RealClock(30)
    clock.start()
    t0 = clock.due(0)
    # computed from the index, not summed: a day of ticks is exactly a day later
    assert clock.due(30 * 86400) - t0 == pytest.approx(86400.0, abs=1e-6)
    assert clock.due(3) - t0 == pytest.approx(0.1)


def test_real_clock_waits_until_due_and_reports_lateness() -> None:
    clock = RealClock(50)
    stop = threading.Event()
    clock.start()
    late = clock.wait_for(5, stop)  # 0.1 s after start
    assert time.monotonic() >= clock.due(5)
    assert late >= 0
    time.sleep(0.05)
    assert clock.wait_for(6, stop) >= 0.02  # 6 was due at 0.12 s; now it is >= 0.15 s


def test_real_clock_wait_ends_on_stop() -> None:
    clock = RealClock(1)
    stop = threading.Event()
    clock.start()
    threading.Timer(0.05, stop.set).start()
    t = time.monotonic()
    clock.wait_for(100, stop)
    assert time.monotonic() - t < 5


def test_rebase_makes_a_tick_due_now() -> None:
    clock = FakeClock(25)
    clock.start()
    clock.advance(10.0)
    clock.rebase(7)
    assert clock.due(7) == clock.now()
    assert clock.due(32) == pytest.approx(clock.now() + 1.0)


def test_fake_clock_auto_jumps_and_counts_hiccups() -> None:
    clock = FakeClock(25)
    stop = threading.Event()
    clock.start()
    assert clock.wait_for(100, stop) == 0.0
    assert clock.now() == pytest.approx(clock.due(100))
    clock.advance(0.2)  # the machine hiccups for 200 ms
    assert clock.wait_for(101, stop) == pytest.approx(0.16)


def test_fake_clock_manual_waits_for_advance() -> None:
    clock = FakeClock(10, auto=False)
    stop = threading.Event()
    clock.start()
    done = threading.Event()

    def waiter() -> None:
        clock.wait_for(5, stop)
        done.set()

    threading.Thread(target=waiter, daemon=True).start()
    assert not done.wait(0.1)
    clock.advance(0.4)
    assert not done.wait(0.1)
    clock.advance(0.1)
    assert done.wait(2)
