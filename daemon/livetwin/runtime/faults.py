"""The fault table of issue 11 (`livetwin bench --json --only faults`): faults injected
into a real `livetwin serve --supervise` (plain `serve` where the supervisor is missing;
demo avatar with an approved template show, MPEG-TS over UDP to a local receiver, an
RTMP push to a local nginx-rtmp, a recording on a small tmpfs, Twitch chat from a local
ngircd, and an HTTP voice and an OpenAI-compatible LLM that are local servers whose
behaviour can be switched), each measured from outside as a viewer and an operator
would see it. The last scenario kills the daemon with SIGKILL mid-line.

One rig (`FaultRig`, runtime/fault_rig.py) holds the daemon and every peer
(runtime/fault_peers.py); each scenario here is one function that takes the rig, injects
one fault, clears it and returns a `FaultRow`:
- what the viewer saw: the longest gap between video packets at the UDP receiver and
  between frame hand-offs in the daemon's own output stats (ms and frame periods), the
  longest stretch without speech while the fault lasted, and whether every tick still
  produced a frame (`frames` against the ticks due in the window);
- which fallback took over (espeak for the voice, templates for the LLM, the scripted
  show while chat is gone, the other sinks while one is down);
- recovery time, with what it is measured from (`recovery_from`);
- whether the store survived (`PRAGMA integrity_check`, approvals and transcript kept).

The figures are reported, not asserted tightly (tests/faults asserts the behaviour with
generous bounds). The system-clock jump runs in process (`clock_jump_row`): changing the
machine's clock would disturb everything else on it, so `time.time` is shifted by hours
inside a process whose live output runs on its real clock and sinks.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from livetwin.runtime.benchmark import _free_port, _Receiver
from livetwin.runtime.fault_peers import Viewer, VoiceServer
from livetwin.runtime.fault_rig import (
    FPS,
    SIZE,
    TARGET_GAP_FRAMES,
    TARGET_RECOVERY_S,
    FaultRig,
    FaultRow,
    longest_silence,
    measured,
    store_kept,
    wait_until,
)

VOICE_FAILED = "TTS http failed"  # FallbackTTS's warning when the HTTP voice fails


# -- scenarios ----------------------------------------------------------------------------
def wait_voice_normal(rig: FaultRig, timeout: float = 45.0) -> float | None:
    """Seconds until the HTTP voice speaks a line again (after its `tts.retry_after_s`
    following a failure), None on timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        text = f"The voice check {_nonce(rig.voice)} is on air."
        rig.say(text)
        if rig.wait_spoken(text, 20.0) and rig.voice.served(text):
            return round(time.monotonic() - t0, 2)
    return None


WORDS = (
    "alpha",
    "bravo",
    "delta",
    "echo",
    "golf",
    "hotel",
    "india",
    "kilo",
    "lima",
    "mike",
    "oscar",
    "papa",
    "romeo",
    "sierra",
    "tango",
    "victor",
    "whisky",
    "zulu",
)


def _nonce(voice: VoiceServer) -> str:
    """Two words not used before in this run (no digits: a voice gets those spelled)."""
    voice.checks += 1
    a, b = divmod(voice.checks, len(WORDS))
    return f"{WORDS[a % len(WORDS)]} {WORDS[b]}"


def tts_fault(rig: FaultRig, kind: str) -> FaultRow:
    """The voice-cloning TTS hangs, crashes (its server is gone) or returns garbage or a
    truncated WAV: the line is spoken by espeak. recovery = the line was asked for ->
    it started sounding (the voice's timeout and the line in front included)."""
    row = FaultRow(f"tts_{kind}", "espeak", None, "line asked for -> fallback speaking")
    row.detail["voice_normal_before_s"] = wait_voice_normal(rig)
    text = f"Here is the {kind} check {_nonce(rig.voice)}."
    failed0 = rig.log_count(VOICE_FAILED)
    with measured(rig, row):
        if kind == "crash":
            rig.voice.stop()
        else:
            rig.voice.mode = kind
        try:
            t0 = time.time()
            rig.say(text)
            entry = rig.wait_spoken(text, 40.0)
            if entry is not None:
                row.recovery_s = round(entry["at"] - t0, 2)
            row.detail["spoken"] = entry is not None
            row.detail["spoken_by_voice"] = rig.voice.served(text) > 0
            # the voice still hangs or is gone here, so it stays failing while we look
            row.detail["health_voice"] = rig.component_after_fault("voice")
        finally:
            if kind == "crash":
                rig.voice.start()
            rig.voice.mode = "ok"
            rig.voice.release.set()
    row.detail["voice_failures_logged"] = rig.log_count(VOICE_FAILED) - failed0
    return row


