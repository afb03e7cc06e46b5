"""The clock that hands encoded ticks to the sinks, in a thread or in a child process.

`run_clock` is the hand-off loop: tick i goes to the sinks when it is due on the media
clock; a tick that comes late is handed off at once and counted, and one later than
`max_catchup_s` re-anchors the clock instead of racing to catch up. `LiveOutput` runs it
in a thread by default, or, with `isolate=True` (what `livetwin serve` uses), in a child
process that owns the muxing sinks (OBS over UDP, RTMP, the recording): `ChildPacer`.

Why a process: in `livetwin serve` the tick thread shared the GIL with uvicorn, the chat
pipeline and the renderer. Under a chat flood it waited up to ~45 ms for the GIL on top
of its period (2.4 periods between two hand-offs, measured) although the frames were
encoded ticks ahead. A child has its own interpreter: its clock and its sinks run with
nothing else holding their GIL, and the parent only has to keep the lead filled.

Protocol: the parent's producer takes one of `lead` semaphore slots, then sends
("tick", index, samples, packets) over a pipe; the child hands the tick off when due and
gives the slot back, so the parent stays at most `lead` ticks ahead. ("stop",) ends it:
what is queued is handed off at once, the sinks drain and close. The child sends its
counters back every `STATS_EVERY_S` and once at the end. When the parent dies the pipe
closes and the child stops; when the child dies the parent starts another (the sinks
reconnect and OBS rejoins at the next keyframe) and counts a restart.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from livetwin.output.encoder import EncodedTick, EncoderSettings
from livetwin.runtime.clock import MediaClock, RealClock

log = logging.getLogger(__name__)

STATS_EVERY_S = 0.25
START_WAIT_S = 60.0  # for the first child to run its sinks (imports on a busy machine)
Ready = tuple[EncodedTick, int]  # an encoded tick and its audio samples
FLUSH = -1  # "samples" of the tick that carries the encoder's flush


@dataclass
class HandOffStats:
    """What the clock loop counts. max_gap is the longest time between two hand-offs;
    long gaps are those over 1.5 periods (the last 50 kept: (tick, ms))."""

    frames: int = 0
    late: int = 0
    resyncs: int = 0
    samples: int = 0
    max_gap: float = 0.0
    long_gap_count: int = 0
    long_gaps: collections.deque[tuple[int, float]] = field(
        default_factory=lambda: collections.deque(maxlen=50))
    starved: int = 0  # late ticks that were not encoded yet when due (upstream behind)

    def count(self, samples: int) -> None:
        """One more tick handed off, with its audio samples (FLUSH: the encoder's last
        packets, not a frame)."""
        if samples == FLUSH:
            return
        self.frames += 1
        self.samples += samples

    def plus(self, other: HandOffStats) -> HandOffStats:
        """These counters followed by `other`'s (a restarted child's)."""
        gaps = collections.deque(self.long_gaps, maxlen=50)
        gaps.extend(other.long_gaps)
        return HandOffStats(self.frames + other.frames, self.late + other.late,
                            self.resyncs + other.resyncs, self.samples + other.samples,
                            max(self.max_gap, other.max_gap),
                            self.long_gap_count + other.long_gap_count, gaps,
                            self.starved + other.starved)

    def copy(self) -> HandOffStats:
        """A snapshot that the loop's later counting does not change."""
        return replace(self, long_gaps=collections.deque(self.long_gaps, maxlen=50))


def run_clock(clock: MediaClock, first: Ready, next_tick: Callable[[], Ready | None],
              hand_off: Callable[[EncodedTick], None], stop: threading.Event,
              counters: HandOffStats, max_catchup_s: float) -> Ready | None:
    """Hand `first` and the ticks `next_tick()` gives off when due (module doc), until
    `stop` is set or `next_tick()` gives None; return the tick in hand at the stop."""
    period = 1.0 / clock.fps
    clock.start()
    last: float | None = None
    index = 0
    ready: Ready | None = first
    got = clock.now()
    while ready is not None:
        late = clock.wait_for(index, stop)
        if stop.is_set():
            return ready
        if late > period / 2:
            counters.late += 1
            if got - clock.due(index) > period / 2:
                counters.starved += 1
        if late > max_catchup_s:
            counters.resyncs += 1
            log.warning("output was %.1f s late at tick %d; re-anchoring the clock",
                        late, index)
            clock.rebase(index)
        hand_off(ready[0])
        now = clock.now()
        if last is not None:
            gap = now - last
            counters.max_gap = max(counters.max_gap, gap)
            if gap > 1.5 * period:
                counters.long_gap_count += 1
                counters.long_gaps.append((index, round(gap * 1000, 1)))
        last = now
        counters.count(ready[1])
        index += 1
        ready = next_tick()
        got = clock.now()
    return None


