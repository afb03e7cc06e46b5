"""The recording guide: a shot list for the streamer, so one take gives both the clone
footage and the gesture clips.

The take starts with LEAD_IN_S of natural talk to the camera (what `clone` learns the
face and voice from), then one gesture per slot: rest (hands down, silent, looking into
the lens) for REST_S, perform the gesture when the mark comes, hold until the slot ends.
Each slot lasts REST_S + the gesture's longest duration + SETTLE_S, so a gesture fits
its mark even when performed a little late. Gestures are ordered so the hands rest
between hand gestures: pointing first (the most important ones for selling), then
emblems, product handling, head and face, beats last.

`Guide.sidecar()` is the `--gestures` file of `livetwin clone` (gesture id -> start/end
seconds in the take), so the marks go straight back into cloning: record following the
marks, then `livetwin clone TAKE.mp4 --gestures gestures.yaml`."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from livetwin.gesture.library import Gesture, Library, default_library

LEAD_IN_S = 60.0
REST_S = 1.5
SETTLE_S = 0.5
LEVELS = {"essential": ("essential",), "recommended": ("essential", "recommended"),
          "all": ("essential", "recommended", "optional")}
ORDER = ("deictic", "emblem", "body", "head", "face", "beat")


@dataclass(frozen=True, slots=True)
class Shot:
    """One gesture of the take: perform it at `mark` (seconds from the take's start); the
    clip is cut from `start` to `end`."""

    number: int
    gesture: Gesture
    mark: float
    start: float
    end: float


@dataclass(frozen=True)
class Guide:
    """The shot list of one take."""

    shots: tuple[Shot, ...]
    lead_in_s: float

    @property
    def duration_s(self) -> float:
        return self.shots[-1].end + REST_S if self.shots else self.lead_in_s

    def sidecar(self) -> dict[str, Any]:
        """The `clone --gestures` file for a take that follows the marks."""
        return {"gestures": {s.gesture.id: {"start": round(s.start, 2), "end": round(s.end, 2)}
                             for s in self.shots}}

    def markdown(self) -> str:
        """The guide as a page (Markdown)."""
        lines = [
            "# Recording guide: your gesture take", "",
            f"One take of about {_clock(self.duration_s)}. Use a timer you can see "
            "(or play a countdown); keep your face in the picture throughout.", "",
            f"1. **0:00-{_clock(self.lead_in_s)}**: talk naturally to the camera about a "
            "product (this is the footage your twin is made from).",
            "2. Then, for each row below: rest with your hands down, silent, looking into "
            "the lens; at the **mark**, perform the gesture and hold it until the row "
            "ends. Do not speak during the gestures.", "",
            "| # | mark | clip | gesture | what to do |",
            "|---|------|------|---------|------------|",
        ]
        for s in self.shots:
            lines.append(f"| {s.number} | {_clock(s.mark)} | {_clock(s.start)}-"
                         f"{_clock(s.end)} | {s.gesture.name} (`{s.gesture.id}`) | "
                         f"{s.gesture.description} |")
        lines += ["", "Afterwards: `livetwin clone TAKE.mp4 --name NAME --consent "
                  "CONSENT.yaml --gestures gestures.yaml` (the gestures file written with "
                  "this guide holds the clip times above).", ""]
        return "\n".join(lines)

    def html(self) -> str:
        """The guide as a standalone HTML page."""
        rows = "".join(
            f"<tr><td>{s.number}</td><td><b>{_clock(s.mark)}</b></td><td>{_clock(s.start)}"
            f"-{_clock(s.end)}</td><td>{html.escape(s.gesture.name)}<br><code>"
            f"{s.gesture.id}</code></td><td>{html.escape(s.gesture.description)}</td></tr>"
            for s in self.shots)
        return (
            "<!doctype html><meta charset='utf-8'><title>livetwin recording guide</title>"
            "<style>body{font:16px sans-serif;max-width:60em;margin:2em auto}"
            "td,th{border-bottom:1px solid #ccc;padding:.4em;vertical-align:top}</style>"
            "<h1>Recording guide: your gesture take</h1>"
            f"<p>One take of about {_clock(self.duration_s)}; keep your face in the picture."
            f"</p><ol><li><b>0:00-{_clock(self.lead_in_s)}</b>: talk naturally to the camera "
            "about a product.</li><li>Then for each row: rest (hands down, silent, looking "
            "into the lens); at the <b>mark</b> perform the gesture and hold it until the "
            "row ends.</li></ol><table><tr><th>#</th><th>mark</th><th>clip</th>"
            f"<th>gesture</th><th>what to do</th></tr>{rows}</table>"
            "<p>Afterwards: <code>livetwin clone TAKE.mp4 --name NAME --consent CONSENT.yaml "
            "--gestures gestures.yaml</code>.</p>")


def _clock(seconds: float) -> str:
    m, s = divmod(seconds, 60.0)
    return f"{int(m)}:{s:04.1f}"


def make_guide(library: Library | None = None, *, level: str = "recommended",
               only: list[str] | None = None, lead_in_s: float = LEAD_IN_S) -> Guide:
    """The shot list for the gestures of `level` (or exactly `only`, in that order);
    KeyError for an unknown id in `only`."""
    lib = library or default_library()
    if only:
        chosen = [lib[g] for g in only]
    else:
        keep = LEVELS[level]
        chosen = sorted((g for g in lib if g.record in keep),
                        key=lambda g: (ORDER.index(g.category), g.record != "essential"))
    shots: list[Shot] = []
    t = lead_in_s
    for n, g in enumerate(chosen, start=1):
        mark = t + REST_S
        end = mark + g.timing.max_s + SETTLE_S
        shots.append(Shot(n, g, round(mark, 2), round(mark - 0.2, 2), round(end, 2)))
        t = end
    return Guide(tuple(shots), lead_in_s)