def llm_timeout(rig: FaultRig) -> FaultRow:
    """The LLM never answers: a script draft still comes, from the templates.
    recovery = the draft was asked for -> it arrived."""
    row = FaultRow("llm_timeout", "templates", None, "draft asked for -> template draft")
    products = rig.client.get("/api/products").json()
    pid = products[0]["id"]
    rig.llm.delay_s = None  # hang
    with measured(rig, row):
        t0 = time.monotonic()
        r = rig.client.post("/api/scripts/generate", json={"product_id": pid}, timeout=60)
        row.recovery_s = round(time.monotonic() - t0, 2)
        body = r.json()
        row.detail.update(
            status=r.status_code,
            origin=body.get("origin"),
            note=str(body.get("note", ""))[:200],
            lines=len(body.get("lines", [])),
            llm_requests=len(rig.llm.received),
        )
        rig.llm.release.set()
    return row


def chat_drops(rig: FaultRig, drops: int = 3, down_s: float = 1.0) -> FaultRow:
    """The IRC server goes away `drops` times: the connector reconnects each time and the
    scripted show goes on meanwhile. recovery = the server is back -> a viewer's message
    reaches the daemon (the worst of the drops)."""
    row = FaultRow(
        "chat_drops", "scripted show", None, "chat server back -> a viewer's message arrives"
    )
    if rig.irc is None:
        row.detail["skipped"] = "ngircd is not installed"
        return row
    irc = rig.irc
    viewer = Viewer(irc.port)
    times: list[float | None] = []
    with measured(rig, row):
        wall0 = time.time()
        try:
            for k in range(drops):
                irc.stop()
                viewer.close()
                time.sleep(down_s)
                irc.start()
                t_back = time.monotonic()
                viewer.connect()
                times.append(_until_chat_arrives(rig, viewer, f"drop {k}", 30.0, t_back))
        finally:
            viewer.close()
            if irc.proc is None or irc.proc.poll() is not None:
                irc.start()
        spoken = [e for e in rig.transcript() if e["at"] > wall0]
    row.recovery_s = max((t for t in times if t is not None), default=None)
    row.detail.update(
        recoveries_s=times,
        lines_during=len(spoken),
        script_lines_during=sum(e["source"] == "script" for e in spoken),
    )
    return row


def _until_chat_arrives(
    rig: FaultRig, viewer: Viewer, tag: str, timeout: float, since: float
) -> float | None:
    """Say numbered lines until the daemon's chat decisions grow; seconds since `since`."""
    seen = {d["chat_id"] for d in rig.client.get("/api/chat/decisions").json()}
    n = 0
    while time.monotonic() - since < timeout:
        n += 1
        viewer.say(f"hello from {tag} number {n}")
        time.sleep(0.25)
        now = {d["chat_id"] for d in rig.client.get("/api/chat/decisions").json()}
        if now - seen:
            return round(time.monotonic() - since, 2)
    return None


