"""The daemon's watchdog: one thread that looks at every part of `livetwin serve` about
once a second, says how each is doing and restarts a part whose thread died, without
touching the output (the stream goes on).

Each component (`output`, `sink:<name>`, `voice`, `llm`, `chat:<connector>`, `store`,
`memory`) has a check: a small function that reads counters the component keeps anyway
and returns a `Check` (state ok | degraded | down, a one-line detail, and whether its
thread or task is dead). A dead component with a restart function is restarted and the
restart counted. Every change of state is a health event: logged as a warning and kept
(the last `MAX_EVENTS`) for `/api/health`.

It must be cheap: it runs beside a 30 fps tick thread on two cores, so a check only
reads counters (no I/O on the sampling path but the store's `SELECT 1` every few
seconds and the LLM probe in its own thread), and nothing here takes a lock the tick
thread holds for longer than a counter read.

Graceful degradation lives in the components (the voice falls back to espeak, script
drafts fall back to templates, the director keeps the scripted show going without
chat); the watchdog makes it visible and brings the failed part back."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

OK, DEGRADED, DOWN = "ok", "degraded", "down"
STATES = (OK, DEGRADED, DOWN)
INTERVAL_S = 1.0
MAX_EVENTS = 100
# down in any of these: the stream itself is hurt (the daemon is "failing"); the rest
# only costs a feature (chat, LLM drafts), so the daemon is "degraded"
VITAL = ("output", "voice", "store")
RESTART_MIN_S = 5.0  # a component is restarted at most this often
FPS_WINDOW_S = 5.0  # the output's fps is judged over this long


@dataclass(frozen=True)
class Check:
    """One component's state now. `dead`: its thread/task ended (restart it)."""

    state: str
    detail: str = ""
    dead: bool = False


@dataclass(frozen=True)
class HealthEvent:
    """A component changed state."""

    at: float  # unix seconds
    component: str
    state: str
    previous: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": round(self.at, 3),
            "component": self.component,
            "state": self.state,
            "previous": self.previous,
            "detail": self.detail,
        }


@dataclass
class _Component:
    check: Callable[[], Check]
    restart: Callable[[], None] | None
    state: str | None = None
    detail: str = ""
    since: float = 0.0
    restarts: int = 0
    last_restart: float = float("-inf")
    down_since: float | None = None  # clock() when it went down (for escalation)
    escalated: bool = False