def hand_off_all(sinks: Sequence[Any], tick: EncodedTick) -> None:
    """Give `tick` to every sink; a failing sink must not stop the others or the clock."""
    for sink in sinks:
        try:
            sink.feed(tick)
        except Exception:
            log.exception("sink %s failed to take tick %d", sink.name, tick.index)


@dataclass(frozen=True)
class SinkSpec:
    """How to build a sink again in the child: its class and constructor arguments."""

    kind: type
    arg: Any
    max_queue_s: float

    @classmethod
    def of(cls, sink: Any) -> SinkSpec | None:
        """The spec of a muxing sink that can live in the child; None for others
        (the preview, or a sink this module does not know how to rebuild)."""
        from livetwin.output.sinks import FileSink, RtmpSink, UdpTsSink

        if type(sink) is FileSink:
            return cls(FileSink, sink.record_dir, sink.max_queue_s)
        if type(sink) in (UdpTsSink, RtmpSink):
            return cls(type(sink), sink.url, sink.max_queue_s)
        return None

    def build(self) -> Any:
        """A new, unstarted sink."""
        return self.kind(self.arg, max_queue_s=self.max_queue_s)


@dataclass(frozen=True)
class ChildArgs:
    """Everything the child needs, picklable."""

    specs: tuple[SinkSpec, ...]
    size: tuple[int, int]
    fps: int
    sample_rate: int
    settings: EncoderSettings
    extradata: tuple[bytes, bytes]  # the parent encoder's (video, audio) extradata
    max_catchup_s: float
    log_level: int
    hold_s: float = 0.0  # orphaned (the daemon died): hold the picture this long
    claim: str | None = None  # the claim file shared by the outputs of one livetwin home


@dataclass(frozen=True)
class ChildReport:
    """The child's counters and its sinks' stats (SinkStats)."""

    counters: HandOffStats
    sinks: tuple[Any, ...]


