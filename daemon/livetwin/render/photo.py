"""The photo animator: one portrait brought to life by landmark-driven mesh warping.

Per frame the face-mesh landmarks of the portrait are displaced:
- mouth, from the 4-vector target (avatar.face.mouth_geometry) relative to the photo's
  own mouth (its rest shape): aperture drops the jaw (lower lip, chin and jaw line, most
  at the chin, nothing at the ears) and lifts the upper lip a little; width moves the
  corners; rounding purses (narrower, fuller lips);
- eyelids: blinks every 2-6 s (150-250 ms), the upper lid and the skin above it slide
  down over the eye, the lower lid rises a little;
- head: a small smooth sway (1-2 px and about a degree, smooth noise; more while
  speaking) and breathing, fading out over a ring around the head so the background and
  the body stay still.

The piecewise-affine warp is computed only for the triangles that moved, as a dense map
(rasterised triangle ids -> per-triangle affine, on a grid of 1-2 px) inside their
bounding box and applied with cv2.remap. The mouth opening between the inner lip
contours is then painted: a dark, shaded oral cavity, an upper-teeth band whose height
follows the teeth component, a hint of lower teeth and tongue. With the rest target, eyes
open and no sway nothing moves and the frame is the photo itself.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from livetwin.avatar import bundle, face
from livetwin.avatar import photo as photo_avatar

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
TIMING_WINDOW = 10_000
UPPER_SHARE = 0.3  # share of an opening done by the upper lip (the rest: jaw)
BLINK_EVERY = (2.0, 6.0)  # seconds between blinks
BLINK_LENGTH = (0.15, 0.25)  # seconds
SWAY_DEG, SWAY_IOD = (0.7, 1.4), (0.012, 0.025)  # (idle, speaking) amplitude
BREATH_PERIOD_S, BREATH_IOD = 4.2, 0.006
MOVED_PX = 0.05  # a point moved less than this counts as still (far below a visible shift)
LIP_MIN_GAP = 0.4  # px; closed lips keep this seam (no zero-area triangles)
MIN_AREA = 0.05  # px^2; thinner triangles are not rasterised


def _smoothstep(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class _Noise:
    """Smooth 1-D noise: a few sines with random frequencies and phases, range ~[-1, 1]."""

    def __init__(self, rng: np.random.Generator, f_lo: float, f_hi: float, n: int = 3) -> None:
        self.f = rng.uniform(f_lo, f_hi, n)
        self.ph = rng.uniform(0, 2 * np.pi, n)
        self.a = rng.uniform(0.5, 1.0, n)
        self.a /= self.a.sum()

    def __call__(self, t: float) -> float:
        return float(np.sum(self.a * np.sin(2 * np.pi * self.f * t + self.ph)))


class PhotoAnimator:
    """A photo avatar as a frame source (render.engine.TwinSource)."""

    def __init__(self, bundle_dir: Path, *, max_side: int, fps: float, seed: int = 0) -> None:
        bundle.load(bundle_dir)
        bgr = cv2.imread(str(bundle_dir / photo_avatar.PORTRAIT), cv2.IMREAD_COLOR)
        if bgr is None:
            from livetwin.errors import BundleError

            raise BundleError(f"{bundle_dir / photo_avatar.PORTRAIT} is unreadable; clone the "
                              "avatar again.")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        with np.load(bundle_dir / photo_avatar.DATA) as data:
            lm = data["landmarks"].astype(np.float32)
            points = data["points"].astype(np.float32)
            self.tris = data["triangles"].astype(np.int32)
            levels = data["levels"].astype(np.float32)
            self.rest_mouth = data["mouth"].astype(np.float32)
        h, w = rgb.shape[:2]
        s = min(1.0, max_side / max(h, w))
        if s < 1.0:
            rgb = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
            lm = lm * np.float32(s)
            points = points * np.float32(s)
        self.photo: U8 = np.ascontiguousarray(rgb)
        self.h, self.w = self.photo.shape[:2]
        self.lm = lm
        self.rest = points.astype(np.float64)
        self.levels = levels
        self.fps = float(fps)
        self.rng = np.random.default_rng(seed)
        self.iod = float(face.interocular(lm))
        self.step = 1 if self.iod < 90 else 2  # map grid (px); the map is piecewise linear
        self.eyes = ((photo_avatar.EYE_R_UPPER, photo_avatar.EYE_R_LOWER),
                     (photo_avatar.EYE_L_UPPER, photo_avatar.EYE_L_LOWER))
        self._setup_frame()
        self._setup_mouth()
        self._setup_eyes()
        self._setup_sway()
        self._k = 0
        # The part of the frame that differs from the photo (x0, y0, x1, y1; empty when
        # none), this frame's and the previous one's: see `dirty`.
        self._changed: tuple[int, int, int, int] = (0, 0, 0, 0)
        self._prev_changed: tuple[int, int, int, int] | None = None
        self._next_blink = float(self.rng.uniform(*BLINK_EVERY))
        self._blink: tuple[float, float] | None = None
        self._speak = 0.0
        self.blink_now = 0.0
        self.times: dict[str, deque[float]] = {k: deque(maxlen=TIMING_WINDOW)
                                               for k in ("mesh", "warp", "mouth", "total")}

    # -- set-up ---------------------------------------------------------------------------

    def _setup_frame(self) -> None:
        """Face-aligned axes: u along the eye line, v down, both in image pixels."""
        d = self.lm[face.EYE_OUTER_R, :2] - self.lm[face.EYE_OUTER_L, :2]
        ex = d / np.linalg.norm(d)
        self.ex = ex.astype(np.float64)
        self.ey = np.array([-ex[1], ex[0]], np.float64)
        self.mouth_c = 0.5 * (self.lm[13, :2] + self.lm[14, :2]).astype(np.float64)
        rel = self.rest - self.mouth_c
        self.u = rel @ self.ex / self.iod  # in IOD units
        self.v = rel @ self.ey / self.iod

    def _setup_mouth(self) -> None:
        n = len(self.rest)
        u, v = self.u, self.v
        lm = self.lm
        corner_l = (lm[face.MOUTH_CORNER_L, :2] - self.mouth_c) @ self.ex / self.iod
        corner_r = (lm[face.MOUTH_CORNER_R, :2] - self.mouth_c) @ self.ex / self.iod
        self.half_w = float(0.5 * (corner_r - corner_l))
        hw = max(self.half_w, 0.1)
        corner_v = float(0.5 * ((lm[face.MOUTH_CORNER_L, :2] - self.mouth_c) @ self.ey
                                + (lm[face.MOUTH_CORNER_R, :2] - self.mouth_c) @ self.ey)
                         / self.iod)
        # Which points belong to the lower face (move with the jaw): the lower lip for sure,
        # the upper lip not at all, others by height relative to the mouth line.
        from mediapipe.python.solutions.face_mesh_connections import FACEMESH_LIPS

        lips = {i for e in FACEMESH_LIPS for i in e}
        lower = np.asarray(_smoothstep((v - corner_v) / 0.16 + 0.5), np.float64)
        for i in lips:
            lower[i] = 1.0 if v[i] > corner_v + 0.02 else 0.0
        for i in photo_avatar.MOUTH_LOWER[1:-1]:
            lower[i] = 1.0
        for i in photo_avatar.MOUTH_UPPER[1:-1]:
            lower[i] = 0.0
        for i in (61, 291, 78, 308, 62, 292, 76, 306, 184, 408, 77, 307):
            if i < n:
                lower[i] = 0.45
        # Jaw drop profile across the face: whole at the chin, nothing at the ears.
        oval = np.array(photo_avatar._face_oval())
        face_hw = float(np.percentile(np.abs(u[oval]), 90))
        jaw = np.clip(1.0 - (np.abs(u) / (0.95 * face_hw)) ** 2, 0.0, 1.0) ** 0.8
        # Near the mouth the lip itself opens in a rounded profile.
        lipshape = np.sqrt(np.clip(1.0 - (u / (1.05 * hw)) ** 2, 0.0, 1.0))
        near = _smoothstep(1.0 - (v - corner_v) / 0.35)  # 1 at the lips, 0 down the chin
        drop_w = lower * ((near * lipshape + (1 - near) * jaw) * 0.75 + 0.25 * jaw)
        drop_w[self.levels == 1] *= 0.5  # the ring around the head (neck) gives a little
        drop_w[self.levels == 2] = 0.0
        # Upper lip: rises at the middle, fading toward the nose.
        nose_v = float((lm[2, :2] - self.mouth_c) @ self.ey / self.iod)  # subnasale
        fade = np.clip(1.0 - v / min(nose_v, -0.05), 0.0, 1.0)
        up_w = (1.0 - lower) * lipshape * fade * (np.abs(u) < 1.4 * hw)
        up_w[self.levels > 0] = 0.0
        # Width: corners move sideways; lips stretch linearly, cheeks follow a little.
        side = np.where(np.abs(u) <= hw, u / hw,
                        np.sign(u) * np.exp(-((np.abs(u) - hw) / 0.3) ** 2))
        vert = np.exp(-((v - corner_v) / 0.28) ** 2)
        width_w = side * vert
        width_w[self.levels > 0] = 0.0
        # Rounding: the lips thicken away from the mouth line.
        lip_arr = np.zeros(n, bool)
        lip_arr[list(lips)] = True
        thick_w = np.where(lip_arr & (v > corner_v), lipshape, 0.0)  # lower lip pouts
        self.drop_w = drop_w
        self.up_w = up_w
        self.width_w = width_w
        self.thick_w = thick_w
        # Upper-lip centre share: the 13-14 gap must change by exactly the aperture change.
        self.drop_norm = max(float(drop_w[14]), 1e-3)
        self.up_norm = max(float(up_w[13]), 1e-3)
        self.pairs = list(zip(photo_avatar.MOUTH_UPPER[1:-1], photo_avatar.MOUTH_LOWER[1:-1],
                              strict=True))
        self.rest_gap = [max(float((self.rest[b] - self.rest[a]) @ self.ey), 0.0)
                         for a, b in self.pairs]
        self._pair_a = np.array([a for a, _ in self.pairs], np.intp)
        self._pair_b = np.array([b for _, b in self.pairs], np.intp)
        self._split_up = np.array(photo_avatar.SPLIT_UP, np.intp)
        self._split_lo = np.array(photo_avatar.SPLIT_LO, np.intp)
        self._rest_gap = np.array(self.rest_gap, np.float64)
        self._setup_colours()

    def _setup_eyes(self) -> None:
        """For each eye: per point, the lid gap at its u and how much it moves with the
        upper lid (1 on the lid, fading up to the brow) or the lower lid."""
        n = len(self.rest)
        self.blink_dy = np.zeros(n, np.float64)  # px down at a full blink (negative: up)
        for upper, lower in ((photo_avatar.EYE_R_UPPER, photo_avatar.EYE_R_LOWER),
                             (photo_avatar.EYE_L_UPPER, photo_avatar.EYE_L_LOWER)):
            up = self.rest[list(upper)]
            lo = self.rest[list(lower)]
            c = 0.5 * (up[0] + up[-1])
            uu = (up - c) @ self.ex
            ul = (lo - c) @ self.ex
            vu = (up - c) @ self.ey
            vl = np.interp(uu, *self._sorted(ul, (lo - c) @ self.ey))
            gap = np.maximum(vl - vu, 0.0)  # along the upper-lid points
            order = np.argsort(uu)
            half = 0.5 * float(np.linalg.norm(up[-1] - up[0]))
            p = self.rest - c
            pu, pv = p @ self.ex, p @ self.ey
            g = np.interp(pu, uu[order], gap[order], left=0.0, right=0.0)
            lid_v = np.interp(pu, uu[order], vu[order])
            low_v = np.interp(pu, *self._sorted(ul, (lo - c) @ self.ey))
            inside_u = np.clip(1.25 - np.abs(pu) / half, 0.0, 1.0)
            above = lid_v - pv  # >0 above the upper lid
            reach = 0.28 * self.iod
            w_up = np.where(above >= -0.5, np.clip(1.0 - above / reach, 0.0, 1.0) ** 1.5, 0.0)
            below = pv - low_v
            w_lo = np.where(below >= -0.5, np.clip(1.0 - below / (0.12 * self.iod), 0, 1), 0.0)
            d = 0.8 * g * w_up * inside_u - 0.12 * g * w_lo * inside_u
            for i in upper[1:-1]:
                d[i] = 0.8 * g[i]
            for i in lower[1:-1]:
                d[i] = -0.12 * g[i]
            for i in (upper[0], upper[-1]):
                d[i] = 0.0
            d[self.levels > 0] = 0.0
            self.blink_dy += d

    @staticmethod
    def _sorted(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
                ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        o = np.argsort(x)
        return x[o], y[o]

    def _setup_sway(self) -> None:
        self.face_tri = (self.levels[self.tris] == 0).all(axis=1)
        self.oval_idx = np.array(photo_avatar._face_oval())
        self._local_moved: npt.NDArray[np.bool_] | None = None
        self._sway_inv: npt.NDArray[np.float64] | None = None
        self.sway_w = np.where(self.levels == 0, 1.0, np.where(self.levels == 1, 1.0, 0.0))
        chin = self.rest[face.CHIN]
        below = (self.rest - chin) @ self.ey > -0.1 * self.iod
        self.sway_w[(self.levels == 1) & below] = 0.35
        self.pivot = chin + 0.9 * self.iod * self.ey  # the neck
        self.n_rot = _Noise(self.rng, 0.05, 0.25)
        self.n_x = _Noise(self.rng, 0.04, 0.2)
        self.n_y = _Noise(self.rng, 0.04, 0.2)
        self.breath_phase = float(self.rng.uniform(0, 2 * np.pi))

    # -- per frame ------------------------------------------------------------------------

    @property
    def size(self) -> tuple[int, int]:
        return self.w, self.h

    def _mouth_offsets(self, target: F32) -> tuple[npt.NDArray[np.float64], float, float]:
        rest = self.rest_mouth.astype(np.float64)
        t = np.asarray(target, np.float64).reshape(-1)[:4]
        t = np.where(np.isfinite(t), t, rest)
        ap = float(np.clip(t[0], 0.0, 0.5))
        da = (ap - rest[0]) * self.iod  # px
        dw = float(np.clip(t[1] - rest[1], -0.3 * rest[1], 0.25 * rest[1])) * self.iod
        dr = float(np.clip(t[2] - rest[2], -0.05, 0.08)) * self.iod
        jaw = (1 - UPPER_SHARE) * da / self.drop_norm
        lip = UPPER_SHARE * da / self.up_norm
        dv = jaw * self.drop_w - lip * self.up_w + 1.2 * dr * self.thick_w
        du = 0.5 * dw * self.width_w - 1.5 * dr * self.width_w
        off = du[:, None] * self.ex + dv[:, None] * self.ey
        return off, ap, float(np.clip(t[3], 0.0, 1.0))

    def _blink_amount(self, t: float) -> float:
        if self._blink is None and t >= self._next_blink:
            self._blink = (t, float(self.rng.uniform(*BLINK_LENGTH)))
        if self._blink is None:
            return 0.0
        t0, dur = self._blink
        p = (t - t0) / dur
        if p >= 1.0:
            self._blink = None
            self._next_blink = t + float(self.rng.uniform(*BLINK_EVERY))
            return 0.0
        # Fast close, brief hold, slower open.
        shape = p / 0.4 if p < 0.4 else 1.0 - (p - 0.4) / 0.6
        return float(min(1.0, 1.25 * math.sin(0.5 * math.pi * max(shape, 0.0))))

    def _sway(self, t: float) -> tuple[float, npt.NDArray[np.float64]]:
        a = self._speak
        deg = (SWAY_DEG[0] + a * (SWAY_DEG[1] - SWAY_DEG[0])) * self.n_rot(t)
        amp = (SWAY_IOD[0] + a * (SWAY_IOD[1] - SWAY_IOD[0])) * self.iod
        shift = amp * np.array([self.n_x(t), 0.6 * self.n_y(t)])
        shift = shift + BREATH_IOD * self.iod * math.sin(
            2 * math.pi * t / BREATH_PERIOD_S + self.breath_phase) * np.array([0.0, -1.0])
        return math.radians(deg), shift

    def displaced(self, target: F32, blink: float, angle: float,
                  shift: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], float, float]:
        """Mesh points for a mouth target, blink amount (0-1) and head sway."""
        off, ap, teeth = self._mouth_offsets(target)
        pts = self.rest + off
        # Lips never cross: a pair whose lower point rises above its upper point meets.
        # The split chains carry the photo's own mouth content: the upper part with the
        # upper lip, the lower part with the jaw; when the mouth closes beyond its rest,
        # the content is squeezed instead.
        # All pairs at once (their points and split points are distinct).
        ey = self.ey
        ia, ib = self._pair_a, self._pair_b
        su, sl = self._split_up, self._split_lo
        pa, pb = pts[ia], pts[ib]
        gap = (pb - pa) @ ey
        shut = gap < LIP_MIN_GAP
        if shut.any():
            mid = 0.5 * (pa[shut] + pb[shut])
            pa[shut], pb[shut] = mid - 0.5 * LIP_MIN_GAP * ey, mid + 0.5 * LIP_MIN_GAP * ey
            pts[ia], pts[ib] = pa, pb
            gap = np.where(shut, LIP_MIN_GAP, gap)
        apart = (gap >= self._rest_gap)[:, None]
        m = pa + photo_avatar.MOUTH_SPLIT * (pb - pa)
        pts[su] = np.where(apart, self.rest[su] + (pa - self.rest[ia]), m)
        pts[sl] = np.where(apart, self.rest[sl] + (pb - self.rest[ib]), m)
        if blink > 0:
            pts = pts + (blink * self.blink_dy)[:, None] * self.ey
        self._local_moved = np.abs(pts - self.rest).max(axis=1) > MOVED_PX
        self._sway_inv = None
        if angle or shift.any():
            c, s = math.cos(angle), math.sin(angle)
            rel = pts - self.pivot
            moved = self.pivot + rel @ np.array([[c, s], [-s, c]]) + shift
            pts = pts + self.sway_w[:, None] * (moved - pts)
            rt = np.array([[c, s], [-s, c]])  # inverse rotation
            self._sway_inv = np.concatenate(
                [rt, (self.pivot - rt @ (self.pivot + shift))[:, None]], axis=1)
        return pts, ap, teeth

    def frame(self, target: F32, speaking: bool, upcoming: F32 | None = None) -> U8:
        del upcoming  # the warp needs no look-ahead
        t0 = time.perf_counter()
        t = self._k / self.fps
        self._k += 1
        k = 1.0 - math.exp(-1.0 / (0.8 * self.fps))
        self._speak += k * ((1.0 if speaking else 0.0) - self._speak)
        angle, shift = self._sway(t)
        blink = self._blink_amount(t)
        self.blink_now = blink
        pts, ap, teeth = self.displaced(target, blink, angle, shift)
        self._prev_changed = self._changed if self._k > 1 else None
        out = self.render(pts, ap, teeth, t0, blink=blink)
        self.times["total"].append((time.perf_counter() - t0) * 1e3)
        return out

    def render(self, pts: npt.NDArray[np.float64], ap: float, teeth: float,
               t0: float | None = None, *, blink: float = 0.0) -> U8:
        """The photo warped so its mesh points lie at `pts`, with the mouth painted."""
        t0 = time.perf_counter() if t0 is None else t0
        out = self.photo.copy()
        self._changed = (0, 0, 0, 0)
        # Face triangles that only sway share one affine (filled through the face oval in
        # one call); the others are rasterised one by one.
        local = getattr(self, "_local_moved", None)
        sway = getattr(self, "_sway_inv", None)
        if local is None:
            local = np.abs(pts - self.rest).max(axis=1) > MOVED_PX
        moved = np.abs(pts - self.rest).max(axis=1) > MOVED_PX
        single = np.where(self.face_tri, local[self.tris].any(axis=1),
                          moved[self.tris].any(axis=1))
        if not single.any() and sway is None:
            self.times["mesh"].append((time.perf_counter() - t0) * 1e3)
            return out
        tris = self.tris[single]
        dst = pts[tris]  # (m, 3, 2)
        src = self.rest[tris]
        extent = [dst.reshape(-1, 2)]
        oval = pts[self.oval_idx]
        if sway is not None:
            extent.append(oval)
        allp = np.concatenate(extent)
        lo = np.floor(allp.min(axis=0)).astype(int) - 1
        hi = np.ceil(allp.max(axis=0)).astype(int) + 2
        s = self.step
        x0, y0 = max(lo[0], 0), max(lo[1], 0)
        x1, y1 = min(hi[0], self.w), min(hi[1], self.h)
        cw, ch = -(-(x1 - x0) // s), -(-(y1 - y0) // s)
        # Coarse cell centres in image pixels: x0 + j*s + (s-1)/2 (aligned for cv2.resize).
        off = np.array([x0 + (s - 1) / 2, y0 + (s - 1) / 2])
        ids = np.zeros((ch, cw), np.int32)
        if sway is not None:
            cv2.fillPoly(ids, [np.round((oval - off) / s * 16).astype(np.int32)], 1,
                         lineType=cv2.LINE_8, shift=4)
        cdst = (dst - off) / s
        poly = np.round(cdst * 16).astype(np.int32)  # 4 sub-pixel bits
        e1, e2 = cdst[:, 1] - cdst[:, 0], cdst[:, 2] - cdst[:, 0]
        det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        # One call per triangle (a few hundred while the jaw moves): positional arguments
        # and the polygons listed up front halve the per-call overhead.
        draw = np.flatnonzero(np.abs(det) * s * s > MIN_AREA)
        fill = cv2.fillConvexPoly
        for p, c in zip(list(poly[draw]), (draw + 2).tolist(), strict=True):
            fill(ids, p, c, cv2.LINE_8, 4)
        # Affine (coarse dst) -> (src) per triangle: rows 0 identity, 1 sway only.
        coef = np.zeros((len(tris) + 2, 3, 2))
        coef[0] = [[s, 0], [0, s], [off[0], off[1]]]
        if sway is not None:
            a = sway[:, :2]
            coef[1, 0], coef[1, 1] = a[:, 0] * s, a[:, 1] * s
            coef[1, 2] = a @ off + sway[:, 2]
        safe = np.where(np.abs(det) > 1e-9, det, 1.0)
        inv = np.stack([np.stack([e2[:, 1], -e1[:, 1]], -1),
                        np.stack([-e2[:, 0], e1[:, 0]], -1)], -1) / safe[:, None, None]
        f = np.stack([src[:, 1] - src[:, 0], src[:, 2] - src[:, 0]], -1)  # columns
        m = f @ inv  # (k, 2, 2): src offset = m @ dst offset
        coef[2:, 0] = m[:, :, 0]
        coef[2:, 1] = m[:, :, 1]
        coef[2:, 2] = src[:, 0] - np.einsum("kij,kj->ki", m, cdst[:, 0])
        # Per coefficient a flat table gathered with np.take (intp indices, no bounds
        # check: the ids are in range by construction), 40 % faster than fancy indexing.
        cf = np.ascontiguousarray(coef.reshape(-1, 6).T.astype(np.float32))  # (6, n)
        idx = ids.astype(np.intp)
        jj = np.arange(cw, dtype=np.float32)[None, :]
        ii = np.arange(ch, dtype=np.float32)[:, None]
        mx = np.take(cf[0], idx, mode="clip")
        mx *= jj
        mx += np.take(cf[2], idx, mode="clip") * ii
        mx += np.take(cf[4], idx, mode="clip")
        my = np.take(cf[1], idx, mode="clip")
        my *= jj
        my += np.take(cf[3], idx, mode="clip") * ii
        my += np.take(cf[5], idx, mode="clip")
        if s > 1:
            mx = cv2.resize(mx, (cw * s, ch * s), interpolation=cv2.INTER_LINEAR)
            my = cv2.resize(my, (cw * s, ch * s), interpolation=cv2.INTER_LINEAR)
        mx, my = mx[: y1 - y0, : x1 - x0], my[: y1 - y0, : x1 - x0]
        t1 = time.perf_counter()
        self.times["mesh"].append((t1 - t0) * 1e3)
        self._grow((x0, y0, x1, y1))
        out[y0:y1, x0:x1] = cv2.remap(self.photo, mx, my, cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE)
        t2 = time.perf_counter()
        self.times["warp"].append((t2 - t1) * 1e3)
        self._paint_mouth(out, pts, ap, teeth)
        self._paint_eyes(out, pts, blink)
        self.times["mouth"].append((time.perf_counter() - t2) * 1e3)
        return out

    def _setup_colours(self) -> None:
        """Colours of the painted mouth, lit like the face: lips, cavity, teeth."""
        lm = self.lm
        rgb = self.photo.astype(np.float32)
        mask = np.zeros(self.photo.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(lm[list(face.OUTER_LIP), :2]).astype(np.int32)], 1)
        cv2.fillPoly(mask, [np.round(lm[list(face.INNER_LIP), :2]).astype(np.int32)], 0)
        lip = rgb[mask.astype(bool)].mean(axis=0) if mask.any() else np.array([170, 90, 90.])
        skin_pts = np.round(lm[[50, 280, 101, 330, 151], :2]).astype(int)
        skin_pts = np.clip(skin_pts, 0, [self.w - 1, self.h - 1])
        skin = rgb[skin_pts[:, 1], skin_pts[:, 0]].mean(axis=0)
        light = float(np.clip(skin.mean() / 170.0, 0.35, 1.3))
        self.c_lip_seam = (0.5 * lip).astype(np.float32)
        self.c_cavity = (np.array([62.0, 22.0, 26.0]) * light).astype(np.float32)
        self.c_tongue = (np.array([150.0, 62.0, 66.0]) * light).astype(np.float32)
        teeth = np.array([222.0, 214.0, 198.0]) * min(light, 1.0)
        # Teeth shown in the photo give their own colour.
        if self.rest_mouth[3] > 0.1:
            inner = np.zeros_like(mask)
            cv2.fillPoly(inner, [np.round(lm[list(face.INNER_LIP), :2]).astype(np.int32)], 1)
            px = rgb[inner.astype(bool)]
            if len(px) > 8:
                bright = px[px.mean(axis=1) >= np.percentile(px.mean(axis=1), 70)]
                teeth = bright.mean(axis=0)
        self.c_teeth = teeth.astype(np.float32)
        self.real_teeth = bool(self.rest_mouth[3] > 0.1 and self.rest_mouth[0] > 0.04)
        lash = []
        for upper, lower in self.eyes:
            poly = np.round(np.concatenate([lm[list(upper), :2], lm[list(lower[::-1]), :2]])
                            ).astype(np.int32)
            m = np.zeros_like(mask)
            cv2.fillPoly(m, [poly], 1)
            px = rgb[m.astype(bool)]
            lum = px.mean(axis=1) if len(px) else np.zeros(0)
            lash.append(px[lum <= np.percentile(lum, 25)].mean(axis=0) if len(px) > 4
                        else 0.4 * skin)
        self.c_lash = [(0.6 * c + 0.4 * 0.55 * skin).astype(np.float32) for c in lash]

    def _paint_eyes(self, out: U8, pts: npt.NDArray[np.float64], blink: float) -> None:
        """Lashes along the closed lid line (the squeezed eye would show white)."""
        a = np.float32(np.clip((blink - 0.45) / 0.4, 0.0, 1.0) * 0.95)
        if a <= 0:
            return
        for (upper, lower), c in zip(self.eyes, self.c_lash, strict=True):
            self._blend_poly(out, pts[list(upper)], pts[list(lower)],
                             lambda *_, c=c: (c, a))

    def _paint_mouth(self, out: U8, pts: npt.NDArray[np.float64], ap: float,
                     teeth: float) -> None:
        """Oral cavity and teeth in the gap between the split chains; a lip seam where the
        lips close beyond the photo's rest."""
        c0, c1 = photo_avatar.MOUTH_UPPER[0], photo_avatar.MOUTH_UPPER[-1]
        up = pts[[c0, *photo_avatar.SPLIT_UP, c1]]
        lo = pts[[c0, *photo_avatar.SPLIT_LO, c1]]
        gaps = (lo - up) @ self.ey
        inner_up = pts[list(photo_avatar.MOUTH_UPPER)]
        inner_lo = pts[list(photo_avatar.MOUTH_LOWER)]
        closing = 1.0 - min(float(np.max((inner_lo - inner_up) @ self.ey))
                            / max(max(self.rest_gap), 1e-6), 1.0)
        if closing > 0.6 and max(self.rest_gap) > 1.0:
            self._blend_poly(out, inner_up, inner_lo, lambda *_: (
                self.c_lip_seam, np.float32(min(1.0, (closing - 0.6) / 0.3))))
        if gaps.max() < 0.3:
            return
        iod = self.iod
        hw = max(self.half_w * iod, 1.0)
        gap_max = float(gaps.max())
        synth_teeth = 0.0 if self.real_teeth else float(np.clip(teeth / 0.6, 0.0, 1.0))
        t_h = synth_teeth * min(0.55 * gap_max, 0.085 * iod)
        low_h = 0.35 * float(np.clip(teeth / 0.5, 0.0, 1.0)) * min(0.4 * gap_max, 0.05 * iod)
        centre = 0.5 * (up[0] + up[-1])
        uu = (up - centre) @ self.ex
        vu = (up - centre) @ self.ey
        vl = (lo - centre) @ self.ey
        o = np.argsort(uu)
        uu, vu, vl = uu[o], vu[o], vl[o]

        def colour(pu: F32, pv: F32) -> tuple[F32, F32]:
            top = np.interp(pu, uu, vu).astype(np.float32)
            bot = np.interp(pu, uu, vl).astype(np.float32)
            span = np.maximum(bot - top, 1e-3)
            depth = np.clip((pv - top) / span, 0.0, 1.0)  # 0 at the upper lip
            side = np.clip(np.abs(pu) / hw, 0.0, 1.0)
            # Cavity: darkest in the middle and at the corners, a little light near the lips.
            shade = 1.0 - 0.55 * side**2 - 0.35 * np.sin(np.pi * depth)
            col = self.c_cavity[None, None, :] * shade[..., None]
            tongue = np.clip((depth - 0.55) / 0.45, 0, 1) * np.clip(1 - side * 1.4, 0, 1)
            tongue *= float(np.clip(gap_max / (0.12 * iod), 0.0, 1.0))
            col = col + (self.c_tongue - col) * (0.6 * tongue)[..., None]
            if t_h > 0.2:
                band = np.clip((top + t_h - pv) / 0.8 + 0.5, 0.0, 1.0)
                band *= np.clip(1.15 - side, 0.0, 1.0) * 1.5
                band = np.clip(band, 0.0, 1.0)
                tshade = (1.0 - 0.5 * side**1.5) * (1.0 - 0.25 * np.clip((top + 1.2 - pv), 0, 1))
                tcol = self.c_teeth[None, None, :] * tshade[..., None]
                col = col + (tcol - col) * band[..., None]
            if low_h > 0.2:
                lband = np.clip((pv - (bot - low_h)) / 0.8 + 0.5, 0.0, 1.0)
                lband *= np.clip(1.0 - side * 1.3, 0.0, 1.0)
                tcol = 0.75 * self.c_teeth[None, None, :] * (1.0 - 0.5 * side)[..., None]
                col = col + (tcol - col) * lband[..., None]
            return col.astype(np.float32), np.ones_like(pu)

        self._blend_poly(out, up, lo, colour)

    def _blend_poly(self, out: U8, up: npt.NDArray[np.float64], lo: npt.NDArray[np.float64],
                    colour: Callable[..., tuple[F32, np.float32 | F32]]) -> None:
        """Blend `colour(u, v)` (face-aligned coordinates relative to the mouth corners'
        midpoint) into `out` inside the polygon up + reversed lo, anti-aliased."""
        poly = np.concatenate([up, lo[::-1]])
        x0, y0 = np.maximum(np.floor(poly.min(axis=0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(poly.max(axis=0)).astype(int) + 2, [self.w, self.h])
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        fix = np.round((poly - [x0, y0]) * 16).astype(np.int32)
        cv2.fillPoly(mask, [fix], 255, lineType=cv2.LINE_AA, shift=4)
        alpha = mask.astype(np.float32) / 255.0
        centre = 0.5 * (up[0] + up[-1])
        xs = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(centre[0])
        ys = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(centre[1])
        ex, ey = self.ex.astype(np.float32), self.ey.astype(np.float32)
        pu = xs * ex[0] + ys * ex[1]
        pv = xs * ey[0] + ys * ey[1]
        col, a = colour(pu, pv)
        alpha = alpha * a
        region = out[y0:y1, x0:x1].astype(np.float32)
        region += (col - region) * alpha[..., None]
        out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
        self._grow((int(x0), int(y0), int(x1), int(y1)))

    def _grow(self, box: tuple[int, int, int, int]) -> None:
        """Add `box` to the part of this frame that differs from the photo."""
        a = self._changed
        self._changed = box if a[2] <= a[0] or a[3] <= a[1] else (
            min(a[0], box[0]), min(a[1], box[1]), max(a[2], box[2]), max(a[3], box[3]))

    @property
    def dirty(self) -> tuple[int, int, int, int] | None:
        """The part of the last frame that can differ from the frame before it (x0, y0,
        x1, y1 in frame pixels; empty when the two are the same); None after the first
        frame (everything is new). The canvas redoes only that part."""
        prev = self._prev_changed
        if prev is None:
            return None
        boxes = [b for b in (prev, self._changed) if b[2] > b[0] and b[3] > b[1]]
        if not boxes:
            return (0, 0, 0, 0)
        return (min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes))

    def timing(self) -> dict[str, dict[str, float]]:
        res = {}
        for k, q in self.times.items():
            if q:
                a = np.array(q)
                res[k] = {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99))}
        return res