def obs_receiver_gone(rig: FaultRig, gone_s: float = 3.0) -> FaultRow:
    """The OBS receiver closes its UDP port and comes back: the daemon never stalls and
    frames arrive again. recovery = the receiver listens again -> first video packet."""
    row = FaultRow(
        "obs_receiver_gone", "none needed (UDP)", None, "receiver back -> first frame received"
    )
    with measured(rig, row):
        rig.stop_receiver()
        obs0 = rig.sink("obs")
        time.sleep(gone_s)
        t_back = time.monotonic()
        rig.start_receiver()
        assert rig.receiver is not None
        while time.monotonic() - t_back < 20 and not rig.receiver.arrivals:
            time.sleep(0.02)
        if rig.receiver.arrivals:
            row.recovery_s = round(rig.receiver.arrivals[0] - t_back, 2)
        time.sleep(2.0)  # the receiver's view of the stream once it is back
        obs1 = rig.sink("obs")
    row.detail.update(
        obs_failures=obs1.get("failures", 0) - obs0.get("failures", 0),
        obs_state=obs1.get("state"),
        obs_dropped=obs1.get("dropped", 0) - obs0.get("dropped", 0),
    )
    return row


def rtmp_restart(rig: FaultRig, down_s: float = 2.0) -> FaultRow:
    """The RTMP server dies and starts again: the RTMP sink reconnects by itself while the
    other sinks go on. recovery = server back -> the sink is connected again."""
    row = FaultRow("rtmp_restart", "other sinks go on", None, "RTMP server back -> sink connected")
    if rig.nginx is None:
        row.detail["skipped"] = "nginx with the RTMP module is not installed"
        return row
    wait_until(lambda: rig.sink("rtmp").get("state") == "connected", 20)
    with measured(rig, row):
        c0 = rig.sink("rtmp").get("connects", 0)
        rig.nginx.stop()
        try:
            wait_until(lambda: rig.sink("rtmp").get("state") == "retrying", 10)
            time.sleep(down_s)
        finally:
            rig.nginx.start()
        t_back = time.monotonic()
        if wait_until(lambda: rig.sink("rtmp").get("connects", 0) > c0, 30):
            row.recovery_s = round(time.monotonic() - t_back, 2)
        row.detail["rtmp"] = rig.sink("rtmp")
        row.detail["obs_failures"] = rig.sink("obs").get("failures")
    return row


def disk_full(rig: FaultRig) -> FaultRow:
    """The recording's disk fills up: the stream to OBS goes on, the daemon reports the
    recording stopped, and once space is free it records again. recovery = space freed
    -> the file sink connected again."""
    row = FaultRow(
        "disk_full", "stream goes on, recording stopped", None, "space freed -> recording again"
    )
    if not rig.record_fs:
        row.detail["skipped"] = "needs root to mount a small tmpfs for the recording"
        return row
    filler = rig.record_dir / "filler.bin"
    wait_until(lambda: rig.sink("file").get("state") == "connected", 20)
    with measured(rig, row):
        f0 = rig.sink("file")
        try:
            _fill(filler)
            t_full = time.monotonic()
            stopped = wait_until(
                lambda: rig.sink("file").get("failures", 0) > f0.get("failures", 0), 30
            )
            row.detail["noticed_s"] = round(time.monotonic() - t_full, 2) if stopped else None
            row.detail["while_full"] = rig.sink("file")
            row.detail["health_while_full"] = (rig.component_after_fault("sink:file")
                                               or rig.component_error)
        finally:
            filler.unlink(missing_ok=True)
        t_free = time.monotonic()
        c1 = rig.sink("file").get("connects", 0)
        if wait_until(lambda: rig.sink("file").get("connects", 0) > c1, 30):
            row.recovery_s = round(time.monotonic() - t_free, 2)
        row.detail["alive"] = rig.proc is not None and rig.proc.poll() is None
        row.detail["empty_files"] = sum(
            1 for f in rig.record_dir.glob("*.mp4") if f.stat().st_size == 0
        )
        row.detail["obs_failures"] = rig.sink("obs").get("failures")
    return row