class ChildPacer:
    """The parent's side of the child process (module doc)."""

    def __init__(self, args: ChildArgs, lead: int) -> None:
        self.args, self.lead = args, lead
        self._ctx = multiprocessing.get_context("spawn")  # no fork of a threaded parent
        self._proc: Any = None
        self._conn: Connection | None = None
        self._slots: Any = None
        self._reader: threading.Thread | None = None
        self._base = HandOffStats()  # counters of children that ended
        self._latest = ChildReport(HandOffStats(), ())
        self._lock = threading.Lock()
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        """The child's process id (None before start)."""
        return None if self._proc is None else int(self._proc.pid)

    def alive(self) -> bool:
        """Whether the child runs."""
        return self._proc is not None and self._proc.is_alive()

    def start(self, wait_s: float = 0.0) -> None:
        """Start the child (it builds and starts the sinks, then waits for ticks); with
        `wait_s`, wait that long for it to report that its sinks run (RuntimeError when
        it does not)."""
        data_out, data_in = self._ctx.Pipe(duplex=False)  # (receive end, send end)
        stats_out, stats_in = self._ctx.Pipe(duplex=False)
        self._slots = self._ctx.Semaphore(self.lead)
        self._proc = self._ctx.Process(target=child_main, name="livetwin-output",
                                       args=(self.args, data_out, stats_in, self._slots),
                                       daemon=True)
        self._proc.start()
        data_out.close()
        stats_in.close()
        self._conn = data_in
        reported = threading.Event()
        self._reader = threading.Thread(target=self._read_reports,
                                        args=(stats_out, reported),
                                        name="live-output-stats", daemon=True)
        self._reader.start()
        if wait_s and not reported.wait(wait_s):
            self._proc.kill()
            raise RuntimeError(f"the output process did not start within {wait_s:.0f} s "
                               f"(exit code {self._proc.exitcode})")

    def put(self, tick: EncodedTick, samples: int, stop: threading.Event) -> bool:
        """Send one tick once the lead allows it (blocks); False when `stop` was set
        first (the tick is then the caller's to send with `finish`)."""
        while True:
            if self._slots.acquire(timeout=0.1):
                try:
                    assert self._conn is not None
                    self._conn.send(("tick", tick.index, samples, tick.packets))
                    return True
                except OSError:  # the child died after the check: send to the next one
                    self._restart()
                    continue
            if stop.is_set():
                return False
            if not self.alive():
                self._restart()

    def finish(self, ticks: Sequence[Ready], timeout: float) -> None:
        """Send the last ticks (handed off at once), stop the child and wait for it."""
        if self._conn is not None:
            try:
                self._conn.send(("drain",))  # stop pacing: what follows goes out at once
                for tick, samples in ticks:
                    self._conn.send(("tick", tick.index, samples, tick.packets))
                self._conn.send(("stop",))
            except OSError:
                log.warning("the output child was gone at the stop")
        if self._proc is not None:
            self._proc.join(timeout + 2.0)
            if self._proc.is_alive():
                log.warning("the output child did not stop within %.1f s", timeout + 2.0)
                self._proc.kill()
                self._proc.join(2.0)
        if self._reader is not None:
            self._reader.join(2.0)
        if self._conn is not None:
            self._conn.close()
        self._slots = None  # its finalizer unlinks the named semaphore

    def report(self) -> ChildReport:
        """Counters over every child so far, and the current child's sinks."""
        with self._lock:
            latest, base = self._latest, self._base
        return ChildReport(base.plus(latest.counters), latest.sinks)

    def _read_reports(self, conn: Connection, reported: threading.Event) -> None:
        with conn:
            while True:
                try:
                    report = conn.recv()
                except (EOFError, OSError):
                    return
                with self._lock:
                    self._latest = report
                reported.set()

    def _restart(self) -> None:
        code = self._proc.exitcode if self._proc is not None else None
        log.warning("the output process ended (exit code %s); starting another", code)
        if self._reader is not None:
            self._reader.join(1.0)
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
        self._slots = None
        with self._lock:
            self._base = self._base.plus(self._latest.counters)
            self._latest = ChildReport(HandOffStats(), self._latest.sinks)
        self.restarts += 1
        self.start()


