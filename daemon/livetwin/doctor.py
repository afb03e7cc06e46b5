"""`livetwin doctor`: environment checks, each with what to do when it fails."""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Callable

from livetwin.config import home_dir

Check = tuple[str, bool, str]


def _python() -> Check:
    ok = sys.version_info[:2] == (3, 11)
    return ("python", ok, sys.version.split()[0] + ("" if ok else " (livetwin needs 3.11)"))


def _packages() -> Check:
    missing, found = [], []
    for mod in ("numpy", "torch", "mediapipe", "av", "onnxruntime", "cv2", "pydub", "rich",
                "pydantic", "yaml", "scipy"):
        try:
            m = importlib.import_module(mod)
            found.append(f"{mod} {getattr(m, '__version__', '')}".strip())
        except ImportError:
            missing.append(mod)
    if missing:
        return ("packages", False, f"missing {', '.join(missing)}: run `make venv`")
    return ("packages", True, ", ".join(found))


def _codecs() -> Check:
    import av

    need = {"libx264": "H.264 encoder", "aac": "AAC encoder", "hevc": "HEVC decoder"}
    missing = []
    for name, what in need.items():
        try:
            av.codec.Codec(name, "r" if name == "hevc" else "w")
        except (av.error.FFmpegError, ValueError):
            missing.append(what)
    if missing:
        return ("codecs", False, f"PyAV lacks {', '.join(missing)}: reinstall with `pip "
                "install --force-reinstall av==18.1.0`")
    return ("codecs", True, "H.264/AAC encode, H.264/HEVC decode")


def _face_mesh() -> Check:
    import mediapipe as mp

    try:
        mp.solutions.face_mesh.FaceMesh(static_image_mode=True).close()
    except Exception as exc:  # any failure here means the models are unusable
        return ("face mesh", False, f"{exc}: install mediapipe==0.10.21 (it ships the model)")
    return ("face mesh", True, "mediapipe face mesh model loads")


def _disk() -> Check:
    home = home_dir()
    probe = home if home.exists() else home.parent
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 2**30
    ok = free > 2.0
    return ("disk", ok, f"{free:.1f} GiB free at {home}" + ("" if ok else
            "; free some space (a bundle takes up to a few hundred MB)"))


CHECKS: tuple[Callable[[], Check], ...] = (_python, _packages, _codecs, _face_mesh, _disk)


def environment_checks() -> list[Check]:
    """Run every check."""
    return [c() for c in CHECKS]
