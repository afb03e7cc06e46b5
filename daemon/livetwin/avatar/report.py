"""The clone's quality report: a contact-sheet PNG and a table of numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from livetwin.avatar import face
from livetwin.avatar.atlas import MouthAtlas

U8 = npt.NDArray[np.uint8]
TILE = 320
FONT = cv2.FONT_HERSHEY_SIMPLEX
OVERLAY_GROUPS = ((face.OUTER_LIP, (255, 80, 80)), (face.INNER_LIP, (255, 220, 0)),
                  (face.JAW, (80, 200, 255)), (face.STABLE, (80, 255, 120)))


def _fit(img: U8, w: int, h: int) -> U8:
    s = min(w / img.shape[1], h / img.shape[0])
    small = cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))),
                       interpolation=cv2.INTER_AREA)
    out = np.full((h, w, 3), 24, np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def overlay(rgb: U8, lm: npt.NDArray[np.float32] | None, label: str) -> U8:
    """A frame with its tracked landmarks drawn on, fitted into a tile."""
    img = rgb.copy()
    if lm is not None and np.isfinite(lm).all():
        img, lm = _face_crop(img, lm)
        r = max(1, round(img.shape[1] / 220))
        for idx, colour in OVERLAY_GROUPS:
            for x, y in lm[list(idx), :2]:
                cv2.circle(img, (int(x), int(y)), r, colour, -1, cv2.LINE_AA)
    tile = _fit(img, TILE, TILE)
    _label(tile, label)
    return tile


def _face_crop(img: U8, lm: npt.NDArray[np.float32]) -> tuple[U8, npt.NDArray[np.float32]]:
    """A square around the face (twice its size) so small faces in wide shots show."""
    (x0, y0), (x1, y1) = lm[:, :2].min(axis=0), lm[:, :2].max(axis=0)
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
    h, w = img.shape[:2]
    a, b = int(max(cx - half, 0)), int(max(cy - half, 0))
    c, d = int(min(cx + half, w)), int(min(cy + half, h))
    out = lm.copy()
    out[:, 0] -= a
    out[:, 1] -= b
    return img[b:d, a:c], out


def _label(img: U8, text: str) -> None:
    cv2.rectangle(img, (0, 0), (img.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(img, text, (6, 16), FONT, 0.45, (255, 255, 255), 1, cv2.LINE_AA)


def coverage_plot(all_desc: npt.NDArray[np.float32], atlas: MouthAtlas) -> U8:
    """Aperture (up) against width (right): grey = every frame, red = atlas patches."""
    img = np.full((TILE, TILE, 3), 255, np.uint8)
    d = all_desc[np.isfinite(all_desc).all(axis=1)]
    lo = np.minimum(d[:, :2].min(axis=0), atlas.descriptors[:, :2].min(axis=0))
    hi = np.maximum(d[:, :2].max(axis=0), atlas.descriptors[:, :2].max(axis=0))

    def xy(v: npt.NDArray[np.float32]) -> npt.NDArray[np.int32]:
        n = (v[:, [1, 0]] - lo[[1, 0]]) / np.maximum(hi[[1, 0]] - lo[[1, 0]], 1e-6)
        return np.stack([20 + n[:, 0] * (TILE - 40), TILE - 20 - n[:, 1] * (TILE - 50)],
                        axis=1).astype(np.int32)

    for x, y in xy(d):
        cv2.circle(img, (int(x), int(y)), 2, (170, 170, 170), -1)
    for x, y in xy(atlas.descriptors):
        cv2.circle(img, (int(x), int(y)), 3, (220, 30, 30), -1)
    _label(img, "atlas coverage: aperture (up) x width")
    return img


def atlas_strip(atlas: MouthAtlas, n: int = 8) -> U8:
    """The atlas patches from closed to widest open, in one row."""
    order = np.argsort(atlas.descriptors[:, 0])
    pick = order[np.linspace(0, len(order) - 1, min(n, len(order))).astype(int)]
    w = TILE * 3 // n
    tiles = [_fit(atlas.patches[i], w, round(w * atlas.size[1] / atlas.size[0])) for i in pick]
    strip = np.concatenate(tiles, axis=1)
    return _fit(strip, TILE * 3, strip.shape[0])


def contact_sheet(frames: list[tuple[U8, npt.NDArray[np.float32] | None, str]],
                  all_desc: npt.NDArray[np.float32], atlas: MouthAtlas, title: str) -> U8:
    """Sample frames with landmarks, the coverage plot and an atlas strip, in one image."""
    tiles = [overlay(rgb, lm, label) for rgb, lm, label in frames[:5]]
    tiles.append(coverage_plot(all_desc, atlas))
    while len(tiles) < 6:
        tiles.append(np.full((TILE, TILE, 3), 24, np.uint8))
    rows = [np.concatenate(tiles[:3], axis=1), np.concatenate(tiles[3:6], axis=1)]
    strip = atlas_strip(atlas)
    head = np.full((34, TILE * 3, 3), 40, np.uint8)
    cv2.putText(head, title, (8, 23), FONT, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([head, *rows, strip], axis=0)


def save_png(img: U8, path: Path) -> None:
    """Write an RGB image as PNG."""
    if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")


def rows_for_table(quality: dict[str, Any]) -> list[tuple[str, str]]:
    """Flatten the manifest's quality section into (name, value) rows."""
    rows: list[tuple[str, str]] = []
    for key, value in quality.items():
        if isinstance(value, dict):
            rows.extend((f"{key}.{k}", _fmt(v)) for k, v in value.items())
        else:
            rows.append((key, _fmt(value)))
    return rows


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)
