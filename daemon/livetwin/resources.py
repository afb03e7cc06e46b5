"""The data directories shipped with livetwin (ARCHITECTURE §1): `gestures/` (the gesture
library) and `scripts_templates/` (sales-script templates). In a source checkout or an
editable install they sit at the repository root; in a wheel they are packaged as
`livetwin/_data/<name>`. `data_dir` finds them the same way in both."""

from __future__ import annotations

from pathlib import Path

from livetwin.errors import LivetwinError

_PACKAGE = Path(__file__).resolve().parent
NAMES = ("gestures", "scripts_templates")


def data_dir(name: str) -> Path:
    """The directory of the shipped data set `name` (one of NAMES)."""
    if name not in NAMES:
        raise ValueError(f"unknown data set {name!r}")
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parents[1] / name):
        if candidate.is_dir():
            return candidate
    raise LivetwinError(f"livetwin's {name} data is missing from this install; "
                        "reinstall livetwin.")
