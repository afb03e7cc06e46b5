"""Real OBS Studio, headless, for end-to-end tests (see ../shared/design/OBS_HEADLESS.md).

`ensure_obs()` installs OBS and Xvfb when missing (root with apt-get only); `ObsInstance`
seeds an isolated OBS configuration (its own HOME) that loads obs_plugin/livetwin_obs.py
with the given settings, starts OBS on its own Xvfb display, connects obs-websocket, and
closes OBS the way a window manager's close button does (the clean way: script_unload
runs and the collection is saved).

Not with SIGINT, as OBS_HEADLESS.md suggests: OBS 29.0's SIGINT handler closes the main
window inside the signal handler. When the signal lands while the main thread is in
libxcb (writing to the X socket), the close asks libxcb for the lock that same thread
holds, and OBS hangs for good (gdb: QWidgetPrivate::close_helper above "<signal handler
called>" above writev, in xcb_take_socket). Seen in CI and 1 in 12 local runs under load.
A WM_DELETE_WINDOW client message reaches the same closeEvent from the event loop. In one
CI run OBS dropped that message (no shutdown began; its main thread sat idle in the event
loop), so when OBS has not begun to shut down CLOSE_NOTICED_S after it, `stop` sends
SIGINT after all and says so in `closed_by`; the windows on the display at each step go
into `crash_report`.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "obs_plugin" / "livetwin_obs.py"
# gdb: a backtrace from OBS's core file when OBS dies of a signal (see `crash_report`)
APT_PACKAGES = ("obs-studio", "xvfb", "xauth", "libgl1-mesa-dri", "libglx-mesa0",
                "libegl-mesa0", "gdb")
# OBS logs this line when its main window accepts the close (closeEvent); within this
# many seconds of the close request, or stop() falls back to SIGINT
SHUTDOWN_LINE = "==== Shutting down ===="
CLOSE_NOTICED_S = 10.0
PROFILE = "livetwin-e2e"
COLLECTION = "livetwin-e2e"
SCENE = "Scene"
# obsws_python logs every refused connection and failed request with a traceback; the
# harness polls through both (start-up, code 702) and raises its own errors
logging.getLogger("obsws_python").setLevel(logging.CRITICAL)


def ensure_obs() -> str | None:
    """None when `obs` and `Xvfb` are there (installing them with apt-get when root);
    otherwise the reason they are not."""
    if shutil.which("obs") and shutil.which("Xvfb"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "OBS Studio/Xvfb are not installed and this is not root with apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", *APT_PACKAGES]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            return f"{' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}"
    if shutil.which("obs") and shutil.which("Xvfb"):
        return None
    return "apt-get installed obs-studio/xvfb but the binaries are not on PATH"


def _allow_core_dump() -> None:
    """In OBS's child process: let a crash leave a core file for `crash_report`."""
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


