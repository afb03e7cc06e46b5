"""`livetwin serve --supervise`: a small parent process that keeps `livetwin serve`
running, for machines without systemd (Windows, a plain shell session).

It runs the same `livetwin serve` as a child (`subprocess`, no fork tricks, so it works
on Windows) and starts it again whenever it exits abnormally: a non-zero exit code or a
signal (a crash, the OOM killer, `kill -9`). Exit code 2 means bad input (a busy port, a
bad config): starting again would fail the same way, so the supervisor exits 2 too.
SIGINT/SIGTERM (Ctrl-C) are passed to the child, which stops cleanly; the supervisor
then exits 0. The show continues where it was after a restart because its position
lives in the store (docs/reliability.md).

A new daemon spends seconds loading (torch, mediapipe, the avatar: ~7 s on a busy
two-core machine), longer than the five seconds a show may be gone. So once the child
has run `STANDBY_AFTER_S`, the supervisor starts a spare (`standby_command`: `serve
--standby`) that loads everything and waits on its stdin without binding the port; when
the child dies the spare is told "go" and takes over at once (it binds the port and
reads the current catalog and show position then). A new spare follows once the new
child has run `STANDBY_AFTER_S` again, so a daemon that crashes at start-up is not
replaced by spares in a loop: without a spare the child is started cold, the first time
after `FIRST_DELAY_S`, waiting longer each time it keeps crashing (doubling up to
`MAX_DELAY_S`); a child that ran `HEALTHY_S` resets the wait."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 30.0
HEALTHY_S = 60.0
STANDBY_AFTER_S = 20.0  # a spare starts loading once the child ran this long
STOP_WAIT_S = 15.0  # for the child to stop after a forwarded signal, then it is killed
POLL_S = 0.2
INPUT_ERROR = 2


def next_delay(previous: float | None, ran_s: float) -> float:
    """Seconds to wait before the next cold start, after a child that ran `ran_s` and a
    previous wait of `previous` (None: the first crash)."""
    if previous is None or ran_s >= HEALTHY_S:
        return FIRST_DELAY_S
    return min(MAX_DELAY_S, previous * 2)


class Supervisor:
    """Runs `command` until it stops cleanly, with a spare from `standby_command` when
    given (module doc). `say` prints one status line (stderr by default)."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        standby_command: Sequence[str] | None = None,
        standby_after_s: float = STANDBY_AFTER_S,
        say: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.command = list(command)
        self.standby_command = list(standby_command) if standby_command else None
        self.standby_after_s = standby_after_s
        self.say = say or (
            lambda text: print(f"livetwin supervise: {text}", file=sys.stderr, flush=True)
        )
        self.clock = clock
        self.restarts = 0
        self.takeovers = 0  # restarts done by a spare
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._spare: subprocess.Popen[bytes] | None = None
        self._spare_started = float("-inf")

    def run(self) -> int:
        """Start, watch and restart the child; the exit code for the supervisor."""
        old = self._install_signals()
        try:
            return self._loop()
        finally:
            self._dismiss_spare()
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _loop(self) -> int:
        delay: float | None = None
        child = subprocess.Popen(self.command, env=self._env())
        while True:
            self._child = child
            started = self.clock()
            code = self._wait(child, started)
            ran = self.clock() - started
            if self._stop.is_set():
                self.say(f"stopped (the child exited with {describe(code)})")
                return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT, 130) else code
            if code == 0:
                self.say("the daemon stopped cleanly; not restarting")
                return 0
            if code == INPUT_ERROR:
                self.say("the daemon refused its input (exit 2); fix it and start again")
                return INPUT_ERROR
            self.restarts += 1
            spare = self._take_spare()
            if spare is not None:
                self.takeovers += 1
                self.say(
                    f"the daemon exited with {describe(code)} after {ran:.1f} s; restart "
                    f"{self.restarts}: the spare takes over"
                )
                child = spare
                continue
            delay = next_delay(delay, ran)
            self.say(
                f"the daemon exited with {describe(code)} after {ran:.1f} s; restart "
                f"{self.restarts} in {delay:.1f} s"
            )
            if self._stop.wait(delay):
                self.say("stopped")
                return 0
            child = subprocess.Popen(self.command, env=self._env())

    def _wait(self, child: subprocess.Popen[bytes], started: float) -> int:
        """The child's exit code; meanwhile start a spare when it is due; after a stop
        request, kill the child if it lingers past STOP_WAIT_S."""
        stop_by: float | None = None
        while True:
            try:
                return child.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                pass
            if self._stop.is_set():
                stop_by = stop_by if stop_by is not None else self.clock() + STOP_WAIT_S
                if self.clock() >= stop_by:
                    self.say(f"the daemon did not stop within {STOP_WAIT_S:g} s; killing it")
                    child.kill()
                    return child.wait()
            elif self.clock() - started >= self.standby_after_s:
                self._keep_spare()

    def _env(self) -> dict[str, str]:
        # the daemon hands a dead output over to us (exits 1) only when supervised
        return {**os.environ, "LIVETWIN_SUPERVISED": "1"}

    # -------------------------------------------------------------- the spare

    def _keep_spare(self) -> None:
        """Start a spare if there is none (or the last one died)."""
        if self.standby_command is None or self._stop.is_set():
            return
        spare = self._spare
        if spare is not None and spare.poll() is None:
            return
        now = self.clock()
        if spare is not None and now - self._spare_started < HEALTHY_S:
            return  # a spare that dies while loading is not restarted in a tight loop
        if spare is not None:
            self.say(f"the spare exited with {describe(spare.returncode)}; starting another")
        self._spare_started = now
        self._spare = subprocess.Popen(self.standby_command, stdin=subprocess.PIPE, env=self._env())

    def _take_spare(self) -> subprocess.Popen[bytes] | None:
        """The spare, told to take over; None when there is none alive."""
        spare, self._spare = self._spare, None
        if spare is None or spare.poll() is not None or spare.stdin is None:
            return None
        try:
            spare.stdin.write(b"go\n")
            spare.stdin.flush()
            spare.stdin.close()
        except OSError:  # it died just now
            spare.kill()
            spare.wait()
            return None
        return spare

    def _dismiss_spare(self) -> None:
        """End the spare (it holds no port and writes nothing while it waits)."""
        spare, self._spare = self._spare, None
        if spare is None:
            return
        if spare.poll() is None:
            spare.kill()
        spare.wait()
        if spare.stdin is not None:
            spare.stdin.close()

    # -------------------------------------------------------------- signals

    def stop(self) -> None:
        """Ask the child to stop and do not start another."""
        self._stop.set()
        child = self._child
        if child is not None and child.poll() is None:
            if sys.platform == "win32":  # pragma: no cover - no Windows here
                child.terminate()
            else:
                child.send_signal(signal.SIGTERM)

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop()

        sigs = [signal.SIGINT, signal.SIGTERM]
        return {s: signal.signal(s, handler) for s in sigs}


def describe(code: int) -> str:
    """'code 1', or 'signal SIGKILL' for a negative (POSIX) return code."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def child_command(serve_args: Sequence[str]) -> list[str]:
    """The command that runs `livetwin <serve_args>` with this interpreter."""
    return [sys.executable, "-m", "livetwin.cli", *serve_args]
