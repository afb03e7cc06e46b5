"""The live output read back for real: OBS's UDP MPEG-TS, the MP4 recording, and the
"output never stalls" measurement with a busy upstream."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
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
REPO = Path(__file__).resolve().parents[2]


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


HOLDER = """
import sys, time
from pathlib import Path
from livetwin.output.live import LiveOutput
from livetwin.output.sinks import UdpTsSink
from tests.fakes_output import MarkerSource
out = LiveOutput(MarkerSource(size=(320, 240), fps=25),
                 [UdpTsSink(sys.argv[1])], isolate=True, hold_s=30, claim=Path(sys.argv[2]))
out.start()
print(out.child_pid, flush=True)
time.sleep(600)
"""


def test_a_dead_daemons_output_holds_the_picture_until_the_next_one_takes_over(
        tmp_path: Path) -> None:
    """kill -9 of the daemon: its output process goes on with the last picture and
    silence, so the receiver never goes without frames; the next daemon's output takes
    the sinks over (the claim file) and the holder exits."""
    from livetwin.runtime.benchmark import _Receiver

    port = free_udp_port()
    url, claim = f"udp://127.0.0.1:{port}?pkt_size=1316", tmp_path / "output.claim"
    receiver = _Receiver(port)
    receiver.start()
    daemon = subprocess.Popen([sys.executable, "-c", HOLDER, url, str(claim)],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    out = None
    try:
        assert daemon.stdout is not None
        holder = int(daemon.stdout.readline())
        time.sleep(3.0)
        killed_at = time.monotonic()
        daemon.kill()  # SIGKILL: no goodbye to the output process
        daemon.wait(10)
        time.sleep(3.0)
        assert _alive(holder) and json.loads(claim.read_text())["state"] == "holding"
        taken_at = time.monotonic()
        out = LiveOutput(MarkerSource(size=(320, 240), fps=FPS), [UdpTsSink(url)],
                         isolate=True, hold_s=30, claim=claim)
        out.start()
        deadline = time.monotonic() + 10
        while _alive(holder) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(holder), "the holder did not let go"
        time.sleep(2.0)
    finally:
        if out is not None:
            out.stop()
        if daemon.poll() is None:
            daemon.kill()
        daemon.wait(10)
        if daemon.stdout is not None:
            daemon.stdout.close()
        receiver.stop()
    gaps = {name: max((b - a for a, b in itertools.pairwise(t)), default=0.0)
            for name, t in (("kill", [a for a in receiver.arrivals
                                      if killed_at - 1 < a < taken_at]),
                            ("takeover", [a for a in receiver.arrivals if a > taken_at]))}
    print(f"\nlongest wait for a video packet: {gaps['kill'] * 1000:.0f} ms around the "
          f"kill, {gaps['takeover'] * 1000:.0f} ms around the take-over")
    assert receiver.error is None, receiver.error
    assert len([a for a in receiver.arrivals if killed_at + 0.5 < a < taken_at]) >= 2 * FPS
    # a stream that stopped would show a gap of the restart's length (~1-9 s)
    assert gaps["kill"] < 0.5 and gaps["takeover"] < 1.0, gaps
    assert json.loads(claim.read_text())["pid"] != holder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(
        f"/proc/{pid}/status").read_text().lower()
