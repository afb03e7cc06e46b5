"""MouthRange.along_aperture: a person-model track's width, rounding and teeth are the
footage's own mean at the predicted aperture, not the model's weak guesses."""

from __future__ import annotations

import numpy as np
import pytest

from livetwin.lipsync.track import SHAPE_SHARE, MouthRange


def _footage(n: int = 400, seed: int = 0) -> np.ndarray:
    """Descriptors of a person whose mouth widens and shows teeth as it opens."""
    rng = np.random.default_rng(seed)
    ap = rng.uniform(0.0, 0.2, n)
    width = 0.50 + 0.4 * ap + rng.normal(0, 0.002, n)
    rounding = 0.18 - 0.5 * ap**2 + rng.normal(0, 0.001, n)
    teeth = np.clip(3.0 * ap, 0, 1) + rng.normal(0, 0.01, n)
    return np.stack([ap, width, rounding, teeth], axis=1)


def test_columns_follow_the_aperture_as_in_the_footage() -> None:
    rng = MouthRange.from_descriptors(_footage())
    guesses = np.array([[0.05, 0.9, 0.9, 0.9], [0.15, 0.1, 0.1, 0.1]], np.float32)
    out = rng.along_aperture(guesses, share=1.0)
    np.testing.assert_array_equal(out[:, 0], guesses[:, 0])  # the model's aperture stays
    np.testing.assert_allclose(out[:, 1], 0.50 + 0.4 * guesses[:, 0], atol=0.002)
    np.testing.assert_allclose(out[:, 2], 0.18 - 0.5 * guesses[:, 0] ** 2, atol=0.002)
    np.testing.assert_allclose(out[:, 3], 3.0 * guesses[:, 0], atol=0.02)
    np.testing.assert_array_equal(guesses[0], np.float32([0.05, 0.9, 0.9, 0.9]))  # untouched


def test_a_share_moves_the_guesses_part_of_the_way() -> None:
    rng = MouthRange.from_descriptors(_footage())
    guesses = np.array([[0.1, 0.9, 0.9, 0.9]], np.float32)
    whole = rng.along_aperture(guesses, share=1.0)
    half = rng.along_aperture(guesses)  # SHAPE_SHARE
    g = guesses[0, 1:]
    np.testing.assert_allclose(half[0, 1:], g + SHAPE_SHARE * (whole[0, 1:] - g), rtol=1e-5)
    np.testing.assert_array_equal(rng.along_aperture(guesses, share=0.0), guesses)


def test_apertures_beyond_the_footage_get_its_edge_shape() -> None:
    rng = MouthRange.from_descriptors(_footage())
    lo, hi = rng.shape_span
    assert 0.0 <= lo < 0.01 and 0.19 < hi <= 0.2
    far, edge = rng.along_aperture([[0.6, 0, 0, 0], [hi, 0, 0, 0]], share=1.0)
    assert far[0] == pytest.approx(0.6)  # the aperture itself is not clipped
    np.testing.assert_allclose(far[1:], edge[1:])


@pytest.mark.parametrize("make", [MouthRange.default,
                                  lambda: MouthRange.from_descriptors(_footage(20)),
                                  lambda: MouthRange.from_descriptors(
                                      np.tile([0.01, 0.5, 0.18, 0.0], (100, 1)))])
def test_without_footage_to_learn_from_nothing_changes(make) -> None:  # type: ignore[no-untyped-def]
    rng = make()
    assert rng.shape is None
    v = np.array([[0.1, 0.6, 0.2, 0.3]], np.float32)
    np.testing.assert_array_equal(rng.along_aperture(v), v)
