"""The live output: a media clock pulls one frame and its audio per tick from a source,
encodes them once and hands the packets to every sink (contract: docs/live.md).

Nothing here waits on the network or on upstream work: sinks queue in their own
threads, and a late tick is produced at once with its own timestamp (video PTS = tick
index, audio PTS = samples so far), so the media timeline never drifts from the clock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from livetwin.output.encoder import EncodedTick, Encoder, EncoderSettings
from livetwin.output.pacer import (
    FLUSH,
    START_WAIT_S,
    ChildArgs,
    ChildPacer,
    HandOffStats,
    Ready,
    SinkSpec,
    hand_off_all,
    run_clock,
)
from livetwin.output.sinks import PreviewSink, Sink, SinkStats
from livetwin.runtime.clock import MediaClock, RealClock

log = logging.getLogger(__name__)

MAX_CATCHUP_S = 1.0  # later than this, re-anchor the clock instead of racing to catch up
LEAD_TICKS = 5  # ticks pulled and encoded ahead of the clock (absorbs I-frames, GC, bursts)
TICK_NICE = -10  # the tick thread's niceness where allowed (root / CAP_SYS_NICE)


class TickSource(Protocol):
    """What the output pulls from: one RGB frame and its mono int16 PCM per tick."""

    size: tuple[int, int]  # (width, height)
    fps: int
    sample_rate: int

    def tick(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(RGB uint8 frame (h, w, 3), int16 PCM of samples_in_tick(index, ...) samples);
        must return within a few milliseconds."""


def samples_in_tick(index: int, fps: int, rate: int) -> int:
    """Audio samples of tick `index`, so that ticks 0..n-1 hold round(n * rate / fps)."""
    return round((index + 1) * rate / fps) - round(index * rate / fps)