def sigkill_mid_line(rig: FaultRig) -> FaultRow:
    """`kill -9` of the daemon while a line is sounding, under `serve --supervise`: the
    supervisor starts it again, frames flow again and the show goes on; the store passes
    its integrity check and keeps its approvals. recovery = the kill -> the new daemon's
    output is running (frames rising at /api/health). The viewer's gap is the whole
    outage: OBS holds the last frame meanwhile. An operator line typed just before the
    kill is said by the new daemon."""
    row = FaultRow(
        "sigkill_mid_line",
        "supervisor restarts the daemon",
        None,
        "kill -9 -> frames flowing again",
    )
    if "--supervise" not in rig.command:
        row.detail["skipped"] = "livetwin serve --supervise is not available"
        return row
    wait_until(lambda: bool(rig.health()["live"].get("speaking")), 30)
    store0 = rig.store_check()
    pid = rig.child_pid()
    if pid is None:
        row.detail["skipped"] = "could not find the supervised daemon's pid"
        return row
    # an operator line typed just before the kill waits behind the line sounding: the
    # new daemon says it (runtime/kept_lines.py)
    typed = f"The operator line {_nonce(rig.voice)} is kept."
    rig.say(typed)
    t0, wall0 = time.monotonic(), time.time()
    row.detail["speaking_when_killed"] = bool(rig.health()["live"].get("speaking"))
    last_frame = rig.receiver.arrivals[-1] if rig.receiver and rig.receiver.arrivals else t0
    os.kill(pid, 9)
    row.recovery_s = round(rig.wait_api(60.0), 2)
    t_up = time.monotonic()
    row.detail["new_pid"] = rig.child_pid()
    if rig.receiver is not None and rig.receiver.error:  # it gave up during the outage,
        rig.start_receiver()  # as a player without reconnect would: start another
    # the show goes on: a new line starts sounding in the new daemon (line ids restart
    # with every run, so new lines are told by their start time)
    row.detail["show_resumed_s"] = row.detail["operator_line_said_s"] = None
    deadline = t_up + 40
    while time.monotonic() < deadline:
        new = [e for e in rig.transcript() if e["at"] > wall0]
        if new and row.detail["show_resumed_s"] is None:
            row.detail["show_resumed_s"] = round(time.monotonic() - t0, 2)
            row.detail["first_line_after"] = {k: new[0][k] for k in ("text", "source")}
        if any(e["text"] == typed for e in new):
            row.detail["operator_line_said_s"] = round(time.monotonic() - t0, 2)
            break
        time.sleep(0.3)
    time.sleep(1.0)
    t1 = time.monotonic()
    h = rig.health()["output"]
    row.seconds = round(t1 - t0, 2)
    row.frames, row.ticks_due = int(h["frames"]), round((t1 - t_up) * FPS)
    row.late_ticks, row.resyncs = int(h["late_ticks"]), int(h["resyncs"])
    if rig.receiver is not None:
        at = [last_frame, *(a for a in rig.receiver.arrivals if a >= t0)]
        rg = [b - a for a, b in itertools.pairwise(at)]
        if rg:  # the outage: the last frame before the kill -> the first one after
            row.receiver_max_gap_ms = round(max(rg) * 1000, 1)
            row.receiver_max_gap_frames = round(max(rg) * FPS, 2)
        row.detail["frames_received_after"] = len(at) - 1
        row.detail["receiver_error"] = rig.receiver.error
    row.silence_s = longest_silence([x for x in rig.samples if t0 <= x.at <= t1])
    store1 = rig.store_check()
    row.store_ok = store_kept(store0, store1)
    row.detail.update(store_before=store0, store=store1)
    return row


