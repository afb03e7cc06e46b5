"""The embedded demo avatar: a photo avatar of the public-domain NASA portrait of
astronaut Eileen Collins that ships inside scikit-image (`skimage.data.astronaut()`, a
PNG in the wheel: no download). Built once into the livetwin home folder on first use,
atomically, and rebuilt when damaged or when `DEMO_VERSION` changes."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import cv2
import yaml

from livetwin.avatar import bundle
from livetwin.config import home_dir
from livetwin.errors import BundleError

NAME = "demo"
DEMO_VERSION = 1  # raise when the photo avatar format or its build changes
CONSENT = {
    "subject": "Eileen Collins (NASA astronaut), public-domain portrait",
    "statement": (
        "No personal consent was given for livetwin: this is the NASA portrait of astronaut "
        "Eileen Collins shipped in scikit-image as skimage.data.astronaut(), released into "
        "the public domain with no known copyright restrictions; livetwin uses it only as its "
        "labelled demo avatar, never to impersonate her."
    ),
    "date": "2026-01-01",
    "contact": "NASA Great Images database, https://flic.kr/p/r9qvLn",
    "source": "scikit-image skimage.data.astronaut() (data/astronaut.png)",
    "license": "public domain (no known copyright restrictions)",
}


def demo_dir() -> Path:
    """Where the demo bundle lives."""
    return home_dir() / "avatars" / f"{NAME}{bundle.SUFFIX}"


def _current(path: Path) -> bool:
    try:
        check = bundle.verify(path)
    except BundleError:
        return False
    return check.ok and check.manifest.get("demo_version") == DEMO_VERSION


def demo_bundle() -> Path:
    """The demo avatar bundle, built on first use (module doc)."""
    path = demo_dir()
    if _current(path):
        return path
    from skimage import data

    from livetwin.avatar.photo import clone_photo

    rgb = data.astronaut()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".demo-build.", dir=path.parent) as tmp:
        png = Path(tmp) / "astronaut.png"
        cv2.imwrite(str(png), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        consent = Path(tmp) / "consent.yaml"
        consent.write_text(yaml.safe_dump(CONSENT, sort_keys=False, allow_unicode=True),
                           encoding="utf-8")
        clone_photo(png, NAME, consent, out_dir=path.parent, force=True,
                    extra={"demo_version": DEMO_VERSION, "built": dt.date.today().isoformat()})
    return path
