"""`livetwin doctor`: environment checks, each with exactly what to do when it fails.

A newcomer's first problems are rarely in livetwin itself: a missing package, a PyAV
build without an encoder, no disk space, the API port held by another program, OBS not
listening yet. Each check here looks at the real thing (imports the package, loads the
library, binds the port) and reports one of three outcomes:

- ok: fine;
- info: worth knowing but not a fault (OBS is not running yet; a livetwin daemon
  already serves the API port);
- fail: livetwin cannot work this way; `fix` says in one line what to do.

`livetwin doctor` exits 0 when nothing failed and 1 when a check failed (a damaged avatar
bundle, `livetwin doctor NAME.twin`, exits 2 like other input errors).

Ports are probed by binding them, never by sending anything to a stranger: a UDP stream
is pushed to OBS, so the *receiver* (OBS's Media Source) holds the UDP port; if our bind
fails there, something listens, which is what the output wants."""

from __future__ import annotations

import errno
import importlib
import json
import shutil
import socket
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from livetwin.config import Config, RenderConfig, home_dir

Status = Literal["ok", "info", "fail"]
PACKAGES = (
    "numpy",
    "torch",
    "mediapipe",
    "av",
    "onnxruntime",
    "cv2",
    "pydub",
    "rich",
    "pydantic",
    "yaml",
    "scipy",
    "fastapi",
    "uvicorn",
    "espeakng_loader",
)
MIN_FREE_GIB = 2.0
OBS_WEBSOCKET_PORT = 4455  # OBS's default obs-websocket port (Tools > WebSocket settings)
OBS_SCRIPT = "obs_plugin/livetwin_obs.py"
CJK_SAMPLE = "AI生成"


