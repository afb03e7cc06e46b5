"""The frame compositor (ARCHITECTURE.md §4): a base frame from the footage plus a mouth
patch from the atlas, chosen for closeness to the target descriptor and continuity with the
previous pick, aligned from stable landmarks, colour-matched, and blended with a feathered
lower-face mask that includes the jaw. The picked patch's lips are then nudged to the
target aperture (`_lip_shift`): the atlas holds a few hundred discrete mouths, and the
gap between the nearest one and the target would otherwise show as a coarser, noisier
mouth than the track asks for.

All per-frame work happens inside the lower-face box of the base frame; per-base-frame
geometry (alignment, box, skin colour) is computed once and cached."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from livetwin.avatar import face
from livetwin.avatar.atlas import WEIGHTS, MouthAtlas
from livetwin.render.footage import DEFAULT_MAX_SIDE, Footage

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
STAGES = ("select", "warp", "colour", "blend")
OWN = -1  # the pick "keep the base frame's own mouth"

# Selection cost, in weighted standardised descriptor units (atlas.WEIGHTS): distance to
# the target, plus CONTINUITY x distance to the previous pick, plus SWITCH_COST for a
# different patch (two near-equal patches would otherwise flicker), plus POSE_WEIGHT per
# degree of head-pose difference between patch source frame and base frame.
CONTINUITY = 0.3
SWITCH_COST = 0.1
POSE_WEIGHT = 0.02
# Look-ahead: when the next targets are known (a planned sentence), the pick is the first
# step of the cheapest path through the next LOOKAHEAD frames (Viterbi over the
# LOOKAHEAD_K nearest patches of each frame plus the previous pick), so a fast opening
# is met on time instead of being dragged behind by the continuity term.
LOOKAHEAD = 4
LOOKAHEAD_K = 8
# Lip shift: the picked patch's lower lip moves by the target's aperture less the
# patch's, at most LIP_SHIFT_MAX (IOD) wider and never closing more than LIP_CLOSE_MAX
# of its own gap. The displacement is full at the inner lower lip, ramps from zero at the
# upper lip across the opening, fades to zero at the chin, and across LIP_SHIFT_SPAN
# mouth-widths with a raised cosine; the upper lip, the jaw outline and the chin stay.
# Re-dub figures on fixed clones, last 18 %, 8 loop walks (target_r: rendered vs asked
# aperture; r: rendered vs real), without / with: woman_expressive target_r .944 / .970,
# r .716 / .716; tedlieu .911 / .945, .608 / .619; man_black_sweater r .586 / .598
# (target_r .913 / .948 on 4 walks); the oracle track's r (sweater, woman, ted) .973 /
# .981, .971 / .984, .905 / .930. A cap of 0.05 read the same on woman and ted.
LIP_SHIFT_MAX = 0.03
LIP_CLOSE_MAX = 0.7
LIP_SHIFT_SPAN = 1.6
LIP_SHIFT_MIN_PX = 0.25  # below this the patch is used as it is
# Mask geometry in interocular distances (IOD): the hull of the lower-face points over
# the footage, pulled in at the sides (the face outline stays the base frame's, so a
# patch from another head pose never ghosts against the background), extended below
# the chin, feathered with a Gaussian.
SIDE_PULL = 0.18
CHIN_EXTRA = 0.03
FEATHER_SIGMA = 0.05
LIP_GUARD = 0.08  # the colour statistics skip the mouth and this margin around it
GAIN_LIMITS = (0.85, 1.18)
TIMING_WINDOW = 10_000

NOSE_BASE = (98, 97, 2, 326, 327)
CHEEKS = (205, 425, 207, 427)
LOWER_JAW = face.JAW[3:-3]  # ear-level points left out: they sit beside the eyes
# Per-frame jaw clip: at the sides the blend stays inside both the base frame's and the
# patch's own jaw outline (point by point the one nearer the face centre), pulled in by
# JAW_ERODE and feathered by JAW_FEATHER (IOD), so a patch from another head pose or jaw
# position never paints its jaw edge (beard against neck) inside the base face. Around
# the chin (weight falling off over JAW_CHIN_SPAN points) the patch's own outline plus
# JAW_CHIN_EXTRA wins, so an opened jaw still extends down and a closed patch never
# paints its neck over a lower base chin.
CLIP_JAW = face.JAW[1:-1]
JAW_ERODE = 0.05
JAW_FEATHER = 0.03
JAW_CHIN_SPAN = 6.0
JAW_CHIN_EXTRA = 0.03


@dataclass(frozen=True)
class _BaseGeom:
    """Per-base-frame placement: the ROI box in the frame, the affine taking the cropped
    canonical patch into the ROI, and the skin colour (mean, std) of the base frame."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1
    m_roi: F32
    mean: F32
    std: F32
    jaw: F32  # (len(CLIP_JAW), 2) the base frame's jaw outline in patch-crop pixels