# -- the child process -------------------------------------------------------------------
def child_main(args: ChildArgs, inbox_conn: Connection, stats_conn: Connection,
               slots: Any) -> None:
    """The child: build the sinks, hand ticks off when due, report (module doc)."""
    from livetwin.output.encoder import Encoder
    from livetwin.output.live import raise_priority

    logging.basicConfig(level=args.log_level,
                        format="%(levelname)s %(name)s (output process): %(message)s")
    # Ctrl-C reaches the whole process group: the daemon stops this process ("stop")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_priority()
    encoder = Encoder(args.size, args.fps, args.sample_rate, args.settings)
    templates = encoder.templates
    mine = (bytes(templates.video.codec_context.extradata or b""),
            bytes(templates.audio.codec_context.extradata or b""))
    if mine != args.extradata:  # the streams would not decode: fail loudly
        raise RuntimeError("the output process's encoder parameters differ from the "
                           "parent's (different PyAV/x264?)")
    claim = Claim(Path(args.claim)) if args.claim else None
    sinks = [spec.build() for spec in args.specs]  # started with the first tick
    inbox: collections.deque[Ready] = collections.deque()
    cv = threading.Condition()
    stop = threading.Event()
    orphaned = threading.Event()
    counters = HandOffStats()
    gop = Gop()

    def read() -> None:
        while True:
            try:
                msg = inbox_conn.recv()
            except (EOFError, OSError):  # the parent is gone
                orphaned.set()
                break
            if msg[0] == "stop":
                break
            if msg[0] == "drain":
                with cv:
                    stop.set()
                    cv.notify()
                continue
            _, index, samples, packets = msg
            with cv:
                inbox.append((EncodedTick(index, _NO_FRAME, packets), samples))
                cv.notify()
        with cv:
            stop.set()
            cv.notify()

    def next_tick() -> Ready | None:
        with cv:
            while not inbox and not stop.is_set():
                cv.wait(0.5)
            return inbox.popleft() if inbox else None

    def hand_off(tick: EncodedTick) -> None:
        hand_off_all(sinks, tick)
        gop.add(tick)
        slots.release()

    def report() -> None:
        with contextlib.suppress(OSError):
            stats_conn.send(ChildReport(counters.copy(), tuple(s.stats() for s in sinks)))

    def report_often() -> None:
        while not stop.wait(STATS_EVERY_S):
            report()

    reader = threading.Thread(target=read, name="output-inbox", daemon=True)
    reader.start()
    threading.Thread(target=report_often, name="output-report", daemon=True).start()
    report()
    first = next_tick()
    # Only now, with a frame to send, a predecessor that holds a dead daemon's picture
    # is told to let go of the sinks. It stops sending at once and frees the shared
    # sinks first, while this process starts its own, so the viewer's gap is about one
    # frame period; a one-publisher sink (RTMP) starts once the predecessor closed it.
    shared = [s for s in sinks if not s.one_publisher]  # all MuxSinks (SinkSpec)
    exclusive = [s for s in sinks if s not in shared]
    prev = claim.take_over() if first is not None and claim is not None else None
    for sink in shared:
        sink.start(templates, args.fps)
    if prev is not None and claim is not None:
        claim.wait_released(prev, "picture")
        threading.Thread(target=_start_after, args=(claim, prev, exclusive, templates,
                                                    args.fps),
                         name="output-late-sinks", daemon=True).start()
    else:
        for sink in exclusive:
            sink.start(templates, args.fps)
    ready = None
    if first is not None:
        ready = run_clock(RealClock(args.fps), first, next_tick, hand_off, stop, counters,
                          args.max_catchup_s)
    reader.join()  # until ("stop",) or the parent is gone: every tick sent is in the inbox
    for tick, samples in ([ready] if ready is not None else []) + list(inbox):
        hand_off_all(sinks, tick)  # the stop: the ticks sent are part of the stream
        gop.add(tick)
        counters.count(samples)
    held = orphaned.is_set() and args.hold_s > 0 and gop.last_index is not None
    if held:
        hold(args, encoder, sinks, gop, counters, claim)
    for sink in shared:
        sink.stop(5.0)
    if held and claim is not None:
        claim.release("picture")  # the successor may send now
    for sink in exclusive:
        sink.stop(5.0)
    encoder.close()
    report()  # the last counters
    stats_conn.close()
    if claim is not None:
        claim.release("all" if held else None)


def _start_after(claim: Claim, prev: int, sinks: Sequence[Any], templates: Any,
                 fps: int) -> None:
    """Start `sinks` once the predecessor `prev` closed all of its own (or gave up)."""
    claim.wait_released(prev, "all")
    for sink in sinks:
        sink.start(templates, fps)


class Gop:
    """The video packets since the last keyframe, to decode the last picture from."""

    def __init__(self) -> None:
        self.packets: list[Any] = []
        self.last_index: int | None = None

    def add(self, tick: EncodedTick) -> None:
        if tick.index < 0 or not tick.packets:
            return
        for pkt in tick.packets:
            if pkt.kind != "video":
                continue
            if pkt.keyframe:
                self.packets = []
            self.packets.append(pkt)
        self.last_index = max(tick.index, self.last_index or 0)

    def last_picture(self, templates: Any, size: tuple[int, int]) -> np.ndarray:
        """The last frame (RGB), decoded from the keyframe on; black when it cannot be."""
        import av

        w, h = size
        try:
            ctx = av.CodecContext.create("h264", "r")
            ctx.extradata = bytes(templates.video.codec_context.extradata or b"")
            frames = []
            for p in self.packets:
                frames += ctx.decode(av.Packet(p.data))
            frames += ctx.decode(None)
            if frames:
                return np.asarray(frames[-1].to_ndarray(format="rgb24"), np.uint8)
        except Exception as exc:  # a picture is a nicety; black is the fallback
            log.warning("could not decode the last picture to hold (%s)", exc)
        return np.zeros((h, w, 3), np.uint8)


