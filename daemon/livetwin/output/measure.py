"""Measures the Must-show "the output never stalls": run a LiveOutput for a while on the
real clock and report the longest gap between frame hand-offs and the A/V drift."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from livetwin.output.encoder import EncoderSettings
from livetwin.output.live import LiveOutput, OutputStats, TickSource
from livetwin.output.sinks import Sink
from livetwin.runtime.clock import MediaClock


@dataclass(frozen=True)
class OutputMeasurement:
    """max_gap_frames: longest hand-off gap in frame periods (1.0 = perfectly paced);
    av_drift_s: audio minus video seconds written at the end; cpu_share: CPU seconds of
    the whole process per wall second (1.0 = one core)."""

    seconds: float
    frames: int
    expected_frames: int
    max_gap_frames: float
    av_drift_s: float
    late_ticks: int
    encode_ms_mean: float
    cpu_share: float
    stats: OutputStats

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def measure_output(source: TickSource, seconds: float, sinks: Sequence[Sink] = (),
                   clock: MediaClock | None = None,
                   encoder: EncoderSettings | None = None) -> OutputMeasurement:
    """Run `source` through a LiveOutput (with `sinks`) for `seconds` and measure it."""
    out = LiveOutput(source, sinks, clock, encoder=encoder)
    cpu0 = time.process_time()
    t0 = time.monotonic()
    out.start()
    try:
        time.sleep(seconds)
    finally:
        out.stop()
    wall = time.monotonic() - t0
    st = out.stats()
    return OutputMeasurement(
        seconds=wall, frames=st.frames, expected_frames=round(seconds * source.fps),
        max_gap_frames=st.max_gap_ms / 1000 * source.fps, av_drift_s=st.av_offset_s,
        late_ticks=st.late_ticks, encode_ms_mean=st.encode_ms_mean,
        cpu_share=(time.process_time() - cpu0) / wall, stats=st)

