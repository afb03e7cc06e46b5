"""Small statistics shared by the lip-sync code and its measurements (no torch here:
the live daemon imports it)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def pearson(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Pearson correlation; nan when either series is constant or shorter than 3."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    z = np.asarray(b, dtype=np.float64).reshape(-1)
    if len(x) < 3 or x.std() < 1e-12 or z.std() < 1e-12:
        return float("nan")
    return float(np.corrcoef(x, z)[0, 1])
