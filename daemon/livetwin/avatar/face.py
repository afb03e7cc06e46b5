"""Face geometry shared by clone, lip sync and rendering: landmark indices, the mouth
descriptor of ARCHITECTURE.md §4, and the canonical face-aligned frame.

Landmarks are mediapipe face mesh (refined, 478 points) in pixel units: x, y in image
pixels, z in the same scale as x (mediapipe's convention), smaller z = closer to camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

N_LANDMARKS = 478
EYE_OUTER_L, EYE_OUTER_R = 33, 263
LIP_INNER_UP, LIP_INNER_DOWN = 13, 14
LIP_OUTER_UP, LIP_OUTER_DOWN = 0, 17
MOUTH_CORNER_L, MOUTH_CORNER_R = 61, 291
NOSE_TIP, CHIN = 1, 152
# Inner lip contour, in order around the mouth opening.
INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415,
             308, 324, 318, 402, 317, 14, 87, 178, 88, 95)  # fmt: skip
# Outer lip contour, in order.
OUTER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409,
             291, 375, 321, 405, 314, 17, 84, 181, 91, 146)  # fmt: skip
# Points that do not move when a person speaks: eye corners and the nose ridge.
STABLE = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 98, 327)
# Jaw line from ear to ear below the mouth (for the lower-face mask).
JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
       377, 400, 378, 379, 365, 397, 288, 361, 323, 454)  # fmt: skip

DESCRIPTOR_NAMES = ("aperture", "width", "rounding", "teeth")


def interocular(lm: F32) -> float | F32:
    """Distance between the outer eye corners (face size unit); works on (..., 478, 3)."""
    d = lm[..., EYE_OUTER_L, :2] - lm[..., EYE_OUTER_R, :2]
    return np.linalg.norm(d, axis=-1)


def mouth_geometry(lm: F32) -> F32:
    """Geometric part of the descriptor for landmarks (..., 478, 3): columns
    aperture, width, rounding (teeth is filled in from pixels, see `teeth_visibility`).

    - aperture: inner-lip gap (13-14) / interocular distance
    - width: mouth corner distance (61-291) / interocular distance
    - rounding: lip protrusion, depth of the lip centres (0, 17) in front of the mouth
      corners, / interocular distance (pursed, rounded lips push forward)
    """
    iod = np.maximum(interocular(lm), 1e-6)
    ap = np.linalg.norm(lm[..., LIP_INNER_UP, :2] - lm[..., LIP_INNER_DOWN, :2], axis=-1)
    wd = np.linalg.norm(lm[..., MOUTH_CORNER_L, :2] - lm[..., MOUTH_CORNER_R, :2], axis=-1)
    corners_z = 0.5 * (lm[..., MOUTH_CORNER_L, 2] + lm[..., MOUTH_CORNER_R, 2])
    centre_z = 0.5 * (lm[..., LIP_OUTER_UP, 2] + lm[..., LIP_OUTER_DOWN, 2])
    rnd = corners_z - centre_z
    return np.stack([ap / iod, wd / iod, rnd / iod], axis=-1).astype(np.float32)


def teeth_visibility(rgb: npt.NDArray[np.uint8], lm: F32) -> float:
    """Share of the mouth opening (inner-lip polygon) covered by teeth-like pixels:
    bright and unsaturated relative to the lips around them. 0 when the mouth is closed."""
    poly = np.round(lm[list(INNER_LIP), :2]).astype(np.int32)
    x0, y0 = np.maximum(poly.min(axis=0), 0)
    x1, y1 = poly.max(axis=0) + 1
    x1, y1 = min(x1, rgb.shape[1]), min(y1, rgb.shape[0])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0.0
    crop = rgb[y0:y1, x0:x1]
    mask = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(mask, [poly - np.array([x0, y0], np.int32)], 1)
    inside = mask.astype(bool)
    if inside.sum() < 4:
        return 0.0
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
    sat, val = hsv[..., 1].astype(np.float32), hsv[..., 2].astype(np.float32)
    # Teeth are brighter and less saturated than lips/skin of the same face.
    lip_poly = np.round(lm[list(OUTER_LIP), :2]).astype(np.int32)
    lip_val = _polygon_mean(hsv[..., 2], lip_poly - np.array([x0, y0], np.int32), inside)
    teeth = inside & (sat < 90) & (val > max(lip_val * 1.15, 90.0))
    return float(teeth.sum()) / float(inside.sum())


def _polygon_mean(channel: npt.NDArray[np.uint8], poly: npt.NDArray[np.int32],
                  exclude: npt.NDArray[np.bool_]) -> float:
    mask = np.zeros(channel.shape, np.uint8)
    cv2.fillPoly(mask, [poly], 1)
    ring = mask.astype(bool) & ~exclude
    return float(channel[ring].mean()) if ring.any() else 128.0


@dataclass(frozen=True)
class CanonicalFrame:
    """A face-aligned frame for lower-face patches: the stable landmarks of a reference
    face, scaled so the interocular distance is `iod` pixels, and the patch box."""

    stable_ref: F32  # (len(STABLE), 2) reference positions in patch pixels
    size: tuple[int, int]  # (width, height) of a patch
    iod: float

    @classmethod
    def from_landmarks(cls, lm: F32, iod: float) -> CanonicalFrame:
        """Build the frame from one (typical) face: eye line horizontal, IOD = `iod`."""
        left, right = lm[EYE_OUTER_L, :2], lm[EYE_OUTER_R, :2]
        centre = 0.5 * (left + right)
        d = right - left
        scale = iod / float(np.linalg.norm(d))
        ang = -np.arctan2(d[1], d[0])
        rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]]) * scale
        # Patch box relative to the eye midpoint, in IOD units: from the nostrils to
        # below the chin with room for an open jaw, cheek to cheek. Measured on three
        # clips: nose base at 0.3-0.57, chin at 1.18-1.43, cheeks at -0.92..0.93 IOD.
        w, h = round(2.0 * iod), round(1.5 * iod)
        w, h = w + w % 2, h + h % 2
        origin = np.array([-1.0 * iod, 0.3 * iod])
        pts = (lm[list(STABLE), :2] - centre) @ rot.T - origin
        return cls(stable_ref=pts.astype(np.float32), size=(w, h), iod=float(iod))

    def transform(self, lm: F32) -> F32:
        """2x3 similarity transform taking image pixels of this face into patch pixels."""
        src = lm[list(STABLE), :2].astype(np.float32)
        m, _ = cv2.estimateAffinePartial2D(src, self.stable_ref, method=cv2.LMEDS)
        if m is None:
            raise ValueError("cannot align face")
        return m.astype(np.float32)

    def warp(self, rgb: npt.NDArray[np.uint8], m: F32) -> npt.NDArray[np.uint8]:
        """Cut the lower-face patch out of a frame with transform `m`."""
        out = cv2.warpAffine(rgb, m, self.size, flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        return out


def apply_affine(m: F32, pts: F32) -> F32:
    """Apply a 2x3 affine to (..., 2) points."""
    return (pts[..., :2] @ m[:, :2].T + m[:, 2]).astype(np.float32)