class Watchdog:
    """Samples its components every `interval_s` (module doc). `sample()` is one pass
    (tests call it directly); `start()`/`stop()` run it in a thread."""

    def __init__(
        self,
        *,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.interval_s = interval_s
        self.clock, self.wall = clock, wall
        self._components: dict[str, _Component] = {}
        self._events: deque[HealthEvent] = deque(maxlen=MAX_EVENTS)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0
        self.extra: dict[str, Callable[[], Any]] = {}  # more figures for the snapshot
        # component -> seconds down after which `on_escalate(name, detail)` is called once:
        # what cannot be restarted in place (the output) is left to the supervisor
        self.escalate: dict[str, float] = {}
        self.on_escalate: Callable[[str, str], None] | None = None

    def add(
        self, name: str, check: Callable[[], Check], restart: Callable[[], None] | None = None
    ) -> None:
        """Watch component `name`; `restart` brings it back when its check says dead."""
        with self._lock:
            self._components[name] = _Component(check, restart)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="livetwin-watchdog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception:  # the watchdog must outlive any check's bug
                log.exception("watchdog sample failed")

    def sample(self) -> None:
        """Check every component once; restart the dead ones; record changes."""
        with self._lock:
            items = list(self._components.items())
        for name, comp in items:
            try:
                result = comp.check()
            except Exception as exc:  # a failing check is a finding, not a crash
                result = Check(DOWN, f"check failed: {type(exc).__name__}: {exc}")
            if result.dead and comp.restart is not None:
                result = self._restart(name, comp, result)
            self._record(name, comp, result)
            self._maybe_escalate(name, comp, result)
        self.samples += 1

    def _maybe_escalate(self, name: str, comp: _Component, result: Check) -> None:
        if result.state != DOWN:
            comp.down_since, comp.escalated = None, False
            return
        now = self.clock()
        if comp.down_since is None:
            comp.down_since = now
        limit = self.escalate.get(name)
        if limit is None or comp.escalated or now - comp.down_since < limit:
            return
        comp.escalated = True
        log.error(
            "health: %s has been down for %.0f s (%s); handing over to the supervisor",
            name,
            now - comp.down_since,
            result.detail,
        )
        if self.on_escalate is not None:
            self.on_escalate(name, result.detail)

    def _restart(self, name: str, comp: _Component, result: Check) -> Check:
        now = self.clock()
        if now - comp.last_restart < RESTART_MIN_S:
            return result
        comp.last_restart = now
        comp.restarts += 1
        assert comp.restart is not None
        log.warning(
            "health: %s died (%s); restarting it (restart %d)", name, result.detail, comp.restarts
        )
        try:
            comp.restart()
        except Exception as exc:
            log.exception("health: restarting %s failed", name)
            return Check(DOWN, f"{result.detail}; restart failed: {exc}", dead=True)
        return Check(DEGRADED, f"restarted ({result.detail})")

    def _record(self, name: str, comp: _Component, result: Check) -> None:
        state = result.state if result.state in STATES else DOWN
        with self._lock:
            comp.detail = result.detail
            if state == comp.state:
                return
            previous, comp.state, comp.since = comp.state, state, self.wall()
            if previous is None and state == OK:
                return  # the first look at a healthy part is no news
            event = HealthEvent(comp.since, name, state, previous, result.detail)
            self._events.append(event)
        log.warning("health: %s %s -> %s: %s", name, previous or "(start)", state, result.detail)

    # -------------------------------------------------------------- reading

    @property
    def restarts(self) -> int:
        with self._lock:
            return sum(c.restarts for c in self._components.values())

    def state(self) -> str:
        """ok | degraded | failing (a vital component is down)."""
        with self._lock:
            states = {n: c.state for n, c in self._components.items()}
        if any(s == DOWN and n in VITAL for n, s in states.items()):
            return "failing"
        return DEGRADED if any(s in (DOWN, DEGRADED) for s in states.values()) else OK

    def events(self) -> list[HealthEvent]:
        with self._lock:
            return list(self._events)

    def snapshot(self) -> dict[str, Any]:
        """The `health` object of /api/health."""
        state = self.state()
        with self._lock:
            components = {
                n: {
                    "state": c.state or "unknown",
                    "detail": c.detail,
                    "since": round(c.since, 3),
                    "restarts": c.restarts,
                }
                for n, c in self._components.items()
            }
            events = [e.to_json() for e in self._events]
        out: dict[str, Any] = {
            "state": state,
            "components": components,
            "events": events,
            "rss_mb": round(rss_mb(), 1),
            "restarts": sum(c["restarts"] for c in components.values()),
            "samples": self.samples,
        }
        for key, fn in self.extra.items():
            try:
                out[key] = fn()
            except Exception as exc:
                out[key] = f"unavailable: {exc}"
        return out


# ------------------------------------------------------------------ figures


def rss_mb() -> float:
    """Resident memory of this process in MiB (0.0 where it cannot be read)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    if sys.platform == "win32":  # pragma: no cover - no Windows here
        return 0.0
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # peak, KiB (bytes on macOS)
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


# ------------------------------------------------------------------ checks


class OutputCheck:
    """The live output: running, frames flowing at the frame rate, no new long gaps,
    audio and video in step; an isolated output whose child was started again (the
    output restarts it by itself, output/pacer.py) is degraded for that sample.
    `stats` is `LiveOutput.stats` (an OutputStats)."""

    def __init__(
        self, stats: Callable[[], Any], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stats, self.clock = stats, clock
        self._last: tuple[float, int, int, int, int] | None = None
        # (time, frames) of recent samples: the fps is judged over FPS_WINDOW_S, since
        # an isolated output's frame count arrives in 0.25 s steps (a one-second window
        # read 19 or 31 fps of 25 and flapped the state)
        self._frames: deque[tuple[float, int]] = deque(maxlen=64)
        self.fps = 0.0

    def __call__(self) -> Check:
        s, now = self.stats(), self.clock()
        restarts = getattr(s, "output_restarts", 0)
        last = self._last
        self._last = (now, s.frames, s.long_gap_count, s.resyncs, restarts)
        if not s.running:
            return Check(DOWN, f"the output is not running ({s.frames} frames sent)")
        if last is None or now <= last[0]:
            return Check(OK, f"{s.frames} frames")
        if restarts != last[4] or s.frames < last[1]:  # counters start again in a new child
            self._frames.clear()
            return Check(
                DEGRADED, f"the output's child process was restarted ({restarts} restarts so far)"
            )
        if not self._frames:
            self._frames.append((last[0], last[1]))
        self._frames.append((now, s.frames))
        while len(self._frames) > 2 and now - self._frames[1][0] >= FPS_WINDOW_S:
            self._frames.popleft()
        t0, f0 = self._frames[0]
        self.fps = (s.frames - f0) / (now - t0)
        gaps, resyncs = s.long_gap_count - last[2], s.resyncs - last[3]
        detail = (
            f"{self.fps:.1f} fps of {s.fps}, {gaps} long gaps, max gap "
            f"{s.max_gap_ms:.0f} ms, A/V {s.av_offset_s * 1000:+.0f} ms"
        )
        if restarts:
            detail += f", {restarts} output restarts"
        if self.fps < 0.5 * s.fps or resyncs:
            return Check(DOWN if self.fps < 0.1 * s.fps else DEGRADED, detail)
        if self.fps < 0.9 * s.fps or gaps > 2 or abs(s.av_offset_s) > 0.1:
            return Check(DEGRADED, detail)
        return Check(OK, detail)


def sink_check(
    name: str,
    stats: Callable[[], Any],
    alive: Callable[[], bool],
    started: Callable[[], float],
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[], Check]:
    """One sink from its SinkStats (state starting | connected | retrying | stopped);
    dead when its thread ended while the output still runs."""

    def check() -> Check:
        s = next((x for x in stats().sinks if x.name == name), None)
        if s is None:  # an isolated output reports its child's sinks once they run
            late = clock() - started() >= 10.0
            return Check(DEGRADED if late else OK, "not reported by the output yet")
        detail = f"{s.state}, {s.connects} connects, {s.failures} failures, {s.dropped} dropped"
        if s.last_error and s.state != "connected":
            detail += f"; last error: {s.last_error}"
        if not alive():
            return Check(DOWN, f"its thread ended ({detail})", dead=True)
        if s.state == "connected":
            return Check(OK, detail)
        if s.state == "starting":
            return Check(OK if clock() - started() < 10.0 else DEGRADED, detail)
        return Check(DOWN, detail)

    return check


def sink_alive(output: Any, sink: Any) -> Callable[[], bool]:
    """Whether `sink`'s thread runs (always True while the output is stopped). The sinks
    keep it in `_thread` (output/sinks.py); a sink without one is judged by its stats."""

    def alive() -> bool:
        thread = getattr(sink, "_thread", None)
        return thread is None or thread.is_alive() or not output.running

    return alive


def sink_restarter(output: Any, sink: Any) -> Callable[[], None] | None:
    """Restart `sink` in place: a new thread on the same queue (the output keeps feeding
    it, the other sinks and the clock are untouched); None for a sink without a thread."""
    if not hasattr(sink, "_thread"):
        return None

    def restart() -> None:
        sink.start(getattr(sink, "_templates", None), output.source.fps)

    return restart


class VoiceCheck:
    """The synthesis worker and the voice: `alive()` says whether the worker thread
    runs; `health()` is FallbackTTS.health() (which backend spoke last, which fail)."""

    def __init__(
        self,
        alive: Callable[[], bool],
        health: Callable[[], Mapping[str, Any]],
        backlog: Callable[[], int],
    ) -> None:
        self.alive, self.health, self.backlog = alive, health, backlog

    def __call__(self) -> Check:
        backlog = self.backlog()
        if not self.alive():
            return Check(DOWN, f"the synthesis worker ended ({backlog} lines waiting)", dead=True)
        h = self.health()
        primary, last, failing = h.get("primary"), h.get("last_backend"), h.get("failing", {})
        where = f"last line by {last}" if last else "nothing said yet"
        detail = f"{where}; {backlog} lines waiting"
        if failing and len(failing) >= h.get("backends", 1):
            return Check(DOWN, f"every voice fails ({_failures(failing)}); {detail}")
        if primary in failing:
            return Check(
                DEGRADED,
                f"{primary} failing ({_failures(failing)}), speaking with the fallback; {detail}",
            )
        return Check(OK, detail)


def _failures(failing: Mapping[str, str]) -> str:
    return "; ".join(f"{k}: {v[:120]}" for k, v in failing.items())


class ProbeCheck:
    """A component judged by a slow probe (the LLM server): the probe runs in its own
    thread every `every_s`, never on the sampling path; the check reads its result."""

    def __init__(
        self,
        probe: Callable[[], Check],
        every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe, self.every_s, self.clock = probe, every_s, clock
        self._result = Check(OK, "not probed yet")
        self._at = float("-inf")
        self._running = False

    def __call__(self) -> Check:
        now = self.clock()
        if not self._running and now - self._at >= self.every_s:
            self._at, self._running = now, True
            threading.Thread(target=self._probe, name="livetwin-probe", daemon=True).start()
        return self._result

    def _probe(self) -> None:
        try:
            self._result = self.probe()
        except Exception as exc:
            self._result = Check(DOWN, f"probe failed: {exc}")
        finally:
            self._running = False


def chat_check(
    conn: Any,
    task_state: Callable[[], tuple[str, str]],
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[], Check]:
    """One chat connector: its task (running | failed | ended, from ChatService) and,
    for connectors that say so (Twitch's `joined`), whether it is in the channel. Down
    chat costs answers only: the scripted show goes on."""
    joined = getattr(conn, "joined", None)
    since = [clock()]

    def check() -> Check:
        state, why = task_state()
        if state == "failed":
            return Check(DOWN, f"its task failed: {why}", dead=True)
        if state == "ended":
            return Check(DOWN, f"ended: {why}" if why else "ended")
        if joined is not None and hasattr(joined, "is_set"):
            if joined.is_set():
                since[0] = clock()
                return Check(OK, f"connected ({getattr(conn, 'sessions', 0)} sessions)")
            backoff = getattr(getattr(conn, "backoff", None), "current", 0.0)
            waited = clock() - since[0]
            return Check(
                DOWN if waited > 60 else DEGRADED,
                f"reconnecting for {waited:.0f} s (backoff {backoff:.1f} s)",
            )
        return Check(
            OK,
            f"running ({getattr(conn, 'polls', 0)} polls)" if hasattr(conn, "polls") else "running",
        )

    return check


def store_check(ping: Callable[[], str], every_s: float = 5.0) -> ProbeCheck:
    """The store answers a trivial query, probed every `every_s` off the sampling path
    (a locked database must not hold up the other checks)."""

    def probe() -> Check:
        t0 = time.perf_counter()
        what = ping()
        ms = (time.perf_counter() - t0) * 1000
        return Check(OK if ms < 500 else DEGRADED, f"{what}, answered in {ms:.1f} ms")

    return ProbeCheck(probe, every_s)


def memory_check(limit_mb: float, rss: Callable[[], float] = rss_mb) -> Callable[[], Check]:
    """Resident memory against `limit_mb` (degraded above it: a leak to look at)."""

    def check() -> Check:
        mb = rss()
        return Check(
            OK if mb <= limit_mb else DEGRADED, f"RSS {mb:.0f} MiB (limit {limit_mb:.0f} MiB)"
        )

    return check
