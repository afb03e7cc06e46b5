"""LiveOutput on a fake clock: timestamps, keyframes, late ticks, failing parts."""

from __future__ import annotations

import io
import itertools
import os
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from livetwin.config import OutputConfig
from livetwin.output import sinks as sinks_mod
from livetwin.output.encoder import EncodedTick, EncoderSettings, StreamTemplates
from livetwin.output.live import LEAD_TICKS, LiveOutput
from livetwin.output.sinks import (
    FileSink,
    MuxSink,
    PreviewSink,
    RtmpSink,
    SinkStats,
    UdpTsSink,
    sinks_from_config,
)
from livetwin.runtime.clock import FakeClock
from tests.fakes_output import FailingSource, MarkerSource

SIZE = (64, 48)


class RecordingSink:
    """Keeps every tick it is fed; `fail_feed` makes feed() raise."""

    name = "recording"

    def __init__(self, fail_feed: bool = False) -> None:
        self.ticks: list[EncodedTick] = []
        self.fail_feed = fail_feed
        self.started = self.stopped = False

    def start(self, templates: StreamTemplates, fps: int) -> None:
        self.started = True

    def feed(self, tick: EncodedTick) -> None:
        if self.fail_feed:
            raise RuntimeError("broken sink")
        self.ticks.append(tick)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped = True

    def stats(self) -> SinkStats:
        return SinkStats(self.name, "connected", 0, 0, len(self.ticks), 0, 1, None)


def run_until(out: LiveOutput, frames: int, timeout: float = 30.0) -> None:
    out.start()
    end = time.monotonic() + timeout
    while out.stats().frames < frames and time.monotonic() < end:
        time.sleep(0.01)
    out.stop()


