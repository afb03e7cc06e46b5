"""The avatar bundle `NAME.twin/`: manifest + data files, written atomically, verified on
load. The manifest lists every component with its sha256, so a tampered or incomplete
bundle is detected."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from livetwin import __version__
from livetwin.errors import BundleError, InputError

FORMAT = "livetwin.twin"
FORMAT_VERSION = 1
MANIFEST = "manifest.yaml"
SUFFIX = ".twin"
# Components every bundle has; others (person model, voice clip, gestures) are optional.
REQUIRED = ("consent.yaml", "footage", "track.npz", "loops.npz", "atlas.jpg", "atlas.npz")
PHOTO_REQUIRED = ("consent.yaml", "portrait.png", "photo.npz")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def staging(out_dir: Path, name: str, *, force: bool = False) -> Iterator[Path]:
    """A temporary folder beside the final bundle; on success it is renamed into place in
    one step, on any failure (or Ctrl-C) it is removed, so no half bundle is ever left."""
    final = out_dir / f"{name}{SUFFIX}"
    if final.exists() and not force:
        raise InputError(f"{final} already exists; choose another --name, or pass --force "
                         "to replace it.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=out_dir))
    except OSError as exc:
        raise InputError(f"cannot write to {out_dir}: {exc.strerror}; choose another --out."
                         ) from None
    try:
        yield tmp
        if final.exists():
            old = out_dir / f".{name}.{os.getpid()}.old"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def plain(value: Any) -> Any:
    """Numbers and containers as plain Python types (numpy scalars do not serialise)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def write_manifest(folder: Path, name: str, info: dict[str, Any]) -> dict[str, Any]:
    """Hash every file in `folder` and write the manifest last."""
    components = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = path.relative_to(folder).as_posix()
        components[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "livetwin_version": __version__,
        **plain(info),
        "components": components,
    }
    (folder / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True),
                                   encoding="utf-8")
    return manifest


@dataclass(frozen=True)
class BundleCheck:
    """The outcome of verifying a bundle."""

    path: Path
    manifest: dict[str, Any]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def read_manifest(path: Path) -> dict[str, Any]:
    """Load the manifest of a bundle folder, or raise BundleError."""
    if not path.is_dir():
        raise BundleError(f"{path} is not an avatar bundle folder; make one with "
                          "`livetwin clone`.")
    mpath = path / MANIFEST
    try:
        data = yaml.safe_load(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path} has no {MANIFEST}; it is incomplete: clone again.") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise BundleError(f"{mpath} is unreadable; the bundle is damaged: clone again.") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BundleError(f"{mpath} is not a livetwin avatar manifest.")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise BundleError(f"{path} was made by a newer livetwin (format "
                          f"{data.get('format_version')}); update livetwin.")
    return data


def verify(path: Path) -> BundleCheck:
    """Check every component against the manifest: missing, extra, or changed files."""
    manifest = read_manifest(path)
    comps: dict[str, Any] = manifest.get("components") or {}
    problems = []
    # Photo avatars (`kind: photo`, avatar/photo.py) have their own components.
    photo = manifest.get("kind") == "photo"
    for req in PHOTO_REQUIRED if photo else REQUIRED:
        if not any(k == req or k.startswith(req + ".") for k in comps):
            problems.append(f"the manifest lists no {req}")
    for rel, meta in comps.items():
        f = path / rel
        if not f.is_file():
            problems.append(f"{rel} is missing")
        elif f.stat().st_size != meta.get("bytes") or sha256_file(f) != meta.get("sha256"):
            problems.append(f"{rel} was modified (its sha256 does not match the manifest)")
    for f in path.rglob("*"):
        rel = f.relative_to(path).as_posix()
        if f.is_file() and rel != MANIFEST and rel not in comps:
            problems.append(f"{rel} is not part of the bundle")
    consent = manifest.get("consent") or {}
    cfile = path / "consent.yaml"
    if not consent.get("sha256"):
        problems.append("the manifest has no consent record")
    elif cfile.is_file() and sha256_file(cfile) != consent["sha256"]:
        problems.append("consent.yaml does not match the consent record")
    return BundleCheck(path, manifest, problems)


def resolve(avatar: str, search: tuple[Path, ...] = (Path("avatars"),)) -> Path:
    """Turn an AVATAR argument (a folder, or a bundle name in ./avatars) into a path."""
    p = Path(avatar)
    candidates = [p, p.with_name(p.name + SUFFIX)] + [d / f"{avatar}{SUFFIX}" for d in search]
    for c in candidates:
        if (c / MANIFEST).is_file():
            return c
    if p.is_dir() and p.name.endswith(SUFFIX):
        raise BundleError(f"{p} has no {MANIFEST}; the bundle is incomplete: clone it again.")
    looked = ", ".join(dict.fromkeys(str(c) for c in candidates))
    raise BundleError(f"no avatar bundle '{avatar}' found (looked for {looked}); make one "
                      "with `livetwin clone`.")


def load(path: Path) -> BundleCheck:
    """Verify a bundle before use; raise BundleError naming the first problem."""
    check = verify(path)
    if not check.ok:
        raise BundleError(f"avatar bundle {path} failed verification: {check.problems[0]}; "
                          "clone it again from the source video.")
    return check