def _fill(path: Path) -> None:
    """Write zeros into `path` until the disk is full."""
    with contextlib.suppress(OSError), path.open("wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()


# -- the clock jump, in process -------------------------------------------------------------
class _GreySource:
    """A flat frame and silence per tick (the output's contract, nothing more)."""

    size, fps, sample_rate = (320, 180), FPS, 48000

    def tick(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        from livetwin.output.live import samples_in_tick

        frame = np.full((180, 320, 3), index % 200, np.uint8)
        return frame, np.zeros(samples_in_tick(index, FPS, self.sample_rate), np.int16)


def clock_jump_row(jump_s: float = 3 * 3600.0, seconds: float = 6.0) -> FaultRow:
    """The wall clock jumps by `jump_s` (forward, then back) mid-run while a LiveOutput
    sends MPEG-TS over UDP to a receiver: the media clock runs on monotonic time, so
    frames keep their pace. In process: `time.time` is shifted (module doc)."""
    from livetwin.output.live import LiveOutput
    from livetwin.output.sinks import UdpTsSink

    row = FaultRow(
        "clock_jump", "none needed (monotonic clock)", None, "not applicable: nothing to recover"
    )
    port = _free_port(socket.SOCK_DGRAM)
    receiver = _Receiver(port)
    receiver.start()
    out = LiveOutput(_GreySource(), [UdpTsSink(f"udp://127.0.0.1:{port}?pkt_size=1316")])
    real_time = time.time
    offset = [0.0]
    time.time = lambda: real_time() + offset[0]  # what a clock change does to wall time
    try:
        out.start()
        time.sleep(seconds / 3)
        s0, t0 = out.stats(), time.monotonic()
        offset[0] = jump_s
        time.sleep(seconds / 3)
        offset[0] = -jump_s
        time.sleep(seconds / 3)
        s1, t1 = out.stats(), time.monotonic()
        time.sleep(0.3)  # the last packets reach the receiver
    finally:
        time.time = real_time
        out.stop()
        receiver.stop()
    row.seconds = round(t1 - t0, 2)
    row.frames, row.ticks_due = s1.frames - s0.frames, round(row.seconds * FPS)
    row.late_ticks, row.resyncs = s1.late_ticks - s0.late_ticks, s1.resyncs - s0.resyncs
    gaps = [ms for tick, ms in s1.long_gaps if tick >= s0.frames]
    if gaps:
        row.daemon_max_gap_ms = max(gaps)
        row.daemon_max_gap_frames = round(max(gaps) * FPS / 1000, 2)
    rg = [b - a for a, b in itertools.pairwise(a for a in receiver.arrivals if t0 <= a <= t1)]
    if rg:
        row.receiver_max_gap_ms = round(max(rg) * 1000, 1)
        row.receiver_max_gap_frames = round(max(rg) * FPS, 2)
    row.detail.update(
        jump_s=jump_s,
        in_process=True,
        receiver_error=receiver.error,
        received_after_jump=len([a for a in receiver.arrivals if t0 <= a <= t1]),
    )
    return row


# -- the table ------------------------------------------------------------------------------
SCENARIOS: tuple[tuple[str, Callable[[FaultRig], FaultRow]], ...] = (
    ("tts_hang", lambda r: tts_fault(r, "hang")),
    ("llm_timeout", llm_timeout),
    ("obs_receiver_gone", obs_receiver_gone),
    ("tts_crash", lambda r: tts_fault(r, "crash")),
    ("chat_drops", chat_drops),
    ("tts_garbage", lambda r: tts_fault(r, "garbage")),
    ("rtmp_restart", rtmp_restart),
    ("tts_truncated", lambda r: tts_fault(r, "truncated")),
    ("disk_full", disk_full),
    ("sigkill_mid_line", sigkill_mid_line),
)


def fault_figures(log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every scenario against one daemon, then the clock jump: the fault table."""
    rows: list[FaultRow] = []
    with tempfile.TemporaryDirectory(prefix="livetwin-faults-") as tmp, FaultRig(Path(tmp)) as rig:
        for name, scenario in SCENARIOS:
            try:
                rows.append(scenario(rig))
            except Exception as exc:  # one broken scenario must not hide the others
                rows.append(
                    FaultRow(name, "?", None, "", detail={"error": f"{type(exc).__name__}: {exc}"})
                )
            if log:
                log(_describe(rows[-1]))
    rows.append(clock_jump_row())
    if log:
        log(_describe(rows[-1]))
    return {
        "fps": FPS,
        "size": SIZE,
        "targets": {"max_gap_frames": TARGET_GAP_FRAMES, "recovery_s": TARGET_RECOVERY_S},
        "rows": [r.as_dict() for r in rows],
    }


def _describe(row: FaultRow) -> str:
    return (
        f"fault {row.fault}: gap {row.receiver_max_gap_frames} frames at the receiver "
        f"({row.daemon_max_gap_frames} in the daemon), silence {row.silence_s} s, "
        f"{row.fallback}, recovery {row.recovery_s} s ({row.recovery_from})"
    )
