"""The live output read back for real: OBS's UDP MPEG-TS, the MP4 recording, and the
"output never stalls" measurement with a busy upstream."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import av
import pytest

from livetwin.output.live import LiveOutput
from livetwin.output.measure import measure_output
from livetwin.output.sinks import FileSink, UdpTsSink
from tests.fakes_output import (
    BusySource,
    MarkerSource,
    decoded_from,
    free_udp_port,
    marker_offsets,
    read_stream,
    spawn_reader,
)

FPS = 25


@pytest.mark.parametrize("isolate", [False, True], ids=["thread", "child-process"])
def test_udp_stream_reads_back_in_sync(isolate: bool) -> None:
    port = free_udp_port()
    reader = spawn_reader(f"udp://127.0.0.1:{port}", 6.0, "mpegts")
    time.sleep(1.0)  # the reader listens before we send (OBS does the same)
    src = MarkerSource(size=(320, 240), fps=FPS, marker_every=FPS)
    out = LiveOutput(src, [UdpTsSink(f"udp://127.0.0.1:{port}?pkt_size=1316")],
                     isolate=isolate)
    out.start()
    time.sleep(6.0)
    out.stop()
    d = decoded_from(reader.communicate(timeout=30)[0])
    assert d.error is None, d.error
    assert d.codecs == {"video": "h264", "audio": "aac"}
    for kind in ("video", "audio"):
        assert d.dts[kind] == sorted(d.dts[kind]) and len(set(d.dts[kind])) == len(d.dts[kind])
    steps = {round(b - a, 4) for a, b in zip(d.video_times, d.video_times[1:], strict=False)}
    assert steps == {1 / FPS}  # every frame, evenly spaced
    assert len(d.video_times) >= 4 * FPS
    assert abs(d.audio_samples / 48000 - len(d.video_times) / FPS) < 0.1
    offs = marker_offsets(d)
    assert len(offs) >= 4
    assert max(abs(o) for o in offs) < 1 / FPS, offs  # A/V within one frame
    st = out.stats()
    assert st.sinks[0].state == "stopped" and st.sinks[0].failures == 0
    assert st.frames >= len(d.video_times) > 0  # counted where the hand-off happens
    assert abs(st.av_offset_s) < 1 / FPS


def test_isolated_output_survives_its_process_being_killed(tmp_path: Path) -> None:
    """The child that holds the clock and the sinks is killed: another one starts, the
    stream goes on (from the next keyframe) and the recording is kept in two files."""
    port = free_udp_port()
    src = MarkerSource(size=(320, 240), fps=FPS)
    out = LiveOutput(src, [UdpTsSink(f"udp://127.0.0.1:{port}?pkt_size=1316"),
                           FileSink(tmp_path / "rec")], isolate=True)
    out.start()
    try:
        time.sleep(3.0)
        first = out.child_pid
        assert first is not None and out.stats().frames > FPS
        os.kill(first, signal.SIGKILL)
        killed_at = time.monotonic()
        before = out.stats().frames
        while out.stats().frames <= before + FPS and time.monotonic() - killed_at < 30:
            time.sleep(0.1)
        back_s = time.monotonic() - killed_at
        reader = spawn_reader(f"udp://127.0.0.1:{port}", 2.0, "mpegts")
        time.sleep(3.0)
    finally:
        out.stop()
    st = out.stats()
    assert out.child_pid not in (None, first) and st.output_restarts == 1
    assert st.frames > before + FPS, f"no frames {back_s:.1f} s after the kill"
    d = decoded_from(reader.communicate(timeout=30)[0])
    assert d.error is None and len(d.video_times) >= FPS  # the new child streams
    files = sorted((tmp_path / "rec").glob("*.mp4"))
    assert len(files) == 2  # the killed child's fragmented MP4 stays readable
    for f in files:
        assert read_stream(str(f), 5).video_times, f


def test_late_joiner_decodes_from_the_next_keyframe() -> None:
    port = free_udp_port()
    src = MarkerSource(size=(320, 240), fps=FPS)
    out = LiveOutput(src, [UdpTsSink(f"udp://127.0.0.1:{port}?pkt_size=1316")])
    out.start()
    time.sleep(1.3)  # OBS starts after us: it must join mid-stream
    reader = spawn_reader(f"udp://127.0.0.1:{port}", 3.0, "mpegts")
    time.sleep(4.5)
    out.stop()
    d = decoded_from(reader.communicate(timeout=30)[0])
    assert d.error is None and d.codecs == {"video": "h264", "audio": "aac"}
    assert len(d.video_times) >= 1.5 * FPS


def test_mp4_recording_decodes_with_the_right_duration(tmp_path: Path) -> None:
    src = MarkerSource(size=(320, 240), fps=FPS, marker_every=FPS)
    sink = FileSink(tmp_path / "rec")
    out = LiveOutput(src, [sink])
    out.start()
    time.sleep(3.5)
    # crash safety: the file as it is on disk mid-recording already decodes (fragments)
    partial = tmp_path / "partial.mp4"
    partial.write_bytes(sink.paths[0].read_bytes())
    time.sleep(0.5)
    out.stop()
    frames = out.stats().frames
    assert len(read_stream(str(partial), 60).video_times) >= 2 * FPS
    assert len(sink.paths) == 1 and sink.paths[0].suffix == ".mp4"
    with av.open(str(sink.paths[0])) as c:
        assert {s.type: s.codec_context.name for s in c.streams} == {
            "video": "h264", "audio": "aac"}
        assert c.duration is not None
        assert c.duration / 1e6 == pytest.approx(frames / FPS, abs=2 / FPS)
    d = read_stream(str(sink.paths[0]), 60)
    assert d.error is None
    assert len(d.video_times) == frames
    # the first marker touches the AAC priming (decoders trim it): check the others
    offs = marker_offsets(d)[1:]
    assert len(offs) >= 2 and max(abs(o) for o in offs) < 1 / FPS, offs


@pytest.mark.slow
def test_output_never_stalls_with_a_busy_upstream() -> None:
    """Must-show: 20 s on the real clock, upstream jittering and burning CPU, UDP sink on."""
    port = free_udp_port()
    src = BusySource(size=(640, 360), fps=FPS, jitter_ms=10, burners=1)
    try:
        m = measure_output(src, 20.0, [UdpTsSink(f"udp://127.0.0.1:{port}?pkt_size=1316")])
    finally:
        src.close()
    print("measurement:", {k: v for k, v in m.as_dict().items() if k != "stats"},
          "long gaps:", m.stats.long_gaps)
    assert m.frames >= 0.98 * m.expected_frames
    assert abs(m.av_drift_s) < 1 / FPS
    # A stall is a hand-off that waits on upstream: the clock would fall over a second
    # behind and re-anchor. The gap figures themselves (1.2-1.7 periods at worst on a
    # quiet machine) are reported by `livetwin bench --only live`, not asserted here: on
    # two cores shared with other jobs a scheduler hiccup alone reaches ~250 ms.
    assert m.stats.resyncs == 0, m.stats.long_gaps
    assert m.max_gap_frames < FPS, m.stats.long_gaps  # never a second without a frame