@dataclass(frozen=True)
class Check:
    """One check's outcome; `fix` is the one line saying what to do (empty when ok)."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "fail"


def _port_hint(proto: str, port: int) -> str:
    flag = "-lunp" if proto == "udp" else "-ltnp"
    if sys.platform == "darwin":
        return f"`lsof -nP -i {proto.upper()}:{port}` shows which"
    if sys.platform.startswith("win"):
        return f"`netstat -ano -p {proto.upper()}` shows which"
    return f"`ss {flag} 'sport = :{port}'` shows which"


# ---- Python and packages ---------------------------------------------------------------


def check_python() -> Check:
    ok = sys.version_info[:2] == (3, 11)
    version = sys.version.split()[0]
    if ok:
        return Check("python", "ok", version)
    return Check(
        "python",
        "fail",
        f"{version} (livetwin needs 3.11)",
        "install Python 3.11 and run `make venv` (it picks python3.11)",
    )


def check_packages() -> Check:
    missing, found = [], []
    for mod in PACKAGES:
        try:
            m = importlib.import_module(mod)
            found.append(f"{mod} {getattr(m, '__version__', '')}".strip())
        except ImportError:
            missing.append(mod)
    if missing:
        return Check(
            "packages",
            "fail",
            f"missing {', '.join(missing)}",
            "run `make venv` in the checkout (it installs the pinned packages)",
        )
    return Check("packages", "ok", ", ".join(found))


def check_codecs() -> Check:
    import av

    need = {
        "libx264": "H.264 encoder",
        "aac": "AAC encoder",
        "h264": "H.264 decoder",
        "hevc": "HEVC decoder",
    }
    missing = []
    for name, what in need.items():
        try:
            av.codec.Codec(name, "w" if "encoder" in what else "r")
        except (av.error.FFmpegError, ValueError):
            missing.append(what)
    if missing:
        return Check(
            "codecs",
            "fail",
            f"PyAV lacks {', '.join(missing)}",
            "reinstall PyAV's wheel: `.venv/bin/pip install --force-reinstall av==18.1.0`",
        )
    return Check("codecs", "ok", "H.264/AAC encode, H.264/HEVC decode (PyAV's FFmpeg)")


def check_face_mesh() -> Check:
    import mediapipe as mp

    try:
        mp.solutions.face_mesh.FaceMesh(static_image_mode=True).close()
    except Exception as exc:  # any failure here means the models are unusable
        return Check(
            "face mesh",
            "fail",
            f"mediapipe face mesh: {exc}",
            "reinstall mediapipe: `.venv/bin/pip install --force-reinstall "
            "mediapipe==0.10.21` (it ships the model)",
        )
    return Check("face mesh", "ok", "mediapipe face mesh model loads")


def check_voice() -> Check:
    """The built-in voice: libespeak-ng from the espeakng-loader wheel (no system
    espeak-ng or ffmpeg program is used: PyAV carries its own FFmpeg)."""
    from livetwin.errors import LivetwinError
    from livetwin.speech.espeak import get_engine

    try:
        engine = get_engine()
    except LivetwinError as exc:
        return Check(
            "voice",
            "fail",
            str(exc),
            "reinstall the voice: `.venv/bin/pip install --force-reinstall espeakng-loader`",
        )
    return Check("voice", "ok", f"espeak-ng {engine.version} (built-in voice)")


def check_label_font(render: RenderConfig) -> Check:
    """The AI-disclosure label needs a font with all its characters; a CJK label such as
    "AI生成" needs a CJK font, which a bare Debian lacks (fonts-wqy-microhei)."""
    from livetwin.render.fonts import INSTALL_HINT, find_face

    name = "label font"
    if not render.label_enabled:
        return Check(
            name,
            "info",
            "the visible AI-disclosure label is OFF (render.label_enabled: false)",
            "tell viewers another way that the host is AI-generated",
        )
    try:
        face = find_face(render.label, render.label_font)
    except ValueError as exc:
        detail = str(exc).split("; ", 1)[0]
        if detail.startswith("label font "):  # the file named in render.label_font
            return Check(
                name,
                "fail",
                detail,
                "set render.label_font to an existing .ttf/.ttc/.otf file, or remove it",
            )
        return Check(name, "fail", detail, INSTALL_HINT)
    used = face.path.name if face is not None else "Pillow's built-in font"
    try:
        find_face(CJK_SAMPLE)
    except ValueError:
        return Check(
            name,
            "info",
            f"label {render.label!r}: {used}; no CJK font for labels like {CJK_SAMPLE!r}",
            "for CJK labels: `sudo apt-get install fonts-wqy-microhei` (or `make sysdeps`), "
            "or set render.label_font",
        )
    return Check(name, "ok", f"label {render.label!r}: {used}; CJK labels can be drawn")


# ---- disk and home ---------------------------------------------------------------------


def check_disk(home: Path | None = None) -> Check:
    home = home or home_dir()
    probe = home
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 2**30
    if free > MIN_FREE_GIB:
        return Check("disk", "ok", f"{free:.1f} GiB free at {home}")
    return Check(
        "disk",
        "fail",
        f"only {free:.1f} GiB free at {home}",
        f"free at least {MIN_FREE_GIB:.0f} GiB there (a bundle takes up to a few "
        "hundred MB, recordings about 30 MB a minute), or point LIVETWIN_HOME "
        "at a larger disk",
    )


def check_home(home: Path | None = None) -> Check:
    """The livetwin home (token, database, caches, demo avatar) must be writable."""
    home = home or home_dir()
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check(
            "home",
            "fail",
            f"{home} is not writable ({exc.strerror})",
            f"make {home} writable by you (`chmod u+rwx {home}`), or set "
            "LIVETWIN_HOME to a folder you own",
        )
    return Check("home", "ok", f"{home} is writable")


# ---- ports -----------------------------------------------------------------------------


def _bind_error(kind: int, host: str, port: int) -> int | None:
    """None when `host:port` can be bound now, else the errno. TCP sets SO_REUSEADDR as
    uvicorn does (a port in TIME_WAIT is free for the daemon); UDP does not, so any socket
    bound there, OBS's included, makes the bind fail."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno or errno.EADDRINUSE
    return None


def _livetwin_health(host: str, port: int) -> dict[str, object] | None:
    """What a livetwin daemon's /api/health says at host:port; None for anything else."""
    where = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        where = "127.0.0.1"
    try:
        with urllib.request.urlopen(f"http://{where}:{port}/api/health", timeout=2) as r:
            body = json.loads(r.read(65536))
    except (OSError, ValueError):
        return None
    if isinstance(body, dict) and body.get("status") == "ok" and "version" in body:
        return body
    return None


