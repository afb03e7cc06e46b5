"""Regenerate docs/img/obs.png: real OBS Studio showing the twin, for the README.

It runs what a user runs: `livetwin serve` with the embedded demo avatar (the public-domain
scikit-image astronaut portrait; never anyone's real footage) and OBS Studio loading
obs_plugin/livetwin_obs.py, headless on its own Xvfb display (tests/e2e/obs_harness.py,
docs in ../shared/design/OBS_HEADLESS.md). While the twin speaks a line it grabs the
whole OBS window (the preview with the "livetwin avatar" Media Source, the captions and
"now selling" text sources the script made, the sources and mixer docks) and writes a
downscaled PNG.

    .venv/bin/python docs/tools/obs_screenshot.py            # -> docs/img/obs.png
    .venv/bin/python docs/tools/obs_screenshot.py --out /tmp/obs.png

Needs OBS Studio and Xvfb (Debian: `make sysdeps`)."""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from PIL import Image, ImageGrab

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.e2e.obs_harness import ObsInstance, ensure_obs, free_port  # noqa: E402

LIVETWIN = Path(sys.executable).with_name("livetwin")
TOKEN = "docs-screenshot-" + "x" * 16
CATALOG = REPO / "daemon" / "livetwin" / "show" / "demo_catalog.yaml"
LINE = "Welcome back, everyone! Today the Aurora Velvet Lip Tint is on the table."
WIDTH, HEIGHT = 1280, 720  # OBS canvas and the twin's output


def click(display: str, x: int, y: int) -> None:
    """A left click at (x, y) on the X display through XTest (libXtst, an OBS dependency)."""
    x11 = ctypes.CDLL("libX11.so.6")
    xtst = ctypes.CDLL("libXtst.so.6")
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = (ctypes.c_char_p,)
    for f in (x11.XFlush, x11.XCloseDisplay):
        f.argtypes = (ctypes.c_void_p,)
    xtst.XTestFakeMotionEvent.argtypes = (
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_ulong,
    )
    xtst.XTestFakeButtonEvent.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_ulong,
    )
    dpy = x11.XOpenDisplay(display.encode())
    if not dpy:
        raise RuntimeError(f"cannot open X display {display}")
    try:
        xtst.XTestFakeMotionEvent(dpy, -1, x, y, 0)
        xtst.XTestFakeButtonEvent(dpy, 1, 1, 0)
        xtst.XTestFakeButtonEvent(dpy, 1, 0, 0)
        x11.XFlush(dpy)
    finally:
        x11.XCloseDisplay(dpy)


class WindowObs(ObsInstance):
    """ObsInstance that remembers its X display, to grab the whole window."""

    display = ""

    def _start_xvfb(self) -> str:
        self.display = super()._start_xvfb()
        return self.display


def start_daemon(work: Path, udp_port: int) -> tuple[subprocess.Popen[str], str]:
    cfg = work / "livetwin.yaml"
    cfg.write_text(
        f'render: {{size: "{WIDTH}x{HEIGHT}"}}\n'
        f'output: {{obs_url: "udp://127.0.0.1:{udp_port}?pkt_size=1316"}}\n'
        "show: {max_gap_s: 60}\n"
    )
    env = dict(os.environ, LIVETWIN_HOME=str(work / "home"), LIVETWIN_TOKEN=TOKEN)
    proc = subprocess.Popen(
        [
            str(LIVETWIN),
            "serve",
            "--config",
            str(cfg),
            "--avatar",
            "demo",
            "--catalog",
            str(CATALOG),
            "--port",
            "0",
        ],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    found: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                found.append(m.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(180) or not found:
        proc.kill()
        raise SystemExit("livetwin serve did not start")
    return proc, found[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "obs.png")
    p.add_argument("--width", type=int, default=960, help="width of the PNG written")
    args = p.parse_args()
    reason = ensure_obs()
    if reason is not None:
        raise SystemExit(reason)
    with tempfile.TemporaryDirectory(prefix="obs-shot-") as tmp:
        work = Path(tmp)
        udp = free_port()
        daemon, url = start_daemon(work, udp)
        try:
            (work / "obs").mkdir()
            settings = {
                "daemon_url": url,
                "token": TOKEN,
                "stream_url": f"udp://127.0.0.1:{udp}?overrun_nonfatal=1&fifo_size=50000",
                "caption_delay_ms": 0,
            }
            obs = WindowObs(work / "obs", settings, width=WIDTH, height=HEIGHT, fps=25)
            with obs:
                obs.screenshot("livetwin avatar", timeout=60)  # the stream is decoded
                # OBS selects the last source the script added (red handles over the
                # picture): click the grey preview margin left of the canvas to deselect
                click(obs.display, 120, 300)
                with httpx.Client(
                    base_url=url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}
                ) as http:
                    http.post("/api/say", json={"text": LINE}).raise_for_status()
                    time.sleep(2.5)  # mid-line: mouth moving, caption shown
                    shot = ImageGrab.grab(xdisplay=obs.display)
                items = obs.request("GetSceneItemList", {"sceneName": "Scene"})["sceneItems"]
                names = [i["sourceName"] for i in items]
                if len(names) != len(set(names)):  # seen once in the Sources dock
                    raise SystemExit(f"a source is in the scene twice: {names}; run again")
        finally:
            daemon.send_signal(signal.SIGINT)
            daemon.wait(30)
    box = shot.getbbox()  # the window, without the empty root window around it
    if box:
        shot = shot.crop(box)
    h = round(shot.height * args.width / shot.width)
    small = shot.convert("RGB").resize((args.width, h), Image.Resampling.LANCZOS)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    small.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB, {args.width}x{h})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
