"""What an avatar can show: its recorded gesture clips (the bundle's gestures.yaml) plus
the gestures the renderer draws without a clip (head motions on the footage, on-screen
cues). The planner is given exactly this set, so a clip-less avatar never gets a cue for
a gesture it cannot render."""

from __future__ import annotations

from pathlib import Path

from livetwin.gesture.library import Library, default_library


def procedural_names() -> frozenset[str]:
    """The `procedural` renderers livetwin implements (head motions and screen cues)."""
    from livetwin.render.cues import CUES
    from livetwin.render.head_motion import BROWS, MOTIONS

    return frozenset(MOTIONS) | frozenset(BROWS) | frozenset(CUES)


def renderable(bundle_dir: Path | None, library: Library | None = None) -> frozenset[str]:
    """Gesture ids the avatar at `bundle_dir` can show (None: no bundle, procedural only).
    Clips whose id is not in the library are left out: the planner cannot choose them."""
    from livetwin.render.gestures import load_clips

    lib = library or default_library()
    clips = set(load_clips(bundle_dir)) if bundle_dir is not None else set()
    names = procedural_names()
    return frozenset(g.id for g in lib
                     if g.id in clips or (g.procedural is not None and g.procedural in names))
