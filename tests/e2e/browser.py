"""The browser harness of the dashboard tests: a real headless Chromium from the Debian
package (`chromium`, Makefile SYS_PKGS) driven by Playwright, and a real `livetwin serve`
subprocess to point it at.

Playwright's own browser download needs the internet, so the harness launches the
system Chromium by path. Where it is missing and this is root with apt-get (CI), it is
installed; in CI a missing browser fails the test, elsewhere it skips with the reason."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

LIVETWIN = Path(sys.executable).with_name("livetwin")
READY = re.compile(r"listening on (http://\S+)")
BROWSERS = ("chromium", "chromium-browser")
LAPTOP = {"width": 1366, "height": 768}
TABLET = {"width": 820, "height": 1180}


def chromium_path() -> str | None:
    """The system Chromium, installed with apt-get when missing and root (CI)."""
    found = next((p for b in BROWSERS if (p := shutil.which(b))), None)
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        subprocess.run(cmd, env=env, capture_output=True, timeout=900, check=False)
    return shutil.which("chromium")


def require_chromium() -> str:
    path = chromium_path()
    if path is None:  # never a skip: these tests need no ../shared, only the browser
        pytest.fail("no Chromium: install the Debian package `chromium` (make sysdeps "
                    "does, as root)")
    return path


def launch(playwright: Any, executable: str) -> Any:
    """Headless Chromium; no sandbox when root (Chromium refuses to start sandboxed)."""
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    return playwright.chromium.launch(executable_path=executable, headless=True, args=args)


class Served:
    """`livetwin serve` (demo avatar, a catalog, no OBS sink) in a subprocess."""

    def __init__(self, home: Path, token: str, catalog: dict[str, Any],
                 config: dict[str, Any]) -> None:
        home.mkdir(parents=True, exist_ok=True)
        cfg, cat = home / "livetwin.yaml", home / "catalog.yaml"
        cfg.write_text(yaml.safe_dump(config), encoding="utf-8")
        cat.write_text(yaml.safe_dump(catalog), encoding="utf-8")
        self.home, self.token = home, token
        self.command = [str(LIVETWIN), "serve", "--config", str(cfg), "--avatar", "demo",
                        "--catalog", str(cat)]
        self.url = ""
        self._start("0")
        self.http = httpx.Client(base_url=self.url, timeout=10,
                                 headers={"Authorization": f"Bearer {token}"})

    def _start(self, port: str) -> None:
        env = dict(os.environ, LIVETWIN_HOME=str(self.home / "home"),
                   LIVETWIN_TOKEN=self.token)
        self.proc = subprocess.Popen(
            [*self.command, "--port", port], cwd=self.home, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        self.url = ""
        ready = threading.Event()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                if not self.url and (m := READY.search(line)):
                    self.url = m.group(1)
                    ready.set()
            ready.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        if not ready.wait(240) or not self.url:
            self.stop()
            raise RuntimeError("livetwin serve did not start:\n" + "".join(self.output))

    def start_again(self) -> None:
        """After stop(): start the daemon again on the same port with the same home (its
        store keeps the catalog and scripts; what it held in memory is gone)."""
        url = self.url
        self._start(url.rsplit(":", 1)[1])
        assert self.url == url, (self.url, url)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._pump.join(5)  # reads to EOF, then the pipe can be closed
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def serve(home: Path, token: str, catalog: dict[str, Any],
          config: dict[str, Any]) -> Iterator[Served]:
    """A running daemon for a fixture; stopped (SIGTERM) afterwards."""
    served = Served(home, token, catalog, config)
    try:
        yield served
    finally:
        served.http.close()
        served.stop()


def wait_until(pred: Any, timeout: float, what: str) -> Any:
    """Poll `pred` until it returns something truthy (returned); AssertionError after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := pred():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
