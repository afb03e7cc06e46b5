"""Gesture clips declared in a sidecar file: gesture id -> start/end seconds in the video."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from livetwin.errors import InputError

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MIN_LEN_S, MAX_LEN_S = 0.3, 15.0
EXAMPLE = "gestures: {point_down: {start: 12.4, end: 14.0}, wave: {start: 30.0, end: 31.5}}"


@dataclass(frozen=True)
class GestureSpan:
    """A declared gesture: seconds in the source video."""

    id: str
    start: float
    end: float


def load_sidecar(path: Path) -> list[GestureSpan]:
    """Parse a --gestures file; ranges are checked against the video later."""
    hint = f"expected YAML like: {EXAMPLE}."
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"gestures file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise InputError(f"gestures file {path} is not readable YAML; {hint}") from None
    entries: Any = data.get("gestures") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise InputError(f"gestures file {path} has no 'gestures:' mapping; {hint}")
    spans = []
    for gid, span in entries.items():
        if not isinstance(gid, str) or not ID_RE.match(gid):
            raise InputError(f"gestures file {path}: '{gid}' is not a valid gesture id "
                             "(lowercase letters, digits, '_', '-', '.').")
        try:
            start, end = float(span["start"]), float(span["end"])
        except (TypeError, KeyError, ValueError):
            raise InputError(f"gestures file {path}: '{gid}' needs numeric start and end "
                             "seconds.") from None
        if end < start:
            raise InputError(f"gestures file {path}: '{gid}' ends ({end:.2f} s) before it "
                             f"starts ({start:.2f} s); give start first, then end.")
        if not MIN_LEN_S <= end - start <= MAX_LEN_S:
            raise InputError(f"gestures file {path}: '{gid}' lasts {end - start:.2f} s; a "
                             f"gesture clip must last {MIN_LEN_S}-{MAX_LEN_S:.0f} s.")
        spans.append(GestureSpan(gid, start, end))
    return spans


def check_spans(spans: list[GestureSpan], duration: float, path: Path) -> None:
    """Every span must lie inside the video."""
    for s in spans:
        if s.start < 0 or s.end > duration + 1e-3:
            raise InputError(
                f"gestures file {path}: '{s.id}' ({s.start:.2f}-{s.end:.2f} s) lies outside "
                f"the video (0-{duration:.2f} s)."
            )


def clip_frames(spans: list[GestureSpan], times: npt.NDArray[np.float64],
                usable: npt.NDArray[np.bool_]) -> tuple[list[dict[str, Any]], list[str]]:
    """Frame ranges for each span plus warnings where tracking is poor inside it."""
    clips, warnings = [], []
    for s in spans:
        a = int(np.searchsorted(times, s.start, side="left"))
        b = int(np.searchsorted(times, s.end, side="left"))
        tracked = float(usable[a:b].mean()) if b > a else 0.0
        if tracked < 0.8:
            warnings.append(f"gesture '{s.id}': the face is tracked in only {tracked:.0%} of "
                            "its frames; lip sync over it will be weaker.")
        clips.append({"id": s.id, "start_s": round(s.start, 3), "end_s": round(s.end, 3),
                      "start_frame": a, "end_frame": b, "tracked": round(tracked, 3)})
    return clips, warnings