def _path_without_venvs(path: str) -> str:
    """PATH less virtual environments' bin folders. OBS's embedded Python takes its prefix
    from the first `python3` on PATH; a venv's leads it to another Python's modules (seen:
    pyenv's _ssl, `undefined symbol: _PyModule_Add`, and the script never connects)."""
    return os.pathsep.join(p for p in path.split(os.pathsep)
                           if p and not (Path(p).parent / "pyvenv.cfg").exists())


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_config(home: Path, script: Path, script_settings: dict[str, Any], ws_port: int,
                ws_password: str, width: int = 640, height: int = 360, fps: int = 15) -> Path:
    """Write global.ini, a profile and a scene collection that loads `script`.
    Returns the OBS config directory."""
    cfg = home / ".config" / "obs-studio"
    (cfg / "basic" / "profiles" / PROFILE).mkdir(parents=True, exist_ok=True)
    (cfg / "basic" / "scenes").mkdir(parents=True, exist_ok=True)
    (cfg / "global.ini").write_text(
        "[General]\n"
        "FirstRun=true\n"
        "Pre19Defaults=false\nPre21Defaults=false\nPre23Defaults=false\n"
        "Pre24.1Defaults=false\n"
        "EnableAutoUpdates=false\n"
        "\n[Basic]\n"
        f"Profile={PROFILE}\nProfileDir={PROFILE}\n"
        f"SceneCollection={COLLECTION}\nSceneCollectionFile={COLLECTION}\n"
        "ConfigOnNewProfile=false\n"
        "\n[OBSWebSocket]\n"
        "FirstLoad=false\nServerEnabled=true\n"
        f"ServerPort={ws_port}\n"
        "AlertsEnabled=false\nAuthRequired=true\n"
        f"ServerPassword={ws_password}\n")
    (cfg / "basic" / "profiles" / PROFILE / "basic.ini").write_text(
        f"[General]\nName={PROFILE}\n"
        "\n[Video]\n"
        f"BaseCX={width}\nBaseCY={height}\nOutputCX={width}\nOutputCY={height}\n"
        f"FPSType=1\nFPSInt={fps}\n"
        "\n[Audio]\nSampleRate=48000\nChannelSetup=Stereo\n")
    collection = {
        "name": COLLECTION,
        "current_scene": SCENE,
        "current_program_scene": SCENE,
        "scene_order": [{"name": SCENE}],
        "sources": [{
            "id": "scene", "versioned_id": "scene", "name": SCENE,
            "settings": {"items": [], "id_counter": 0, "custom_size": False},
            "enabled": True, "flags": 0, "mixers": 0, "volume": 1.0,
        }],
        "groups": [],
        "transitions": [],
        "current_transition": "Fade",
        "transition_duration": 300,
        "modules": {"scripts-tool": [{"path": str(script), "settings": script_settings}]},
    }
    (cfg / "basic" / "scenes" / f"{COLLECTION}.json").write_text(json.dumps(collection))
    return cfg


class ObsStartupError(RuntimeError):
    """OBS died before obs-websocket answered."""