@dataclass(frozen=True)
class OutputStats:
    """A snapshot of the live output. av_offset_s = audio seconds written minus video
    seconds written; max_gap_ms is the longest time between two frame hand-offs."""

    running: bool
    fps: int
    frames: int
    late_ticks: int
    resyncs: int
    source_errors: int
    max_gap_ms: float
    av_offset_s: float
    encode_ms_mean: float
    encode_ms_max: float
    sinks: tuple[SinkStats, ...]
    long_gap_count: int = 0  # hand-off gaps over 1.5 periods
    long_gaps: tuple[tuple[int, float], ...] = ()  # the last 50 of them: (tick, ms)
    output_restarts: int = 0  # isolated output: child processes started again
    starved_ticks: int = 0  # late ticks that were not encoded yet when due

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for /api/health and `livetwin bench`)."""
        return asdict(self)


class LiveOutput:
    """Runs the tick loop in its own thread; `start()`, `stats()`, `stop()`.

    With `isolate=True` the clock and the muxing sinks (OBS, RTMP, the recording) run in
    a child process (output/pacer.py) and this process only pulls and encodes ahead;
    the preview stays here. `clock` is then not used (the child runs a real clock). If
    this process dies, the child holds the last picture for `hold_s` or until the next
    output process of the same `claim` file takes the sinks over."""

    def __init__(self, source: TickSource, sinks: Sequence[Sink],
                 clock: MediaClock | None = None, *,
                 encoder: EncoderSettings | None = None,
                 max_catchup_s: float = MAX_CATCHUP_S, lead_ticks: int = LEAD_TICKS,
                 isolate: bool = False, hold_s: float = 0.0,
                 claim: Path | None = None) -> None:
        self.source = source
        specs = [SinkSpec.of(s) for s in sinks] if isolate else [None] * len(sinks)
        self.sink_names = [s.name for s in sinks]  # here or in the isolated child
        self.sinks = [s for s, spec in zip(sinks, specs, strict=True) if spec is None]
        self._specs = tuple(spec for spec in specs if spec is not None)
        self.isolate = isolate
        self.hold_s, self.claim = hold_s, claim  # isolated: see output/pacer.py hold()
        self._pacer: ChildPacer | None = None
        self.clock = clock if clock is not None else RealClock(source.fps)
        if self.clock.fps != source.fps:
            raise ValueError(f"clock runs at {self.clock.fps} fps, source at {source.fps}")
        self.settings = encoder or EncoderSettings()
        self.max_catchup_s = max_catchup_s
        if lead_ticks < 1:
            raise ValueError("lead_ticks must be at least 1")
        self.lead_ticks = lead_ticks
        # what the source may report as "sounding now" for a tick it makes: it is pulled
        # about lead_ticks periods before its media time
        if hasattr(source, "lead_s"):
            source.lead_s = lead_ticks / source.fps
        self._ahead: queue.Queue[Ready | None] = queue.Queue(lead_ticks)
        self._producer: threading.Thread | None = None
        self._producer_error: BaseException | None = None
        self._tail: list[Ready] = []  # encoded after the stop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._encoder: Encoder | None = None
        w, h = source.size
        self._black = np.zeros((h, w, 3), np.uint8)
        self._last_frame = self._black
        self._counters = HandOffStats()
        self._source_errors = self._pending_samples = self._produced = 0
        self._enc_total = self._enc_max = 0.0

    @property
    def running(self) -> bool:
        """True while the tick thread (isolated: the producer) runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def child_pid(self) -> int | None:
        """The process id of the isolated output's child (None when not isolated)."""
        return self._pacer.pid if self._pacer is not None else None

    @property
    def preview(self) -> PreviewSink | None:
        """The preview sink, if one was given."""
        return next((s for s in self.sinks if isinstance(s, PreviewSink)), None)

    def start(self) -> None:
        """Open the encoder (errors raise here), start the sinks and the tick thread."""
        if self._thread is not None:
            raise RuntimeError("LiveOutput.start() called twice")
        src = self.source
        self._encoder = Encoder(src.size, src.fps, src.sample_rate, self.settings)
        for sink in self.sinks:
            sink.start(self._encoder.templates, src.fps)
        if self.isolate:
            t = self._encoder.templates
            self._pacer = ChildPacer(ChildArgs(
                self._specs, src.size, src.fps, src.sample_rate, self.settings,
                (bytes(t.video.codec_context.extradata or b""),
                 bytes(t.audio.codec_context.extradata or b"")),
                self.max_catchup_s, logging.getLogger().getEffectiveLevel(),
                self.hold_s, str(self.claim) if self.claim else None),
                self.lead_ticks)
            self._pacer.start(wait_s=START_WAIT_S)
            target = self._produce_isolated
        else:
            target = self._run
        self._thread = threading.Thread(target=target, name="live-output", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop ticking, flush the encoders into the sinks, close the sinks, join."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._producer is not None:
            self._producer.join(timeout)
        if self._pacer is not None:
            self._pacer.finish(self._tail, timeout)
        for sink in self.sinks:
            sink.stop(timeout)
        if self._encoder is not None:
            self._encoder.close()

    def stats(self) -> OutputStats:
        """Counters and timing of the output and of every sink."""
        fps = self.source.fps
        c, child_sinks = self._counters, ()
        if self._pacer is not None:
            report = self._pacer.report()
            c, child_sinks = report.counters, report.sinks
        n = max(1, self._produced)
        return OutputStats(
            running=self.running, fps=fps, frames=c.frames, late_ticks=c.late,
            resyncs=c.resyncs, source_errors=self._source_errors,
            max_gap_ms=c.max_gap * 1000,
            av_offset_s=c.samples / self.source.sample_rate - c.frames / fps,
            encode_ms_mean=self._enc_total / n * 1000, encode_ms_max=self._enc_max * 1000,
            sinks=tuple(child_sinks) + tuple(s.stats() for s in self.sinks),
            long_gap_count=c.long_gap_count, long_gaps=tuple(c.long_gaps),
            output_restarts=self._pacer.restarts if self._pacer is not None else 0,
            starved_ticks=c.starved)

    # -- the tick thread --------------------------------------------------------------
    def _run(self) -> None:
        # A producer thread pulls and encodes ticks up to lead_ticks ahead of the clock;
        # this thread hands each one off when it is due. A source, an encoder (an I-frame)
        # or the garbage collector that takes longer than a period once is absorbed by
        # the lead instead of delaying the output.
        raise_priority()
        self._producer = threading.Thread(target=self._produce_ahead, name="live-encode",
                                          daemon=True)
        self._producer.start()
        first = self._next_ahead()
        if first is None:  # stopped, or the producer failed, before the first tick
            return
        ready = run_clock(self.clock, first, self._next_ahead, self._hand_off, self._stop,
                          self._counters, self.max_catchup_s)
        # the ticks encoded ahead are part of the stream: hand them off before the flush
        if self._producer is not None:
            self._producer.join(5.0)
        pending = [ready] if ready is not None else []
        while True:
            try:
                item = self._ahead.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                pending.append(item)
        pending += self._tail
        for tick, samples in pending:
            self._hand_off(tick)
            self._counters.count(samples)
        assert self._encoder is not None
        last_index = pending[-1][0].index if pending else self._counters.frames - 1
        self._hand_off(EncodedTick(last_index + 1, self._last_frame,
                                   tuple(self._encoder.flush())))

    def _produce_isolated(self) -> None:
        """Isolated: pull and encode each tick, give it to the preview (and any other
        sink kept here) at once and to the child when the lead allows (output/pacer.py).
        At the stop the last ticks and the encoder's flush go into `_tail`."""
        assert self._pacer is not None and self._encoder is not None
        index = 0
        try:
            while not self._stop.is_set():
                tick = self._produce(index)
                item = (tick, self._pending_samples)
                index += 1
                self._hand_off(tick)
                if not self._pacer.put(tick, item[1], self._stop):
                    self._tail.append(item)
                    break
            flushed = EncodedTick(index, self._last_frame, tuple(self._encoder.flush()))
            self._hand_off(flushed)
            self._tail.append((flushed, FLUSH))
        except BaseException:  # an encoder failure ends the output, visibly
            log.exception("the live encoder failed at tick %d", index)

    def _next_ahead(self) -> Ready | None:
        """The next encoded tick (waiting for the producer if it fell behind)."""
        while True:
            try:
                return self._ahead.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set() or (self._producer is not None
                                           and not self._producer.is_alive()):
                    return None

    def _produce_ahead(self) -> None:
        """The producer thread: ticks 0, 1, 2 ... into the bounded queue, in order."""
        raise_priority()
        index = 0
        try:
            while not self._stop.is_set():
                item = (self._produce(index), self._pending_samples)
                index += 1
                while True:
                    try:
                        self._ahead.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        if self._stop.is_set():  # encoded, so part of the stream
                            self._tail.append(item)
                            return
        except BaseException as exc:  # an encoder failure ends the output, visibly
            self._producer_error = exc
            log.exception("the live encoder failed at tick %d", index)
            with contextlib.suppress(queue.Full):
                self._ahead.put_nowait(None)

    def _produce(self, index: int) -> EncodedTick:
        """Pull tick `index` from the source and encode it."""
        assert self._encoder is not None
        frame, pcm = self._pull(index)
        t0 = time.perf_counter()
        packets = self._encoder.encode(index, frame, pcm)
        spent = time.perf_counter() - t0
        self._produced += 1
        self._enc_total += spent
        self._enc_max = max(self._enc_max, spent)
        self._pending_samples = len(pcm)
        return EncodedTick(index, frame, tuple(packets))

    def _hand_off(self, tick: EncodedTick) -> None:
        hand_off_all(self.sinks, tick)

    def _pull(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The source's tick, or the last frame and silence when the source fails."""
        src = self.source
        want = samples_in_tick(index, src.fps, src.sample_rate)
        try:
            frame, pcm = src.tick(index)
            if frame.shape != self._black.shape or frame.dtype != np.uint8:
                raise ValueError(f"frame of shape {frame.shape} {frame.dtype}, "
                                 f"expected {self._black.shape} uint8")
        except Exception as exc:
            self._source_errors += 1
            if self._source_errors == 1 or self._source_errors % 1000 == 0:
                log.error("tick source failed at tick %d (%d times so far): %s",
                          index, self._source_errors, exc)
            return self._last_frame, np.zeros(want, np.int16)
        pcm = np.asarray(pcm, dtype=np.int16).reshape(-1)
        if len(pcm) != want:  # keep the audio timeline exact whatever the source did
            pcm = np.pad(pcm[:want], (0, max(0, want - len(pcm))))
        frame = np.ascontiguousarray(frame)
        self._last_frame = frame
        return frame, pcm


def raise_priority() -> None:
    """Lower this thread's niceness: on two busy cores the scheduler then wakes the tick
    thread on time (measured: fewer hand-off gaps over 1.5 periods). Best effort."""
    set_niceness(TICK_NICE, quiet=True)


def set_niceness(value: int, *, quiet: bool = False) -> None:
    """Set this thread's niceness (Linux: threads and processes started from it later
    inherit it). Lowering it needs root or CAP_SYS_NICE; without, it stays as it was
    (logged at debug level when `quiet`, else as a warning)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), value)
    except (AttributeError, OSError) as exc:  # not Linux, or not permitted
        (log.debug if quiet else log.warning)("niceness stays (not %d): %s", value, exc)