def check_daemon_port(host: str, port: int) -> Check:
    """The API port of `livetwin serve`: free, a livetwin daemon's, or another program's."""
    name = "daemon port"
    where = f"TCP {host}:{port}"
    err = _bind_error(socket.SOCK_STREAM, host, port)
    if err is None:
        return Check(name, "ok", f"{where} is free for `livetwin serve`")
    if err == errno.EADDRNOTAVAIL:
        return Check(
            name,
            "fail",
            f"{host} is not an address of this machine",
            "set server.host in livetwin.yaml (or `livetwin serve --host`) to 127.0.0.1",
        )
    if err == errno.EACCES:
        return Check(
            name,
            "fail",
            f"{where} needs privileges to bind",
            "use a port above 1023: server.port in livetwin.yaml or `livetwin serve --port 8765`",
        )
    health = _livetwin_health(host, port)
    if health is not None:
        return Check(
            name,
            "info",
            f"a livetwin daemon (version {health.get('version')}, "
            f"avatar {health.get('avatar')}) already serves {where}",
            "to start another one, stop it first (Ctrl-C in its terminal) or "
            "give the new one `--port` with another port",
        )
    return Check(
        name,
        "fail",
        f"another program holds {where}",
        f"stop it ({_port_hint('tcp', port)}), or run livetwin on another port: "
        "`livetwin serve --port 8766` or server.port in livetwin.yaml",
    )


def _udp_target(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if parts.scheme != "udp" or not parts.hostname or not parts.port:
        return None
    return parts.hostname, parts.port


def check_obs_port(obs_url: str) -> Check:
    """Is OBS's Media Source listening where the daemon pushes MPEG-TS over UDP? Either
    way it is information: the daemon streams into the void until OBS listens and OBS
    picks the stream up by itself once it does."""
    name = "OBS port"
    if not obs_url:
        return Check(name, "info", "the OBS output is off (output.obs_url is empty)")
    target = _udp_target(obs_url)
    if target is None:
        return Check(name, "info", f"output.obs_url is {obs_url}: not UDP, not probed")
    host, port = target
    where = f"udp://{host}:{port}"
    err = _bind_error(socket.SOCK_DGRAM, host, port)
    if err == errno.EADDRINUSE:
        return Check(
            name,
            "info",
            f"OBS is listening on {where} (a program holds the "
            "port: OBS's livetwin Media Source, most likely)",
        )
    if err == errno.EADDRNOTAVAIL:
        return Check(name, "info", f"{host} is another machine: OBS there is not probed")
    return Check(
        name,
        "info",
        f"nothing listens on {where}",
        f"start OBS with the livetwin script ({OBS_SCRIPT} in Tools > Scripts); "
        "its Media Source listens there",
    )


def check_obs_websocket(port: int = OBS_WEBSOCKET_PORT) -> Check:
    """Whether OBS itself runs (its websocket server's default port): tells "OBS is not
    running" apart from "OBS runs without the livetwin source". livetwin does not need
    the websocket; only the tests drive OBS through it."""
    name = "obs-websocket"
    with socket.socket() as s:
        s.settimeout(0.5)
        listening = s.connect_ex(("127.0.0.1", port)) == 0
    if listening:
        return Check(name, "info", f"something (OBS, most likely) listens on TCP 127.0.0.1:{port}")
    return Check(
        name,
        "info",
        f"nothing listens on TCP 127.0.0.1:{port} (OBS is not "
        "running, or its WebSocket server is off: livetwin does not need it)",
    )


# ---- all together ----------------------------------------------------------------------


def environment_checks(cfg: Config | None = None) -> list[Check]:
    """Run every check against the configuration `cfg` (defaults when None)."""
    cfg = cfg or Config()
    checks: list[Callable[[], Check]] = [
        check_python,
        check_packages,
        check_codecs,
        check_face_mesh,
        check_voice,
        lambda: check_label_font(cfg.render),
        check_disk,
        check_home,
        lambda: check_daemon_port(cfg.server.host, cfg.server.port),
        lambda: check_obs_port(cfg.output.obs_url),
        check_obs_websocket,
    ]
    results = []
    for check in checks:
        try:
            results.append(check())
        except ImportError as exc:  # a check needing a missing package: packages says so
            results.append(
                Check(
                    getattr(check, "__name__", "check").removeprefix("check_"),
                    "fail",
                    f"cannot run: {exc}",
                    "run `make venv`",
                )
            )
    return results


def as_json(checks: list[Check]) -> str:
    """The machine-readable report of `livetwin doctor --json`."""
    return json.dumps(
        {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]},
        indent=2,
        ensure_ascii=False,
    )