class ObsInstance:
    """One headless OBS with an isolated HOME. Use as a context manager."""

    def __init__(self, home: Path, script_settings: dict[str, Any], script: Path = SCRIPT,
                 width: int = 640, height: int = 360, fps: int = 15,
                 env: dict[str, str] | None = None) -> None:
        self.home = home
        self.script = script
        self.script_settings = script_settings
        self.width, self.height, self.fps = width, height, fps
        self.extra_env = env or {}
        self.ws_port = free_port()
        self.ws_password = secrets.token_hex(12)
        self.xvfb: subprocess.Popen[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.req: Any = None
        self._event_clients: list[Any] = []
        self.exit_code: int | None = None
        self.display: str | None = None  # the Xvfb display, ":N"
        self.hung = False  # did not exit within stop()'s timeout (then aborted)
        self.closed_by = ""  # how stop() asked OBS to quit (see stop)
        self._x: Any = None  # stop()'s connection to the X display
        self.windows_at_close = self.windows_at_sigint = self.windows_at_abort = ""
        self.stderr_path = home / "obs_stderr.txt"
        self.cfg = seed_config(home, script, script_settings, self.ws_port, self.ws_password,
                               width, height, fps)

    # ---- start / stop ------------------------------------------------------------------

    def _start_xvfb(self) -> str:
        read_fd, write_fd = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x720x24",
             "-nolisten", "tcp"], pass_fds=(write_fd,), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            number = pipe.readline().strip().decode()
        if not number.isdigit():
            raise RuntimeError("Xvfb did not report its display number")
        return f":{number}"

    def start(self, timeout: float = 60.0) -> None:
        """Start Xvfb and OBS and connect; OBS dying first is reported with its stderr."""
        self._start_once(timeout)

    def _stop_xvfb(self) -> None:
        if self.xvfb is not None:
            self.xvfb.terminate()
            try:
                self.xvfb.wait(10)
            except subprocess.TimeoutExpired:
                self.xvfb.kill()
                self.xvfb.wait(10)
            self.xvfb = None
        self.display = None

    def _start_once(self, timeout: float) -> None:
        display = self.display = self._start_xvfb()
        env = dict(os.environ)
        for key in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "WAYLAND_DISPLAY"):
            env.pop(key, None)
        # Importing cv2 (opencv-contrib-python, pulled by mediapipe) points
        # QT_QPA_PLATFORM_PLUGIN_PATH at its own Qt build in this process; OBS inherits it
        # and aborts ("Could not load the Qt platform plugin xcb"). No Qt setting of ours
        # belongs to OBS.
        for key in [k for k in env if k.startswith("QT_")]:
            env.pop(key)
        env.pop("VIRTUAL_ENV", None)
        env["PATH"] = _path_without_venvs(env.get("PATH", os.defpath))
        env.update(HOME=str(self.home), DISPLAY=display, LIBGL_ALWAYS_SOFTWARE="1",
                   **self.extra_env)
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                ["obs", "--multi", "--minimize-to-tray", "--disable-missing-files-check"],
                env=env, cwd=self.home, stdout=err, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_allow_core_dump)
        self.req = self._connect(timeout)

    def _connect(self, timeout: float) -> Any:
        import obsws_python as obsws

        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                stderr = self.stderr_path.read_text(errors="replace")[-2000:]
                raise ObsStartupError(f"OBS exited with code {self.proc.returncode} during "
                                      f"start-up; stderr:\n{stderr}\nlog:\n"
                                      f"{self.log_text()[-3000:]}")
            try:
                return obsws.ReqClient(host="127.0.0.1", port=self.ws_port,
                                       password=self.ws_password, timeout=10)
            except Exception as exc:  # not listening yet
                last = exc
                time.sleep(0.5)
        raise RuntimeError(f"obs-websocket did not answer within {timeout:.0f} s: {last!r}")

    def events(self, subs: int, callbacks: list[Callable[..., None]]) -> Any:
        """An obs-websocket event client; `callbacks` are named on_<event_in_snake_case>."""
        import obsws_python as obsws

        client = obsws.EventClient(host="127.0.0.1", port=self.ws_port,
                                   password=self.ws_password, subs=subs, timeout=10)
        client.callback.register(callbacks)
        self._event_clients.append(client)
        return client

    def _top_level_windows(self) -> list[tuple[Any, str, str, bool]]:
        """OBS's display's top-level windows: (window, WM_CLASS class, title, mapped)."""
        from Xlib import X, error

        found = []
        for win in self._x.screen().root.query_tree().children:
            try:
                wm_class = win.get_wm_class()
                title = win.get_wm_name() or ""
                mapped = win.get_attributes().map_state != X.IsUnmapped
            except error.XError:  # the window went away meanwhile
                continue
            found.append((win, wm_class[1] if wm_class else "", str(title), mapped))
        return found

    def _window_list(self) -> str:
        return "; ".join(f"{win.id:#x} {cls!r} {title!r}{' (mapped)' if mapped else ''}"
                         for win, cls, title, mapped in self._top_level_windows())

    def _close_main_window(self) -> bool:
        """Send WM_DELETE_WINDOW to OBS's main window (module doc); False when there is
        no such window to send it to."""
        from Xlib import X, display, protocol

        if self.display is None:
            return False
        try:
            self._x = display.Display(self.display)
        except Exception as exc:  # Xvfb gone: no window to close
            self.windows_at_close = f"no X connection: {exc!r}"
            return False
        self.windows_at_close = self._window_list()
        protocols = self._x.intern_atom("WM_PROTOCOLS")
        delete = self._x.intern_atom("WM_DELETE_WINDOW")
        for win, cls, title, _ in self._top_level_windows():
            if cls == "obs" and title.startswith("OBS "):
                win.send_event(protocol.event.ClientMessage(
                    window=win, client_type=protocols,
                    data=(32, [delete, X.CurrentTime, 0, 0, 0])))
                self._x.flush()
                return True
        return False

    def _shutting_down(self, within: float) -> bool:
        """True once OBS has exited or logged the start of its shutdown, within `within` s."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None or \
                    SHUTDOWN_LINE in self.log_text():
                return True
            time.sleep(0.2)
        return False

    def _abort_hung(self) -> None:
        """OBS did not exit: SIGABRT leaves a core file with every thread's stack for
        crash_report(); SIGKILL only if it cannot even do that."""
        assert self.proc is not None
        self.hung = True
        if self._x is not None:
            self.windows_at_abort = self._window_list()
        self.proc.send_signal(signal.SIGABRT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        """Close OBS's main window (OBS shuts down cleanly), wait; returns OBS's exit code.
        SIGINT when there is no main window, or when OBS has not begun to shut down
        CLOSE_NOTICED_S after the close request."""
        for client in [*self._event_clients, self.req]:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.disconnect()
        self._event_clients.clear()
        self.req = None
        code = -1
        if self.proc is not None:
            if self.proc.poll() is None:
                deadline = time.monotonic() + timeout
                if self._close_main_window():
                    self.closed_by = "window"
                    if not self._shutting_down(CLOSE_NOTICED_S):
                        # one CI run: OBS never began to shut down, its main thread
                        # idle in the event loop (the close was dropped, reason unknown)
                        self.windows_at_sigint = self._window_list()
                        self.closed_by = "window (ignored), then SIGINT"
                        self.proc.send_signal(signal.SIGINT)
                else:
                    self.closed_by = "SIGINT"
                    self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self._abort_hung()
            code = self.proc.returncode
            self.exit_code = code
            if self._x is not None:
                self._x.close()
                self._x = None
            self.proc = None
        self._stop_xvfb()
        return code

    def __enter__(self) -> ObsInstance:
        try:
            self.start()
        except BaseException:
            self.stop(timeout=10)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- inspection --------------------------------------------------------------------

    def log_text(self) -> str:
        logs = sorted((self.cfg / "logs").glob("*.txt"), key=lambda p: p.stat().st_mtime)
        return logs[-1].read_text(errors="replace") if logs else ""

    def crash_report(self) -> str:
        """After OBS died of a signal: its stderr tail and, when gdb and a core file are
        there, the backtrace of every thread."""
        parts = ["OBS did not exit in time after the close request; aborted it for a core file"
                 if self.hung else "OBS died of a signal"]
        if self.windows_at_close:
            parts.append(f"top-level windows at the close request: {self.windows_at_close}")
        if self.windows_at_sigint:
            parts.append(f"top-level windows when the close was ignored: "
                         f"{self.windows_at_sigint}")
        if self.windows_at_abort:
            parts.append(f"top-level windows at the abort: {self.windows_at_abort}")
        if self.stderr_path.exists():
            parts.append("stderr:\n" + self.stderr_path.read_text(errors="replace")[-1500:])
        cores = sorted(self.home.glob("core*"), key=lambda p: p.stat().st_mtime)
        obs = shutil.which("obs")
        if not cores:
            parts.append("no core file (core_pattern: "
                         + Path("/proc/sys/kernel/core_pattern").read_text().strip() + ")")
        elif not shutil.which("gdb") or not obs:
            parts.append(f"core file {cores[-1]} (no gdb to read it)")
        else:
            proc = subprocess.run(
                ["gdb", "-batch", "-nx", "-ex", "bt 25", "-ex", "thread 1", "-ex", "bt 30",
                 "-ex", "thread apply all bt 16",
                 obs, str(cores[-1])], capture_output=True, text=True, timeout=120)
            parts.append("gdb (the crashed thread, then the main thread, then all):\n"
                         + proc.stdout[:20000])
        return "\n".join(parts)

    def wait_log(self, needle: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()
            if needle in text:
                return text
            time.sleep(0.25)
        raise AssertionError(f"{needle!r} not in the OBS log after {timeout:.0f} s:\n"
                             f"{self.log_text()[-4000:]}")

    def request(self, name: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """A raw obs-websocket request; raises obsws_python's OBSSDKRequestError."""
        return self.req.send(name, data, raw=True) or {}

    def screenshot(self, source: str, timeout: float = 30.0) -> Any:
        """The source's current picture as an RGB numpy array, polling past code 702
        (no frame decoded yet)."""
        import numpy as np
        from obsws_python.error import OBSSDKRequestError
        from PIL import Image

        deadline = time.monotonic() + timeout
        while True:
            try:
                resp = self.request("GetSourceScreenshot", {
                    "sourceName": source, "imageFormat": "png",
                    "imageWidth": self.width, "imageHeight": self.height})
                b64 = resp["imageData"].split(",", 1)[1]
                img = Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")
                return np.asarray(img)
            except OBSSDKRequestError as exc:
                if exc.code != 702 or time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
