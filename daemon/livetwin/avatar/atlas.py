"""The mouth atlas: a compact set of lower-face patches in the canonical face-aligned
frame that covers the person's range of mouth shapes, each with its descriptor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from livetwin.avatar import face

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
GRID_COLS = 16
JPEG_QUALITY = 92
# Shape dimensions that decide which patch fits a target; teeth weigh less because the
# renderer can take teeth from any patch of the right opening.
WEIGHTS = np.array([1.0, 0.6, 0.4, 0.3], np.float32)


@dataclass(frozen=True)
class MouthAtlas:
    """Patches (k, h, w, 3) with descriptors (k, 4), their source frames, and the
    canonical landmarks of each patch (k, 478, 2) in patch pixels."""

    patches: U8
    descriptors: F32
    frames: npt.NDArray[np.int32]
    landmarks: F32
    canonical_ref: F32
    iod: float

    @property
    def size(self) -> tuple[int, int]:
        return int(self.patches.shape[2]), int(self.patches.shape[1])

    def save(self, image_path: Path, data_path: Path) -> None:
        """Write the patches as one JPEG sprite sheet and the numbers as .npz."""
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(_sheet(self.patches), cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OSError("cannot encode the atlas image")
        image_path.write_bytes(buf.tobytes())
        with data_path.open("wb") as fh:
            np.savez_compressed(
                fh, descriptors=self.descriptors, frames=self.frames,
                landmarks=self.landmarks.astype(np.float16), canonical_ref=self.canonical_ref,
                iod=np.float32(self.iod), count=np.int32(len(self.frames)),
                patch_size=np.array(self.size, np.int32),
            )

    @classmethod
    def load(cls, image_path: Path, data_path: Path) -> MouthAtlas:
        """Read an atlas written by `save`."""
        with np.load(data_path) as z:
            count, (w, h) = int(z["count"]), z["patch_size"]
            sheet = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            if sheet is None:
                raise OSError(f"cannot read {image_path}")
            patches = _unsheet(cv2.cvtColor(sheet, cv2.COLOR_BGR2RGB), count, int(w), int(h))
            return cls(patches, z["descriptors"], z["frames"],
                       z["landmarks"].astype(np.float32), z["canonical_ref"], float(z["iod"]))


def _sheet(patches: U8) -> U8:
    k, h, w, _ = patches.shape
    rows = -(-k // GRID_COLS)
    sheet = np.zeros((rows * h, GRID_COLS * w, 3), np.uint8)
    for i, p in enumerate(patches):
        r, c = divmod(i, GRID_COLS)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = p
    return sheet


def _unsheet(sheet: U8, count: int, w: int, h: int) -> U8:
    out = np.empty((count, h, w, 3), np.uint8)
    for i in range(count):
        r, c = divmod(i, GRID_COLS)
        out[i] = sheet[r * h : (r + 1) * h, c * w : (c + 1) * w]
    return out


def mouth_sharpness(patch: U8, lm_c: F32) -> float:
    """Laplacian variance around the mouth: low for motion-blurred frames."""
    pts = lm_c[list(face.OUTER_LIP)]
    x0, y0 = np.maximum(pts.min(axis=0).astype(int) - 4, 0)
    x1, y1 = pts.max(axis=0).astype(int) + 4
    crop = cv2.cvtColor(patch[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(crop, cv2.CV_32F).var()) if crop.size else 0.0


def select_patches(desc: F32, quality: F32, k: int) -> npt.NDArray[np.int64]:
    """Pick up to `k` frames covering descriptor space: farthest-point sampling in the
    weighted, standardised descriptor space, seeded with the most neutral closed mouth,
    skipping the blurriest quarter of frames."""
    n = len(desc)
    if n <= k:
        return np.arange(n)
    z = (desc - desc.mean(axis=0)) / (desc.std(axis=0) + 1e-6) * WEIGHTS
    ok = quality >= np.percentile(quality, 25)
    cand = np.flatnonzero(ok)
    neutral = cand[np.argmin(np.abs(z[cand] - np.median(z[cand], axis=0)).sum(axis=1)
                             + np.abs(desc[cand, 0] - desc[cand, 0].min()) * 10)]
    chosen = [int(neutral)]
    dist = np.linalg.norm(z[cand] - z[neutral], axis=1)
    # Half by farthest-point (extremes), half by density (common shapes get neighbours).
    while len(chosen) < k // 2:
        j = int(np.argmax(dist))
        chosen.append(int(cand[j]))
        dist = np.minimum(dist, np.linalg.norm(z[cand] - z[cand[j]], axis=1))
    rest = np.setdiff1d(cand, chosen)
    step = max(len(rest) // (k - len(chosen)), 1)
    order = rest[np.argsort(z[rest, 0], kind="stable")]
    chosen.extend(int(i) for i in order[::step][: k - len(chosen)])
    return np.array(sorted(set(chosen)))


def build_atlas(patches: list[U8 | None], mouth: F32, landmarks: F32, usable: npt.NDArray[
        np.bool_], canonical: face.CanonicalFrame, k: int) -> MouthAtlas:
    """Build the atlas from the tracking pass."""
    idx = np.flatnonzero(usable & np.array([p is not None for p in patches]))
    lm_c, quality = [], []
    for i in idx:
        m = canonical.transform(landmarks[i])
        c = face.apply_affine(m, landmarks[i, :, :2])
        lm_c.append(c)
        quality.append(mouth_sharpness(patches[i], c))
    sel = select_patches(mouth[idx], np.array(quality, np.float32), k)
    frames = idx[sel]
    return MouthAtlas(
        patches=np.stack([patches[i] for i in frames]),
        descriptors=mouth[frames].astype(np.float32),
        frames=frames.astype(np.int32),
        landmarks=np.stack([lm_c[j] for j in sel]).astype(np.float32),
        canonical_ref=canonical.stable_ref,
        iod=canonical.iod,
    )


def coverage(atlas_desc: F32, all_desc: F32, radius: float = 0.5) -> float:
    """Share of all tracked frames whose mouth shape has an atlas patch within `radius`
    (in standardised, weighted descriptor units)."""
    mu, sd = all_desc.mean(axis=0), all_desc.std(axis=0) + 1e-6
    a = (atlas_desc - mu) / sd * WEIGHTS
    b = (all_desc - mu) / sd * WEIGHTS
    d = np.sqrt(((b[:, None, :] - a[None, :, :]) ** 2).sum(-1)).min(axis=1)
    return float(np.mean(d <= radius))
