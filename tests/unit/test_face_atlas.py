"""Mouth descriptor, canonical frame and atlas on synthetic faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from livetwin.avatar import face
from livetwin.avatar.atlas import MouthAtlas, coverage, select_patches


def synthetic_face(rng: np.random.Generator, aperture: float = 0.1) -> np.ndarray:
    """478 landmarks of a frontal face with eyes 100 px apart and a given lip gap."""
    lm = rng.normal(0, 1, (face.N_LANDMARKS, 3)).astype(np.float32)
    lm += np.array([200, 200, 0], np.float32)
    for k, i in enumerate(face.STABLE):
        lm[i] = [160 + 8 * k, 150 + 6 * (k % 4), 0]
    lm[face.EYE_OUTER_L] = [150, 150, 0]
    lm[face.EYE_OUTER_R] = [250, 150, 0]
    lm[face.MOUTH_CORNER_L] = [175, 260, 0]
    lm[face.MOUTH_CORNER_R] = [225, 260, 0]
    lm[face.LIP_INNER_UP] = [200, 260 - 50 * aperture, -5]
    lm[face.LIP_INNER_DOWN] = [200, 260 + 50 * aperture, -5]
    lm[face.LIP_OUTER_UP] = [200, 250, -8]
    lm[face.LIP_OUTER_DOWN] = [200, 272, -8]
    for k, i in enumerate(face.INNER_LIP):
        ang = 2 * np.pi * k / len(face.INNER_LIP)
        lm[i] = [200 + 22 * np.cos(ang), 260 + 50 * aperture * np.sin(ang), -5]
    return lm


def _similarity(lm: np.ndarray, scale: float, angle: float, shift: tuple[float, float]
                ) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    out = lm.copy()
    out[:, :2] = lm[:, :2] @ (scale * np.array([[c, -s], [s, c]])).T + shift
    out[:, 2] = lm[:, 2] * scale
    return out


def test_descriptor_is_normalised_by_face_size_and_pose() -> None:
    lm = synthetic_face(np.random.default_rng(0), aperture=0.2)
    base = face.mouth_geometry(lm)
    moved = face.mouth_geometry(_similarity(lm, 2.5, 0.3, (40, -10)))
    np.testing.assert_allclose(base, moved, rtol=1e-4, atol=1e-5)
    assert base[0] == pytest.approx(0.2, abs=1e-3)  # 20 px gap / 100 px IOD
    assert base[1] == pytest.approx(0.5, abs=1e-3)  # 50 px mouth / 100 px IOD
    assert base[2] == pytest.approx(0.08, abs=1e-3)  # lips 8 px in front of the corners


def test_descriptor_follows_the_opening() -> None:
    rng = np.random.default_rng(1)
    ap = [face.mouth_geometry(synthetic_face(rng, a))[0] for a in (0.0, 0.1, 0.3)]
    assert ap[0] < ap[1] < ap[2]


def test_teeth_visibility_sees_white_in_the_opening() -> None:
    lm = synthetic_face(np.random.default_rng(2), aperture=0.3)
    img = np.full((400, 400, 3), (170, 90, 80), np.uint8)  # lips/skin colour
    poly = np.round(lm[list(face.INNER_LIP), :2]).astype(np.int32)
    dark = img.copy()
    cv2.fillPoly(dark, [poly], (30, 10, 10))
    white = img.copy()
    cv2.fillPoly(white, [poly], (235, 235, 230))
    assert face.teeth_visibility(dark, lm) == 0.0
    assert face.teeth_visibility(white, lm) > 0.8


def test_canonical_frame_maps_any_pose_to_the_same_place() -> None:
    lm = synthetic_face(np.random.default_rng(3))
    canon = face.CanonicalFrame.from_landmarks(lm, iod=80)
    w, h = canon.size
    assert (w, h) == (160, 120)
    for scale, angle in ((1.0, 0.0), (0.5, -0.2), (3.0, 0.4)):
        moved = _similarity(lm, scale, angle, (13, 7))
        m = canon.transform(moved)
        np.testing.assert_allclose(face.apply_affine(m, moved[list(face.STABLE), :2]),
                                   canon.stable_ref, atol=1e-2)


def test_atlas_selection_covers_the_shapes() -> None:
    rng = np.random.default_rng(4)
    desc = np.abs(rng.normal(0, 1, (1500, 4))).astype(np.float32)
    sel = select_patches(desc, np.full(1500, 50.0, np.float32), 200)
    assert len(sel) == 200 and len(set(sel.tolist())) == 200
    assert coverage(desc[sel], desc, radius=0.6) > 0.9
    # The extremes are in: the widest opening of the sharp frames is chosen.
    assert desc[sel, 0].max() > np.percentile(desc[:, 0], 99)
    # The worst-served mouth shape is closer to an atlas patch than with a random pick.
    random_pick = rng.choice(1500, 200, replace=False)

    def worst(pick: np.ndarray) -> float:
        z = (desc - desc.mean(0)) / desc.std(0)
        return float(np.sqrt(((z[:, None] - z[pick][None]) ** 2).sum(-1)).min(1).max())

    assert worst(sel) < 0.8 * worst(random_pick)


def test_atlas_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    k, h, w = 20, 48, 64
    patches = rng.integers(0, 255, (k, h, w, 3), dtype=np.uint8)
    patches = np.stack([cv2.GaussianBlur(p, (9, 9), 3) for p in patches])  # JPEG-friendly
    atlas = MouthAtlas(patches, rng.random((k, 4)).astype(np.float32),
                       np.arange(k, dtype=np.int32),
                       rng.random((k, face.N_LANDMARKS, 2)).astype(np.float32) * 60,
                       rng.random((13, 2)).astype(np.float32), 32.0)
    atlas.save(tmp_path / "a.jpg", tmp_path / "a.npz")
    back = MouthAtlas.load(tmp_path / "a.jpg", tmp_path / "a.npz")
    assert back.patches.shape == patches.shape
    assert np.abs(back.patches.astype(int) - patches).mean() < 4  # JPEG q92
    np.testing.assert_array_equal(back.frames, atlas.frames)
    np.testing.assert_allclose(back.landmarks, atlas.landmarks, atol=0.05)
    assert back.size == (w, h)


def test_atlas_skips_blurred_frames() -> None:
    rng = np.random.default_rng(6)
    desc = np.abs(rng.normal(0, 1, (400, 4))).astype(np.float32)
    sharpness = rng.uniform(10, 100, 400).astype(np.float32)
    sel = select_patches(desc, sharpness, 100)
    assert sharpness[sel].min() >= np.percentile(sharpness, 25)