class Compositor:
    """Renders base frame + target mouth descriptor -> RGB frame (see module doc)."""

    def __init__(self, bundle_dir: Path, *, max_side: int = DEFAULT_MAX_SIDE,
                 footage: Footage | None = None, allow_own: bool = True) -> None:
        self.footage = footage or Footage.load(bundle_dir, max_side=max_side)
        self.atlas = MouthAtlas.load(bundle_dir / "atlas.jpg", bundle_dir / "atlas.npz")
        with np.load(bundle_dir / "track.npz") as z:
            self._pose = np.nan_to_num(z["pose"][:, :2].astype(np.float32))
        self.canonical = face.CanonicalFrame(self.atlas.canonical_ref, self.atlas.size,
                                             self.atlas.iod)
        self.allow_own = allow_own
        fp = self.footage
        ok = fp.usable & np.isfinite(fp.mouth).all(axis=1)
        self._mu = np.nanmean(fp.mouth[ok], axis=0).astype(np.float32)
        self._w = (WEIGHTS / (np.nanstd(fp.mouth[ok], axis=0) + 1e-6)).astype(np.float32)
        self._z_atlas = self._z(self.atlas.descriptors)
        self._patch_pose = self._pose[self.atlas.frames]
        self._m = _transforms(self.canonical, fp.landmarks, ok)
        lm_c = _canonical_points(self._m, fp.landmarks, ok, self.atlas.landmarks)
        self._mask, self._ring, self._crop = _masks(lm_c, self.canonical)
        self._rgba, self._p_mean, self._p_std = self._prepare_patches()
        cx0, cy0, cx1, cy1 = self._crop
        self._mask_crop = np.ascontiguousarray(self._mask[cy0:cy1, cx0:cx1])
        self._patch_jaw = (self.atlas.landmarks[:, list(CLIP_JAW), :2]
                           - np.array([cx0, cy0], np.float32)).astype(np.float32)
        self._lip_rows, self._lip_cols = self._lip_profiles()
        h, w = cy1 - cy0, cx1 - cx0
        self._grid_x = np.ascontiguousarray(
            np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w)))
        self._grid_y = np.ascontiguousarray(
            np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)))
        self._jaw_centre = np.array(
            [float(np.median(lm_c[:, face.LIP_INNER_UP, 0])) - cx0,
             float(np.nanmedian(lm_c[:, list(NOSE_BASE), 1])) - cy0], np.float32)
        k = np.arange(len(CLIP_JAW)) - CLIP_JAW.index(face.CHIN)
        self._chin_w = (0.5 + 0.5 * np.cos(np.pi * np.clip(np.abs(k) / JAW_CHIN_SPAN, 0.0, 1.0))
                        ).astype(np.float32)
        self._geom: dict[int, _BaseGeom | None] = {}
        self._prev = OWN
        self._prev_z = np.zeros(4, np.float32)
        self.times: dict[str, deque[float]] = {s: deque(maxlen=TIMING_WINDOW) for s in STAGES}
        self.picks: deque[int] = deque(maxlen=TIMING_WINDOW)

    def reset(self) -> None:
        """Forget the previous pick (a cut: the next frame has no continuity)."""
        self._prev = OWN
        self._prev_z = np.zeros(4, np.float32)

    def render(self, base_index: int, target: F32, upcoming: F32 | None = None) -> U8:
        """The base frame `base_index` with the mouth shape `target` (4-vector);
        `upcoming` (m, 4), the targets of the next frames when known, lets the patch
        choice look ahead (LOOKAHEAD)."""
        t0 = time.perf_counter()
        base = self.footage.frame(base_index)
        geom = self._base_geom(base_index)
        pick = self._select(base_index, target, geom is not None, upcoming)
        t1 = time.perf_counter()
        self.picks.append(pick)
        if pick == OWN or geom is None:
            out = base.copy()
            for s, v in zip(STAGES, ((t1 - t0) * 1e3, 0.0, 0.0, 0.0), strict=True):
                self.times[s].append(v)
            return out
        lut = _colour_lut(self._p_mean[pick], self._p_std[pick], geom.mean, geom.std)
        patch = cv2.LUT(self._rgba[pick], lut)
        patch[..., 3] = self._alpha(geom.jaw, self._patch_jaw[pick])
        t2 = time.perf_counter()
        patch = self._lip_shift(patch, pick, float(np.nan_to_num(target[0])))
        x0, y0, x1, y1 = geom.box
        warped = cv2.warpAffine(patch, geom.m_roi, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        t3 = time.perf_counter()
        out = base.copy()
        alpha = warped[..., 3].astype(np.float32) * np.float32(1 / 255)
        roi = out[y0:y1, x0:x1]
        roi[:] = cv2.blendLinear(np.ascontiguousarray(warped[..., :3]), roi, alpha,
                                 1.0 - alpha)
        t4 = time.perf_counter()
        for s, v in zip(STAGES, (t1 - t0, t3 - t2, t2 - t1, t4 - t3), strict=True):
            self.times[s].append(v * 1e3)
        return out

    def mask_at(self, base_index: int) -> tuple[tuple[int, int, int, int], F32] | None:
        """The blend mask in frame pixels: (ROI box, alpha (h, w) in [0, 1]), or None
        where the base frame has no usable face. This is the static envelope; each
        render narrows it by the jaw clip of its pick (CLIP_JAW)."""
        geom = self._base_geom(base_index)
        if geom is None:
            return None
        x0, y0, x1, y1 = geom.box
        alpha = cv2.warpAffine(self._mask_crop, geom.m_roi, (x1 - x0, y1 - y0),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        return geom.box, alpha

    def timing(self) -> dict[str, dict[str, float]]:
        """Per-stage and total ms per frame: p50 and p99 over the recent frames."""
        out: dict[str, dict[str, float]] = {}
        if not self.times["select"]:
            return out
        arr = {s: np.array(self.times[s]) for s in STAGES}
        arr["total"] = sum(arr.values())  # type: ignore[assignment]
        for s, a in arr.items():
            out[s] = {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99))}
        return out

    # -- internals --------------------------------------------------------------------

    def _z(self, desc: F32) -> F32:
        return ((np.nan_to_num(desc) - self._mu) * self._w).astype(np.float32)

    def _select(self, base_index: int, target: F32, can_paste: bool,
                upcoming: F32 | None = None) -> int:
        zt = self._z(np.asarray(target, np.float32))
        own_ok = self.allow_own and bool(self.footage.usable[base_index])
        if not can_paste:
            pick, z = OWN, self._z(self.footage.mouth[base_index]) if own_ok else zt
            self._prev, self._prev_z = pick, z
            return pick
        za = self._z_atlas
        pose = POSE_WEIGHT * np.linalg.norm(self._patch_pose - self._pose[base_index], axis=1)
        cost = (np.linalg.norm(za - zt, axis=1)
                + CONTINUITY * np.linalg.norm(za - self._prev_z, axis=1)
                + SWITCH_COST * (np.arange(len(za)) != self._prev)
                + pose)
        pick = int(np.argmin(cost))
        if upcoming is not None and len(upcoming):
            zs = np.concatenate([zt[None], self._z(np.asarray(upcoming[:LOOKAHEAD], np.float32))])
            pick = self._lookahead(zs, pose, cost)
        z = za[pick]
        if own_ok:
            zo = self._z(self.footage.mouth[base_index])
            own = (float(np.linalg.norm(zo - zt))
                   + CONTINUITY * float(np.linalg.norm(zo - self._prev_z))
                   + SWITCH_COST * (self._prev != OWN))
            if own <= cost[pick]:
                pick, z = OWN, zo
        self._prev, self._prev_z = pick, z
        return pick

    def _lookahead(self, zs: F32, pose: F32, first: F32) -> int:
        """First pick of the cheapest patch path for the targets `zs` (m, 4), `first`
        being the full cost of each patch for the current frame (see LOOKAHEAD)."""
        za = self._z_atlas
        d = np.linalg.norm(za[None, :, :] - zs[:, None, :], axis=2) + pose[None]  # (m, n)
        k = min(LOOKAHEAD_K, len(za) - 1)
        cand = np.argpartition(d, k, axis=1)[:, :k].ravel()
        cand = np.unique(np.concatenate([cand, [self._prev]] if self._prev >= 0 else [cand]))
        zc = za[cand]
        trans = (CONTINUITY * np.linalg.norm(zc[:, None] - zc[None], axis=2)
                 + SWITCH_COST * (1.0 - np.eye(len(cand), dtype=np.float32)))
        acc = first[cand]
        back = []
        for t in range(1, len(zs)):
            step = acc[:, None] + trans  # (from, to)
            arg = np.argmin(step, axis=0)
            back.append(arg)
            acc = step[arg, np.arange(len(cand))] + d[t, cand]
        j = int(np.argmin(acc))
        for arg in reversed(back):
            j = int(arg[j])
        return int(cand[j])

    def _lip_profiles(self) -> tuple[F32, F32]:
        """Per patch, the lip shift's displacement (see LIP_SHIFT_MAX) for a 1 px move, as
        a row profile (k, crop h) times a column profile (k, crop w): 0 above the upper
        inner lip, rising to 1 at the lower inner lip, back to 0 at the chin; a raised
        cosine across LIP_SHIFT_SPAN mouth-widths."""
        cx0, cy0, cx1, cy1 = self._crop
        lm = self.atlas.landmarks
        up = lm[:, face.LIP_INNER_UP, 1:2] - cy0
        down = lm[:, face.LIP_INNER_DOWN, 1:2] - cy0
        chin = lm[:, face.CHIN, 1:2] - cy0
        left, right = lm[:, face.MOUTH_CORNER_L, 0:1], lm[:, face.MOUTH_CORNER_R, 0:1]
        centre = 0.5 * (left + right) - cx0
        half = np.maximum(0.5 * LIP_SHIFT_SPAN * np.abs(right - left), 1.0)
        y = np.arange(cy1 - cy0, dtype=np.float32)[None, :]
        x = np.arange(cx1 - cx0, dtype=np.float32)[None, :]
        rows = np.where(y < down, (y - up) / np.maximum(down - up, 1.0),
                        (chin - y) / np.maximum(chin - down, 1.0))
        cols = 0.5 + 0.5 * np.cos(np.pi * np.minimum(np.abs(x - centre) / half, 1.0))
        return (np.clip(rows, 0.0, 1.0).astype(np.float32), cols.astype(np.float32))

    def _lip_shift(self, patch: U8, pick: int, aperture: float) -> U8:
        """`patch` (RGBA, crop) with its lower lip moved so its aperture is `aperture`
        (see LIP_SHIFT_MAX); the patch itself where the change is under a pixel's
        fraction."""
        own = float(self.atlas.descriptors[pick, 0])
        delta = min(max(aperture - own, -LIP_CLOSE_MAX * max(own, 0.0)), LIP_SHIFT_MAX)
        shift_px = delta * self.canonical.iod
        if not abs(shift_px) >= LIP_SHIFT_MIN_PX:
            return patch
        map_y = self._grid_y - np.float32(shift_px) * np.outer(self._lip_rows[pick],
                                                                self._lip_cols[pick])
        return cv2.remap(patch, self._grid_x, map_y, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)

    def _alpha(self, base_jaw: F32, patch_jaw: F32) -> U8:
        """The blend alpha (crop h, w) uint8 for one base frame and one patch: the static
        lower-face mask times the feathered jaw clip (see CLIP_JAW)."""
        c = self._jaw_centre
        iod = self.canonical.iod
        db = base_jaw - c
        dp = patch_jaw - c
        nb, np_ = np.linalg.norm(db, axis=1), np.linalg.norm(dp, axis=1)
        inner = np.where((nb <= np_)[:, None], base_jaw, patch_jaw)
        d = inner - c
        n = np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-3)
        inner = c + d * np.maximum(1.0 - JAW_ERODE * iod / n, 0.0)
        own = patch_jaw + np.array([0.0, JAW_CHIN_EXTRA * iod], np.float32)
        w = self._chin_w[:, None]
        pts = w * own + (1.0 - w) * inner
        h, wd = self._mask_crop.shape
        poly = np.concatenate([[[pts[0, 0], -wd]], pts, [[pts[-1, 0], -wd]]])
        clip = np.zeros((h, wd), np.float32)
        cv2.fillPoly(clip, [np.round(poly).astype(np.int32)], 1.0)
        clip = cv2.GaussianBlur(clip, (0, 0), JAW_FEATHER * iod)
        return np.round(clip * self._mask_crop * 255.0).astype(np.uint8)

    def _prepare_patches(self) -> tuple[U8, F32, F32]:
        cx0, cy0, cx1, cy1 = self._crop
        alpha = np.round(self._mask[cy0:cy1, cx0:cx1] * 255).astype(np.uint8)
        patches = self.atlas.patches[:, cy0:cy1, cx0:cx1]
        rgba = np.concatenate(
            [patches, np.broadcast_to(alpha[None, :, :, None], (*patches.shape[:3], 1))],
            axis=3)
        ring = self._ring[cy0:cy1, cx0:cx1]
        skin = patches[:, ring].astype(np.float32)  # (k, m, 3)
        return (np.ascontiguousarray(rgba), skin.mean(axis=1).astype(np.float32),
                skin.std(axis=1).astype(np.float32))

    def _base_geom(self, i: int) -> _BaseGeom | None:
        if i in self._geom:
            return self._geom[i]
        geom = None
        m = self._m[i]
        if np.isfinite(m).all():
            geom = self._place(i, m)
        self._geom[i] = geom
        return geom

    def _place(self, i: int, m: F32) -> _BaseGeom | None:
        frame = self.footage.frame(i)
        h, w = frame.shape[:2]
        inv = cv2.invertAffineTransform(m)
        cx0, cy0, cx1, cy1 = self._crop
        corners = np.array([[cx0, cy0], [cx1, cy0], [cx0, cy1], [cx1, cy1]], np.float32)
        pts = face.apply_affine(inv, corners)
        x0, y0 = np.maximum(np.floor(pts.min(axis=0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(pts.max(axis=0)).astype(int) + 1, (w, h))
        if x1 - x0 < 4 or y1 - y0 < 4:
            return None
        m_roi = inv.copy()
        m_roi[:, 2] += inv[:, :2] @ np.array([cx0, cy0], np.float32) - np.array([x0, y0])
        canon = self.canonical.warp(frame, m)
        skin = canon[self._ring].astype(np.float32)
        jaw = (face.apply_affine(m, self.footage.landmarks[i, list(CLIP_JAW), :2])
               - np.array([cx0, cy0], np.float32))
        return _BaseGeom((int(x0), int(y0), int(x1), int(y1)), m_roi.astype(np.float32),
                         skin.mean(axis=0).astype(np.float32), skin.std(axis=0).astype(np.float32),
                         jaw.astype(np.float32))


def _transforms(canonical: face.CanonicalFrame, landmarks: F32, ok: npt.NDArray[np.bool_]
                ) -> F32:
    """Image -> canonical similarity per frame (NaN where the face is unusable)."""
    out = np.full((len(landmarks), 2, 3), np.nan, np.float32)
    for i in np.flatnonzero(ok):
        try:
            out[i] = canonical.transform(landmarks[i])
        except ValueError:
            continue
    return out


def _canonical_points(m: F32, landmarks: F32, ok: npt.NDArray[np.bool_], atlas_lm: F32) -> F32:
    """Canonical (patch-pixel) landmarks of every usable base frame and every patch."""
    good = ok & np.isfinite(m).all(axis=(1, 2))
    lm = landmarks[good, :, :2]
    mm = m[good]
    base = np.einsum("nij,nkj->nki", mm[:, :, :2], lm) + mm[:, None, :, 2]
    return np.concatenate([base, atlas_lm[:, :, :2]], axis=0).astype(np.float32)


def _hull(lm_c: F32, idx: tuple[int, ...], lo: float, hi: float) -> F32:
    """Hull corners of the percentile boxes of points `idx` over all faces."""
    pts = lm_c[:, list(idx)]
    a, b = np.nanpercentile(pts, lo, axis=0), np.nanpercentile(pts, hi, axis=0)
    corners = np.concatenate([a, b, np.stack([a[:, 0], b[:, 1]], 1),
                              np.stack([b[:, 0], a[:, 1]], 1)])
    return cv2.convexHull(corners.astype(np.float32)).reshape(-1, 2)


def _masks(lm_c: F32, canonical: face.CanonicalFrame
           ) -> tuple[F32, npt.NDArray[np.bool_], tuple[int, int, int, int]]:
    """Feathered lower-face mask (h, w) in [0, 1], the skin ring for colour statistics,
    and the crop box of the mask's support in the patch."""
    w, h = canonical.size
    iod = canonical.iod
    sigma = FEATHER_SIGMA * iod
    margin = 3.0 * sigma
    # The sides follow the typical face (10-90 %), the chin the most open jaw (98 %), so
    # an open base mouth never shows through a closed patch.
    hull = _hull(lm_c, NOSE_BASE + CHEEKS + LOWER_JAW, 10, 90)
    cx = float(np.median(lm_c[:, face.LIP_INNER_UP, 0]))
    hull[:, 0] = cx + (hull[:, 0] - cx) * (1.0 - SIDE_PULL)
    lowest = hull[:, 1] >= np.percentile(hull[:, 1], 70)
    chin = float(np.nanpercentile(lm_c[:, face.CHIN, 1], 98))
    hull[lowest, 1] = np.maximum(hull[lowest, 1], chin) + CHIN_EXTRA * iod
    hull[:, 1] = np.maximum(hull[:, 1], np.nanpercentile(lm_c[:, list(NOSE_BASE), 1], 98)
                            + 0.02 * iod)
    hull = np.clip(hull, [margin, margin], [w - 1 - margin, h - 1 - margin])
    binary = np.zeros((h, w), np.float32)
    cv2.fillPoly(binary, [np.round(hull).astype(np.int32)], 1.0)
    mask = cv2.GaussianBlur(binary, (0, 0), sigma)
    mask[mask < 1e-3] = 0.0
    lips = np.zeros((h, w), np.uint8)
    cv2.fillPoly(lips, [np.round(_hull(lm_c, face.OUTER_LIP, 2, 98)).astype(np.int32)], 1)
    guard = max(1, round(LIP_GUARD * iod))
    lips = cv2.dilate(lips, np.ones((2 * guard + 1, 2 * guard + 1), np.uint8))
    jaw = np.zeros((h, w), np.uint8)
    cv2.fillPoly(jaw, [np.round(_hull(lm_c, NOSE_BASE + LOWER_JAW, 45, 55)).astype(np.int32)], 1)
    ring = (mask > 0.5) & (lips == 0) & (jaw > 0)
    if ring.sum() < 20:
        ring = mask > 0.5
    ys, xs = np.nonzero(mask)
    return mask, ring, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _colour_lut(p_mean: F32, p_std: F32, b_mean: F32, b_std: F32) -> U8:
    """A (1, 256, 4) lookup table moving the patch's skin colour onto the base frame's
    (per-channel mean and, within limits, contrast); alpha passes through."""
    gain = np.clip(b_std / np.maximum(p_std, 1.0), *GAIN_LIMITS)
    x = np.arange(256, dtype=np.float32)[:, None]
    rgb = (x - p_mean) * gain + b_mean
    lut = np.concatenate([rgb, x], axis=1)
    return np.clip(np.round(lut), 0, 255).astype(np.uint8)[None]
