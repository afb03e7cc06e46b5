"""`make demo` in a fresh copy of the repository, run in the background (test_make_demo).

The files git knows are copied into an empty directory and `make demo MINUTES=...` runs
there with nothing set up: it creates its own .venv (from the machine's pip cache, as a
newcomer's second try would) and then plays the demo show in real time. That takes about
two minutes of mostly waiting, so the root conftest starts it when collection ends and
runs the unit tests beside it (they assert no timings); the test then waits for it and
checks what it left."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
MINUTES = 1.0
NODE_ID = "tests/e2e/test_make_demo.py::test_make_demo_from_a_fresh_copy"
DEADLINE_S = 20 * 60


def copy_checkout(dst: Path) -> None:
    """The files a fresh clone would have (tracked, plus new files git does not ignore)."""
    names = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)


@dataclass
class DemoRun:
    """One `make demo` in `base`/livetwin with LIVETWIN_HOME `base`/home; a thread reads
    its output, finds the dashboard address and times the first spoken line."""

    base: Path
    out: list[str] = field(default_factory=list)
    url: list[str] = field(default_factory=list)  # [address, token] once printed
    first_line_s: float | None = None
    total_s: float | None = None
    returncode: int | None = None
    error: str | None = None  # why it could not start
    _proc: subprocess.Popen[str] | None = None
    _thread: threading.Thread | None = None

    @property
    def repo(self) -> Path:
        return self.base / "livetwin"

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def log(self) -> str:
        return "".join(self.out)

    def start(self) -> DemoRun:
        if shutil.which("make") is None:
            self.error = "make is not installed; install it (Debian: apt-get install make)"
            return self
        self.repo.mkdir(parents=True)
        copy_checkout(self.repo)
        if (self.repo / ".venv").exists():
            self.error = f"the fresh copy in {self.repo} already has a .venv"
            return self
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "LIVETWIN_"))
        }
        env["LIVETWIN_HOME"] = str(self.home)
        env["PATH"] = ":".join(
            p for p in env.get("PATH", "").split(":") if not p.startswith(str(ROOT / ".venv"))
        )
        self._proc = subprocess.Popen(
            ["make", "demo", f"MINUTES={MINUTES:g}"],
            cwd=self.repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # stop() ends make and the daemon it started
        )
        self._thread = threading.Thread(target=self._watch, daemon=True, name="make-demo")
        self._thread.start()
        return self

    def _watch(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        t0 = time.monotonic()
        reader = threading.Thread(target=self._pump, args=(proc,), daemon=True)
        reader.start()
        while proc.poll() is None and time.monotonic() - t0 < DEADLINE_S:
            if self.url and self.first_line_s is None:
                try:
                    lines = httpx.get(
                        f"{self.url[0]}/api/transcript",
                        timeout=2,
                        headers={"Authorization": f"Bearer {self.url[1]}"},
                    ).json()
                except httpx.HTTPError:
                    lines = []
                if lines:
                    self.first_line_s = time.monotonic() - t0
            time.sleep(0.5)
        if proc.poll() is None:
            self.out.append(f"\n[make demo did not end within {DEADLINE_S} s]\n")
            self.stop()
        reader.join(5)
        proc.stdout.close()
        self.total_s = time.monotonic() - t0
        self.returncode = proc.wait()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.out.append(line)
            m = re.search(r"dashboard (http://\S+)/\?token=(\S+)", line)
            if m:
                self.url[:] = [m.group(1), m.group(2)]

    def wait(self) -> DemoRun:
        if self._thread is not None:
            self._thread.join(DEADLINE_S + 30)
        return self

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):  # it may end meanwhile
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)

    def remove(self) -> None:
        """Stop it if it still runs and delete the copy (its .venv takes gigabytes)."""
        self.stop()
        if self._thread is not None:
            self._thread.join(30)
        shutil.rmtree(self.base, ignore_errors=True)


def start_demo_run() -> DemoRun:
    return DemoRun(Path(tempfile.mkdtemp(prefix="livetwin-make-demo-"))).start()