def hold(args: ChildArgs, encoder: Any, sinks: Sequence[Any], gop: Gop,
         counters: HandOffStats, claim: Claim | None) -> None:
    """The daemon died: keep the stream going with its last picture and silence, on the
    same timeline, until the next daemon's output claims the sinks (`Claim`) or `hold_s`
    pass. A viewer sees the twin freeze for the restart instead of the stream
    stopping (OBS would show its last frame, then nothing; a platform may end the
    broadcast)."""
    from livetwin.output.live import samples_in_tick

    stop = threading.Event()
    with contextlib.suppress(ValueError):  # not the main thread (tests)
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if claim is not None:
        claim.write("holding")
    picture = gop.last_picture(encoder.templates, args.size)
    assert gop.last_index is not None
    index = gop.last_index + 1
    encoder.samples = counters.samples  # audio timestamps go on from the stream's
    log.warning("the daemon is gone: holding its last picture for up to %.0f s",
                args.hold_s)
    clock = RealClock(args.fps)
    clock.start()
    k = 0
    end = time.monotonic() + args.hold_s
    while time.monotonic() < end and not stop.is_set():
        if claim is not None and k % args.fps == 0 and claim.taken():
            break
        clock.wait_for(k, stop)
        if stop.is_set():
            break
        pcm = np.zeros(samples_in_tick(index, args.fps, args.sample_rate), np.int16)
        packets = encoder.encode(index, picture, pcm)
        hand_off_all(sinks, EncodedTick(index, _NO_FRAME, tuple(packets)))
        counters.count(len(pcm))
        index += 1
        k += 1
    log.warning("held the picture for %.1f s (%d frames)", k / args.fps, k)


class Claim:
    """Which output process holds the sinks of one livetwin home: a small JSON file
    {"pid", "state": live | holding | released}. An output process takes it over when
    it starts; one that holds a dead daemon's picture sees that and lets go (a
    predecessor in "holding" state also gets SIGTERM), in two stages that it writes
    to a marker file: "picture" once it stopped sending to the shared sinks (OBS over
    UDP, the recording), "all" once it also closed its one-publisher sinks (RTMP).
    Plain files and signals only, so it works on Windows too."""

    WAIT_S = 2.0
    POLL_S = 0.002

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def write(self, state: str) -> None:
        self._write(self.path, json.dumps({"pid": os.getpid(), "state": state}))

    def _write(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def _marker(self, pid: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{pid}.released")

    def take_over(self) -> int | None:
        """Become the live output; a holding predecessor is told to let go (SIGTERM) and
        its pid returned, for `wait_released`; None when there is none."""
        prev = self.read()
        self.write("live")
        pid = prev.get("pid")
        if prev.get("state") != "holding" or not isinstance(pid, int) or pid == os.getpid():
            return None
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
        return pid

    def wait_released(self, pid: int, stage: str) -> bool:
        """Wait up to WAIT_S for the predecessor `pid` to reach `stage` ("picture" or
        "all": two muxers never write to one address at once); False on timeout."""
        marker = self._marker(pid)
        end = time.monotonic() + self.WAIT_S
        while True:
            with contextlib.suppress(OSError):
                done = marker.read_text()
                if done == "all" or done == stage:
                    if stage == "all":
                        with contextlib.suppress(OSError):
                            marker.unlink()
                    return True
            if time.monotonic() >= end:
                break
            time.sleep(self.POLL_S)
        log.warning("the previous output process %d did not let go (%s) in %.0f s", pid,
                    stage, self.WAIT_S)
        return False

    def taken(self) -> bool:
        """Whether another process has taken the claim."""
        return self.read().get("pid") not in (None, os.getpid())

    def release(self, stage: str | None) -> None:
        """Let go of the sinks; `stage` ("picture", "all"): tell a successor that may
        wait for it (`wait_released`)."""
        if stage is not None:
            with contextlib.suppress(OSError):
                self._write(self._marker(os.getpid()), stage)
        if stage != "picture" and self.read().get("pid") == os.getpid():
            self.write("released")


_NO_FRAME = np.zeros((0, 0, 3), np.uint8)  # the child gets packets, not frames