class HiccupSource(MarkerSource):
    """Advances the fake clock (a stalled machine) at chosen ticks."""

    def __init__(self, clock: FakeClock, stalls: dict[int, float], **kw: Any) -> None:
        super().__init__(size=SIZE, **kw)
        self.clock, self.stalls = clock, stalls

    def tick(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index in self.stalls:
            self.clock.advance(self.stalls[index])
        return super().tick(index)


def test_timestamps_follow_the_media_timeline() -> None:
    src = MarkerSource(size=SIZE, fps=25)
    rec = RecordingSink()
    out = LiveOutput(src, [rec], FakeClock(25), encoder=EncoderSettings(keyframe_s=1.0))
    run_until(out, 120)
    assert rec.started and rec.stopped and not out.running
    n = out.stats().frames
    assert src.calls == list(range(len(src.calls))) and len(src.calls) >= n
    assert [t.index for t in rec.ticks[:n]] == list(range(n))
    video = [p for t in rec.ticks for p in t.packets if p.kind == "video"]
    audio = [p for t in rec.ticks for p in t.packets if p.kind == "audio"]
    # zerolatency: one packet per frame, PTS = tick index, in order, nothing lost
    assert [p.pts for p in video] == list(range(len(video))) and len(video) >= n
    assert all(p.time_base == pytest.approx(1 / 25) for p in video)
    keys = [p.pts for p in video if p.keyframe]
    assert keys[:4] == [0, 25, 50, 75]  # keyframe_s = 1 s: OBS can join within a second
    pts = [p.pts for p in audio]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    # AAC frames of 1024 samples, back to back (the flushed tail may be shorter)
    assert all(b - a == 1024 for a, b in itertools.pairwise(pts[:-1]))
    assert pts[-1] + 1024 >= n * 48000 / 25  # flushed to the end
    assert abs(out.stats().av_offset_s) < 1 / 25


def test_late_ticks_are_caught_up_without_gaps_in_pts() -> None:
    clock = FakeClock(25)
    src = HiccupSource(clock, {10: 0.2, 40: 3.0})  # 5 frames late; then past catch-up
    rec = RecordingSink()
    out = LiveOutput(src, [rec], clock)
    run_until(out, 80)
    st = out.stats()
    # the 200 ms hiccup outlasts the lead (3 ticks = 120 ms): some ticks go out late
    assert st.late_ticks >= 1
    assert st.resyncs == 1  # 3 s is too long to race through: the clock re-anchors
    assert st.max_gap_ms == pytest.approx(3000, abs=1)
    # each stall shows once, at the hand-off the stalled producer held up (the source is
    # pulled up to LEAD_TICKS ahead of the clock)
    (i200, g200), (i3000, g3000) = st.long_gaps
    assert (g200, g3000) == (200.0, 3000.0)
    assert 10 - LEAD_TICKS <= i200 <= 10 and 40 - LEAD_TICKS <= i3000 <= 40
    video = [p.pts for t in rec.ticks for p in t.packets if p.kind == "video"]
    assert video == list(range(len(video)))  # no tick skipped, no PTS jump
    assert st.av_offset_s == pytest.approx(0.0, abs=1 / 25)


def test_a_failing_source_gives_the_last_frame_and_silence() -> None:
    src = FailingSource({5, 6, 7}, size=SIZE, fps=25)
    rec = RecordingSink()
    out = LiveOutput(src, [rec], FakeClock(25))
    run_until(out, 30)
    st = out.stats()
    assert st.source_errors == 3 and st.frames >= 30
    assert rec.ticks[6].frame is rec.ticks[4].frame
    assert [t.index for t in rec.ticks[:30]] == list(range(30))


class WrongSource(MarkerSource):
    def tick(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        frame, pcm = super().tick(index)
        if index == 3:
            return frame[:10], pcm  # wrong shape: refused, counted
        return frame, pcm[:-5]  # short audio: padded so the timeline stays exact


def test_wrong_frames_and_short_audio_keep_the_timeline() -> None:
    out = LiveOutput(WrongSource(size=SIZE), [RecordingSink()], FakeClock(25))
    run_until(out, 50)
    st = out.stats()
    assert st.source_errors == 1
    assert st.av_offset_s == pytest.approx(0.0, abs=1e-9)


def test_a_broken_sink_does_not_disturb_the_others() -> None:
    good, bad = RecordingSink(), RecordingSink(fail_feed=True)
    out = LiveOutput(MarkerSource(size=SIZE), [bad, good], FakeClock(25))
    run_until(out, 40)
    assert len(good.ticks) >= 40 and bad.stopped


def test_clock_and_source_must_agree_on_fps() -> None:
    with pytest.raises(ValueError, match="fps"):
        LiveOutput(MarkerSource(size=SIZE, fps=25), [], FakeClock(30))


def test_odd_frame_size_is_refused_at_start() -> None:
    out = LiveOutput(MarkerSource(size=(63, 48)), [], FakeClock(25))
    with pytest.raises(ValueError, match="even"):
        out.start()


class FlakyMemorySink(MuxSink):
    """A MuxSink into memory whose first `fail_opens` opens raise (a server that is down)."""

    format = "mpegts"

    def __init__(self, fail_opens: int) -> None:
        super().__init__("flaky", "memory")
        self.fail_opens = fail_opens
        self.opens = 0
        self.buffers: list[io.BytesIO] = []

    def open_container(self) -> Any:
        self.opens += 1
        if self.opens <= self.fail_opens:
            raise ConnectionRefusedError("server down")
        buf = io.BytesIO()
        self.buffers.append(buf)
        return av.open(buf, "w", format="mpegts")


def test_a_failing_sink_retries_with_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sinks_mod, "BACKOFF_FIRST_S", 0.01)
    sink = FlakyMemorySink(fail_opens=2)
    rec = RecordingSink()
    clock = FakeClock(25, auto=False)
    out = LiveOutput(MarkerSource(size=SIZE), [sink, rec], clock)
    out.start()
    deadline = time.monotonic() + 20
    while sink.stats().state != "connected" and time.monotonic() < deadline:
        clock.advance(0.04)
        time.sleep(0.005)
    for _ in range(60):
        clock.advance(0.04)
        time.sleep(0.005)
    time.sleep(0.2)
    out.stop()
    st = sink.stats()
    assert st.failures == 2 and st.connects == 1 and st.state == "stopped"
    assert "server down" in (st.last_error or "")
    # what it wrote is a valid stream that starts at a keyframe
    data = sink.buffers[0].getvalue()
    with av.open(io.BytesIO(data), format="mpegts") as c:
        frames = list(c.decode(video=0))
    assert len(frames) >= 20


def test_queue_overflow_drops_to_a_keyframe() -> None:
    src = MarkerSource(size=SIZE)
    rec = RecordingSink()
    out = LiveOutput(src, [rec], FakeClock(25), encoder=EncoderSettings(keyframe_s=1.0))
    run_until(out, 200)
    sink = UdpTsSink("udp://127.0.0.1:9?pkt_size=1316", max_queue_s=2.0)
    for t in rec.ticks:  # never started: nobody drains the queue
        sink.feed(t)
    q = list(sink._q)
    assert q[-1].seconds - q[0].seconds <= 2.0 + 1.0
    assert q[0].kind == "video" and q[0].keyframe
    assert sink.stats().dropped > 0


def test_preview_jpegs_decode_and_are_small() -> None:
    src = MarkerSource(size=(1280, 720), fps=25)
    prev = PreviewSink(fps=5)
    out = LiveOutput(src, [prev], FakeClock(25, auto=False))
    assert prev.latest_jpeg() is None
    out.start()
    deadline = time.monotonic() + 10
    while prev.latest_jpeg() is None and time.monotonic() < deadline:
        out.clock.advance(0.04)  # type: ignore[attr-defined]
        time.sleep(0.01)
    out.stop()
    jpeg = prev.latest_jpeg()
    assert jpeg is not None
    img = Image.open(io.BytesIO(jpeg))
    img.load()
    assert img.format == "JPEG" and img.size == (640, 360)
    assert prev.stats().packets >= 1


def test_sinks_are_chosen_from_config(tmp_path: Path) -> None:
    default = sinks_from_config(OutputConfig())
    assert [type(s) for s in default] == [UdpTsSink, PreviewSink]
    assert isinstance(default[0], UdpTsSink) and default[0].url.endswith(":9999?pkt_size=1316")
    cfg = OutputConfig(rtmp_url="rtmp://127.0.0.1/live/k", record_dir=tmp_path, obs_url="",
                       preview_fps=0)
    assert [type(s) for s in sinks_from_config(cfg)] == [RtmpSink, FileSink]


def test_encoder_settings_from_config() -> None:
    s = EncoderSettings.from_config(OutputConfig(crf=30, keyframe_s=2, video_bitrate_kbps=900))
    assert (s.crf, s.keyframe_s, s.video_bitrate_kbps) == (30, 2, 900)


def test_stop_without_start_is_harmless() -> None:
    out = LiveOutput(MarkerSource(size=SIZE), [], FakeClock(25))
    out.stop()
    assert not out.running
    assert threading.active_count() >= 1


def test_rtmp_connects_in_a_relay_process_not_in_ours() -> None:
    """FFmpeg holds the GIL while it connects RTMP (180-190 ms stalls of the tick thread
    measured); the sink must hand the network to a child process."""
    sink = RtmpSink("rtmp://127.0.0.1:9/live/key")
    container = sink.open_container()  # returns at once: the child does the network
    proc = sink._proc
    try:
        assert proc is not None and proc.pid != os.getpid() and proc.poll() is None
    finally:
        container.close()
        sink.cleanup()
    assert proc.returncode is not None and not sink.is_up()
