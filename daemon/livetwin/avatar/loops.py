"""Idle-loop graph in the spirit of Video Textures (Schödl et al. 2000): which frames of
the footage can follow which without a visible jump, and a walker that plays the footage
forever through that graph without short repeating cycles.

A transition i -> j means "after frame i, show frame j instead of i + 1". Its cost is the
distance between i + 1 and j, averaged over the neighbouring pairs (i + 1 + k, j + k) so
that motion continues too, in units of the median natural step (the distance between
consecutive frames); natural steps i -> i + 1 are edges of cost 0. The frame distance is
the largest of: the head-pose jump, the shape change of any one face region (eyes, iris,
brows, lips, jaw and nose) after a similarity fit of the landmarks, and the change of the
whole-frame or face-box thumbnails or of their coarse colour (body, background, lighting,
white balance), since a cut shows as soon as any one of them jumps.

Jumps are kept under a threshold that starts at `max_cost` natural steps and is raised
(up to `max_cost_limit`) only when the footage offers too few exits; dead ends (the end
of the clip, frames before a tracking gap) and closed groups of frames get their cheapest
way out, so every usable frame can play on forever. Measured on a 60 s talking head
(tedlieu, 256 px), as the median optical flow of the face at the cut beyond its own
motion: ~0.5 px (p90 ~1 px) for jumps under 1.6 natural steps, as for a dropped frame
(0.3 px, p90 1 px); 1-1.1 px (p90 ~2 px) from 1.8 on.
"""

from __future__ import annotations

import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from livetwin.avatar.face import INNER_LIP, OUTER_LIP, STABLE, interocular
from livetwin.errors import BundleError, MediaError

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
_T = TypeVar("_T", bound=np.generic)

FRAME_THUMB = 16  # whole-frame thumbnail side (body, background, lighting)
FACE_THUMB = 20  # face-box thumbnail side (skin, hair, shading)
CHROMA = 4  # side of the opponent-colour thumbnails (colour casts are coarse)
_FRAME_GRAY = slice(0, FRAME_THUMB**2)
_FACE_GRAY = slice(_FRAME_GRAY.stop, _FRAME_GRAY.stop + FACE_THUMB**2)
_FRAME_COLOUR = slice(_FACE_GRAY.stop, _FACE_GRAY.stop + 2 * CHROMA**2)
_FACE_COLOUR = slice(_FRAME_COLOUR.stop, _FRAME_COLOUR.stop + 2 * CHROMA**2)
APPEARANCE_DIM = _FACE_COLOUR.stop
GRAPH_VERSION = 1
# Video Textures' "preserve dynamics" filter: binomial weights over pairs (i+k, j+k),
# k = -2..1, centred on the cut between the frame shown last and the frame shown next.
FILTER_OFFSETS = (-2, -1, 0, 1)
FILTER_WEIGHTS = (1.0, 3.0, 3.0, 1.0)
# Transitions are kept only where they are the cheapest in a (2r+1)^2 neighbourhood of
# the cost matrix, so near-duplicates (i+1 -> j+1 beside i -> j) do not flood the graph
# and defeat the walker's memory of recently taken jumps.
LOCAL_MIN_RADIUS = 2
# Jump thresholds in median natural steps (see build_loop_graph).
DEFAULT_MAX_COST = 1.5
DEFAULT_MAX_COST_LIMIT = 2.5
# Graph richness wanted before the threshold is raised: share of usable frames that
# reach a jump within this many seconds of natural play.
EXIT_WITHIN_S = 3.0
EXIT_SHARE = 0.9

# Face regions (mediapipe face-mesh indices); each is measured by the RMS displacement of
# its points, so a small region (an eyelid) counts as much as a large one (the jaw).
EYES = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
        263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)  # fmt: skip
IRIS = tuple(range(468, 478))
BROWS = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46,
         300, 293, 334, 296, 336, 285, 295, 282, 283, 276)  # fmt: skip
LIPS = INNER_LIP + OUTER_LIP
OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
        400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21,
        54, 103, 67, 109, 168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 327)  # fmt: skip
REGIONS = (EYES, IRIS, BROWS, LIPS, OVAL)
# A rigid jump of the whole head shows more than the same displacement of one face part
# (lips move fast anyway while speaking). Measured on tedlieu: weighting the head pose
# x3 gives 45 % more jumps under the same threshold, with the median optical-flow jump
# of the face at the cut down from 0.70 to 0.47 px (p90 1.16 -> 0.95 px).
POSE_WEIGHT = 3.0


def box_from_landmarks(lm: F32, margin: float = 0.1) -> tuple[int, int, int, int]:
    """Face box (x0, y0, x1, y1) in pixels around (478, 3) landmarks, grown by `margin`."""
    lo, hi = lm[:, :2].min(axis=0), lm[:, :2].max(axis=0)
    pad = margin * (hi - lo)
    x0, y0 = np.floor(lo - pad).astype(int)
    x1, y1 = np.ceil(hi + pad).astype(int)
    return int(x0), int(y0), int(x1), int(y1)


def _thumbs(rgb: npt.NDArray[np.uint8], side: int) -> tuple[F32, F32]:
    """Gray side x side thumbnail and CHROMA x CHROMA opponent-colour (R - G, (R + G)/2 - B)
    thumbnail of an RGB image, both 0..255."""
    # A bilinear resize to 4x the thumbnail reads only ~4 pixels per output pixel, so a
    # 1080x1920 frame costs ~0.1 ms instead of ~7 ms for INTER_AREA on the full frame;
    # the area step then averages away most of the aliasing.
    mid = cv2.resize(rgb, (side * 4, side * 4), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(mid, (side, side), interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).reshape(-1).astype(np.float32)
    tiny = cv2.resize(small, (CHROMA, CHROMA), interpolation=cv2.INTER_AREA).astype(np.float32)
    r, g, b = tiny[..., 0], tiny[..., 1], tiny[..., 2]
    return gray, np.concatenate([(r - g).ravel(), (0.5 * (r + g) - b).ravel()])


def appearance_features(
    rgb: npt.NDArray[np.uint8], face_box: tuple[int, int, int, int] | None
) -> F32:
    """Cheap appearance vector of one RGB frame (~0.05-0.2 ms, any size): gray thumbnails
    of the whole frame and of the face box, then coarse colour of both (so an automatic
    white balance that drifts shows too), scaled to 0..1.

    `face_box` is (x0, y0, x1, y1) in pixels (see `box_from_landmarks`); None or an empty
    box leaves the face parts zero (such frames should be marked unusable anyway)."""
    out = np.zeros(APPEARANCE_DIM, np.float32)
    gray, colour = _thumbs(rgb, FRAME_THUMB)
    out[_FRAME_GRAY] = gray
    out[_FRAME_COLOUR] = colour
    if face_box is not None:
        h, w = rgb.shape[:2]
        x0, y0 = max(face_box[0], 0), max(face_box[1], 0)
        x1, y1 = min(face_box[2], w), min(face_box[3], h)
        if x1 - x0 >= 4 and y1 - y0 >= 4:
            gray, colour = _thumbs(rgb[y0:y1, x0:x1], FACE_THUMB)
            out[_FACE_GRAY] = gray
            out[_FACE_COLOUR] = colour
    out *= 1.0 / 255.0
    return out


# ----------------------------------------------------------------------------- the graph


@dataclass(frozen=True)
class LoopStats:
    """Numbers for the clone's quality report; costs are in median natural steps."""

    n_frames: int
    usable_frames: int
    max_cost: float  # threshold the jumps were kept under (raised for poor footage)
    transitions: int  # jumps i -> j, natural steps excluded
    forced_transitions: int  # jumps above `max_cost`, added so nothing is a dead end
    transitions_per_minute: float
    exit_within_1s: float  # share of usable frames that reach a jump within 1 s of play
    exit_within_2s: float
    exit_within_5s: float
    median_cost: float  # median transition cost relative to the median natural step
    p90_cost: float
    main_component_share: float  # share of usable frames in the largest cycle component
    idle_share: float  # share of usable frames with idle_score >= 0.5

    def as_dict(self) -> dict[str, float]:
        """Plain dict for JSON reports."""
        return {k: float(v) for k, v in asdict(self).items()}


_GRAPH_DTYPES = {"src": np.int32, "dst": np.int32, "cost": np.float32,
                 "idle_score": np.float32, "usable": np.bool_}  # fmt: skip


@dataclass(frozen=True, eq=False)
class LoopGraph:
    """Which frame may follow which: edges sorted by (src, dst), natural steps included
    with cost 0, jump costs in units of the median natural step."""

    src: I32
    dst: I32
    cost: F32
    idle_score: F32  # 0..1 per frame: closed, neutral mouth and no speech -> 1
    usable: B  # frames that may be shown (tracking was good); never entered otherwise
    fps: float
    max_cost: float  # the threshold the jumps were selected with
    offsets: I64 = field(init=False, repr=False)  # CSR: edges of i are offsets[i]:offsets[i+1]

    def __post_init__(self) -> None:
        # Own read-only copies in fixed dtypes: frozen means the arrays cannot change.
        for name, dtype in _GRAPH_DTYPES.items():
            array = np.array(getattr(self, name), dtype)
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        n, e = len(self.usable), len(self.src)
        if not (len(self.dst) == len(self.cost) == e and len(self.idle_score) == n):
            raise ValueError("loop graph arrays have inconsistent lengths")
        if e and (self.src.min() < 0 or max(self.src.max(), self.dst.max()) >= n):
            raise ValueError("loop graph edge refers to a frame outside the clip")
        key = self.src.astype(np.int64) * n + self.dst
        if e > 1 and np.any(np.diff(key) <= 0):
            raise ValueError("loop graph edges are not sorted by (src, dst) or repeat")
        if e and not self.usable[self.dst].all():
            raise ValueError("loop graph enters an unusable frame")
        offsets = np.searchsorted(self.src, np.arange(n + 1)).astype(np.int64)
        offsets.setflags(write=False)
        object.__setattr__(self, "offsets", offsets)

    @property
    def n_frames(self) -> int:
        """Number of frames of the footage (usable or not)."""
        return len(self.usable)

    @property
    def is_jump(self) -> B:
        """Per edge: True for a jump, False for a natural step i -> i + 1."""
        return self.dst != self.src + 1

    def successors(self, i: int) -> tuple[I32, F32]:
        """Frames that may follow frame `i`, and the cost of each (0 for i + 1)."""
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.dst[a:b], self.cost[a:b]

    def save(self, path: str | Path) -> None:
        """Write the graph to a compact .npz file."""
        small = np.uint16 if self.n_frames < 2**16 else np.int32
        with open(path, "wb") as f:
            np.savez_compressed(
                f,
                version=np.int32(GRAPH_VERSION),
                src=self.src.astype(small),
                dst=self.dst.astype(small),
                cost=self.cost.astype(np.float32),
                idle_score=self.idle_score.astype(np.float32),
                usable=self.usable,
                fps=np.float64(self.fps),
                max_cost=np.float64(self.max_cost),
            )

    @classmethod
    def load(cls, path: str | Path) -> LoopGraph:
        """Read a graph written by `save`; raises BundleError when it is not one."""
        try:
            # Our own file handle: np.load leaves it open when the archive is broken.
            with open(path, "rb") as f:
                z = np.load(f)
                if not isinstance(z, np.lib.npyio.NpzFile):
                    raise ValueError("not an .npz archive")
                with z:
                    return cls._from_npz(z)
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise BundleError(
                f"{path} is not a readable loop graph ({exc}); clone the avatar again."
            ) from None

    @classmethod
    def _from_npz(cls, z: np.lib.npyio.NpzFile) -> LoopGraph:
        if int(z["version"]) != GRAPH_VERSION:
            raise ValueError(f"version {int(z['version'])} != {GRAPH_VERSION}")
        return cls(
            src=z["src"],
            dst=z["dst"],
            cost=z["cost"],
            idle_score=z["idle_score"],
            usable=z["usable"],
            fps=float(z["fps"]),
            max_cost=float(z["max_cost"]),
        )

    def stats(self) -> LoopStats:
        """Summary numbers for the quality report."""
        jump = self.is_jump
        costs = self.cost[jump]
        n_use = int(self.usable.sum())
        wait = _frames_to_exit(self)[self.usable]
        minutes = max(n_use / self.fps / 60.0, 1e-9)
        labels, main = _components(self)
        return LoopStats(
            n_frames=self.n_frames,
            usable_frames=n_use,
            max_cost=self.max_cost,
            transitions=int(jump.sum()),
            forced_transitions=int((costs > self.max_cost).sum()),
            transitions_per_minute=float(jump.sum() / minutes),
            exit_within_1s=_share(wait < self.fps),
            exit_within_2s=_share(wait < 2 * self.fps),
            exit_within_5s=_share(wait < 5 * self.fps),
            median_cost=float(np.median(costs)) if len(costs) else float("nan"),
            p90_cost=float(np.percentile(costs, 90)) if len(costs) else float("nan"),
            main_component_share=_share(labels[self.usable] == main),
            idle_share=_share(self.idle_score[self.usable] >= 0.5),
        )


def _share(mask: B) -> float:
    return float(mask.mean()) if mask.size else 0.0


def _frames_to_exit(g: LoopGraph) -> F64:
    """Per frame: natural steps to play before a frame with a jump (0 if it has one)."""
    has_next = np.zeros(g.n_frames, bool)
    has_next[g.src[~g.is_jump]] = True
    return _wait_for_exit(g.src[g.is_jump], has_next)


def _wait_for_exit(jump_src: I32, has_next: B) -> F64:
    """Per frame: natural steps to play before reaching a jump source (inf if none),
    where `has_next[i]` says whether i -> i + 1 may be played."""
    n = len(has_next)
    has_jump = np.zeros(n, bool)
    has_jump[jump_src] = True
    wait = np.full(n, np.inf)
    nxt = np.inf
    for i in range(n - 1, -1, -1):  # n is a few thousand: a plain loop is ~1 ms
        nxt = 0.0 if has_jump[i] else (nxt + 1.0 if has_next[i] else np.inf)
        wait[i] = nxt
    return wait


def _components(g: LoopGraph) -> tuple[I32, int]:
    """Strongly connected component label per frame, and the label of the largest one
    among usable frames (where the walker ends up and stays)."""
    n = g.n_frames
    adj = coo_matrix((np.ones(len(g.src), np.int8), (g.src, g.dst)), shape=(n, n)).tocsr()
    _, labels = connected_components(adj, directed=True, connection="strong")
    sizes = np.bincount(labels[g.usable], minlength=int(labels.max()) + 1)
    return labels.astype(np.int32), int(np.argmax(sizes))


# ----------------------------------------------------------------------------- building


def build_loop_graph(
    appearance: F32,
    landmarks: F32,
    mouth: F32,
    usable: B,
    fps: float,
    speech: F32,
    *,
    min_jump_s: float = 1.0,
    max_cost: float = DEFAULT_MAX_COST,
    max_cost_limit: float = DEFAULT_MAX_COST_LIMIT,
    max_jumps_per_frame: int = 12,
) -> LoopGraph:
    """Find the transitions between frames that do not show as a jump.

    appearance (n, d) from `appearance_features`; landmarks (n, 478, 3) in pixels; mouth
    (n, 4) aperture/width/rounding/teeth; usable (n,) frames with good tracking; speech
    (n,) voice activity 0..1 (zeros without audio). A jump i -> j is kept where its
    motion-filtered cost is at most `max_cost` natural steps (raised step by step up to
    `max_cost_limit` while too few frames reach a jump soon) and it skips at least
    `min_jump_s` in either direction; every usable frame is given a way to play on."""
    n = len(usable)
    usable = np.array(usable, bool)
    if not (len(appearance) == len(landmarks) == len(mouth) == len(speech) == n):
        raise ValueError("per-frame inputs of build_loop_graph differ in length")
    min_jump = max(1, round(min_jump_s * fps))
    if usable.sum() < 2 * min_jump + 2:
        raise MediaError(
            f"only {int(usable.sum())} frames with a tracked face: too short to loop; "
            "record at least a few seconds more footage."
        )
    dist = _frame_distances(appearance, landmarks, usable)
    step = _median_step(dist, usable)
    cost = _transition_costs(_motion_filter(dist, usable), usable, min_jump)
    del dist
    cost *= 1.0 / step
    threshold, (src, dst, c) = _select(
        cost, usable, fps, max_cost, max_cost_limit, max_jumps_per_frame
    )
    natural = np.flatnonzero(usable[:-1] & usable[1:]).astype(np.int32)
    src = np.concatenate([src, natural])
    dst = np.concatenate([dst, natural + 1])
    c = np.concatenate([c, np.zeros(len(natural), np.float32)])
    src, dst, c = _repair(src, dst, c, cost, usable)
    order = np.lexsort((dst, src))
    return LoopGraph(
        src=src[order],
        dst=dst[order],
        cost=c[order],
        idle_score=idle_scores(mouth, usable, speech, fps),
        usable=usable,
        fps=float(fps),
        max_cost=threshold,
    )


def _fill_unusable(x: npt.NDArray[_T], usable: B) -> npt.NDArray[_T]:
    """Rows of unusable frames replaced by the next usable frame's (they are masked later;
    this only keeps NaN and zeros out of the similarity fit and the distance matrix)."""
    good = np.flatnonzero(usable)
    nearest = good[np.minimum(np.searchsorted(good, np.arange(len(usable))), len(good) - 1)]
    return x[nearest]


def _landmark_channels(landmarks: F32, usable: B) -> list[F32]:
    """Per frame, in interocular units: head pose (position, and scale and roll as the
    displacement they cause), then the non-rigid shape of each face region after a
    similarity fit of the STABLE points (eyes, iris, brows, lips, and the jaw line and
    nose, which show yaw and pitch), scaled so that squared distances are mean squared
    point displacements."""
    lm = _fill_unusable(np.nan_to_num(landmarks[..., :2].astype(np.float64)), usable)
    iod = float(np.median(interocular(lm[usable].astype(np.float32))))
    z = lm[..., 0] + 1j * lm[..., 1]
    stable = z[:, list(STABLE)]
    centre = stable.mean(axis=1, keepdims=True)
    rel = stable - centre
    ref = rel[usable].mean(axis=0)
    # Closed-form 2-D similarity (complex least squares): a * rel ~ ref.
    a = (np.conj(rel) * ref).sum(axis=1) / np.maximum((np.abs(rel) ** 2).sum(axis=1), 1e-9)
    aligned = (z - centre) * a[:, None] / iod
    radius = float(np.sqrt(np.mean(np.abs(ref) ** 2))) / iod
    pose = np.stack(
        [
            centre[:, 0].real / iod,
            centre[:, 0].imag / iod,
            np.log(np.abs(a)) * radius,
            np.angle(a) * radius,
        ],
        axis=1,
    )
    out = [POSE_WEIGHT * pose]
    for region in REGIONS:
        pts = aligned[:, list(region)]
        out.append(np.concatenate([pts.real, pts.imag], axis=1) / np.sqrt(len(region)))
    return [x.astype(np.float32) for x in out]


def _sq_distances(x: F32) -> F32:
    """All pairwise squared Euclidean distances between rows (float32, n x n)."""
    x = (x - x.mean(axis=0)).astype(np.float32)
    sq = np.einsum("ij,ij->i", x, x)
    d = x @ x.T
    d *= -2.0
    d += sq[:, None]
    d += sq[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def _frame_distances(appearance: F32, landmarks: F32, usable: B) -> F32:
    """Distance between every two frames: the larger of a geometric and a photometric
    term, each in units of its own median natural step. The geometric term is the largest
    displacement of any face part (head pose or one region's shape) in interocular units,
    the photometric one the larger RMS difference of the two thumbnails: a jump is visible
    when any one part jumps, and still parts (only tracking noise) stay small."""
    app = _fill_unusable(np.asarray(appearance, np.float32), usable)
    if app.shape[1] == APPEARANCE_DIM:
        colour = slice(_FRAME_COLOUR.start, _FACE_COLOUR.stop)
        thumbs = [app[:, _FRAME_GRAY], app[:, _FACE_GRAY], app[:, colour]]
    else:  # someone else's appearance vector: one channel
        thumbs = [app]
    geo = _max_rms_distance(_landmark_channels(landmarks, usable), usable)
    photo = _max_rms_distance(thumbs, usable, per_dim=True)
    return np.maximum(geo, photo, out=geo)


def _max_rms_distance(channels: list[F32], usable: B, *, per_dim: bool = False) -> F32:
    """Largest channel distance per frame pair, in units of its median natural step."""
    dist: F32 | None = None
    for channel in channels:
        d2 = _sq_distances(channel)
        if per_dim:
            d2 *= 1.0 / channel.shape[1]
        dist = d2 if dist is None else np.maximum(dist, d2, out=dist)
    assert dist is not None
    dist *= 1.0 / _median_step(dist, usable)
    return np.sqrt(dist, out=dist)


def _median_step(dist: F32, usable: B) -> float:
    """Median of the natural (i, i + 1) entries of a distance matrix; never 0 (a still
    channel would otherwise divide by zero)."""
    steps = np.diagonal(dist, 1)[usable[:-1] & usable[1:]]
    med = float(np.median(steps)) if len(steps) else 0.0
    if med > 0:
        return med
    pos = steps[steps > 0]
    return float(pos.mean()) if len(pos) else 1.0


def _motion_filter(dist: F32, usable: B) -> F32:
    """Weighted mean of dist[a + k, b + k] over the filter taps (Video Textures' filter to
    preserve dynamics); taps that fall outside the clip or on unusable frames are left out,
    and pairs with too little support are infinite."""
    n = len(dist)
    u = usable.astype(np.float32)
    num = np.zeros_like(dist)
    den = np.zeros_like(dist)
    masked = dist * u[:, None]
    masked *= u[None, :]
    for k, w in zip(FILTER_OFFSETS, FILTER_WEIGHTS, strict=True):
        lo, hi = max(0, -k), min(n, n - k)
        num[lo:hi, lo:hi] += w * masked[lo + k : hi + k, lo + k : hi + k]
        uk = u[lo + k : hi + k]
        den[lo:hi, lo:hi] += w * np.outer(uk, uk)
    del masked
    # The two central taps (weight 3 each) straddle the cut: at least one must be there.
    ok = den >= min(FILTER_WEIGHTS[1:3])
    np.divide(num, den, out=num, where=ok)
    num[~ok] = np.inf
    return num


def _transition_costs(filtered: F32, usable: B, min_jump: int) -> F32:
    """cost[i, j] of showing j right after i: filtered distance of j to i + 1, the frame
    it replaces; infinite where j is unusable or the jump is shorter than `min_jump`."""
    n = len(filtered)
    cost = np.full_like(filtered, np.inf)
    cost[:-1] = filtered[1:]
    # Where i + 1 does not exist or is unusable, compare j - 1 with i instead: j then
    # continues i as i + 1 would have.
    alt = np.flatnonzero(~np.append(usable[1:], False))
    cost[alt, 0] = np.inf
    cost[alt, 1:] = filtered[alt, :-1]
    cost[~usable] = np.inf
    cost[:, ~usable] = np.inf
    for i in range(n):  # the band |j - (i + 1)| < min_jump: too short a jump
        cost[i, max(0, i + 2 - min_jump) : min(n, i + 1 + min_jump)] = np.inf
    return cost


def _select(
    cost: F32, usable: B, fps: float, max_cost: float, limit: float, per_frame: int
) -> tuple[float, tuple[I32, I32, F32]]:
    """Jumps that are local minima of the cost matrix under the lowest threshold from
    `max_cost` up to `limit` that lets EXIT_SHARE of the usable frames reach a jump
    within EXIT_WITHIN_S; at most `per_frame` (the cheapest) per source frame."""
    size = 2 * LOCAL_MIN_RADIUS + 1
    local = ndimage.minimum_filter(cost, size=size, mode="constant", cval=np.inf)
    minima = cost <= local
    minima &= np.isfinite(cost)
    src, dst = np.nonzero(minima)
    del local, minima
    c = cost[src, dst]
    order = np.lexsort((c, src))
    src, dst, c = src[order].astype(np.int32), dst[order].astype(np.int32), c[order]
    keep = np.arange(len(src)) - np.searchsorted(src, src) < per_frame
    src, dst, c = src[keep], dst[keep], c[keep]
    threshold = max_cost
    while True:
        ok = c <= threshold
        wait = _wait_for_exit(src[ok], usable)[usable]
        if threshold >= limit or _share(wait < EXIT_WITHIN_S * fps) >= EXIT_SHARE:
            return threshold, (src[ok], dst[ok], c[ok])
        threshold = min(round(threshold * 1.1, 3), limit)


def _repair(src: I32, dst: I32, c: F32, cost: F32, usable: B) -> tuple[I32, I32, F32]:
    """Add the cheapest jump out of every dead end, then out of every closed group of
    frames other than the largest, so every usable frame plays on forever and the walker
    always finds its way back into the main part of the graph."""
    n = len(usable)
    out = np.bincount(src, minlength=n)
    extra = [(i, int(np.argmin(cost[i]))) for i in np.flatnonzero(usable & (out == 0))]
    src, dst, c = _append(src, dst, c, extra, cost)
    if np.any(usable & (np.bincount(src, minlength=n) == 0)):
        raise MediaError("the footage has no frame pair to loop through; record it again.")
    adj = coo_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(n, n)).tocsr()
    _, labels = connected_components(adj, directed=True, connection="strong")
    main = int(np.argmax(np.bincount(labels[usable])))
    leaves = np.ones(labels.max() + 1, bool)
    leaves[labels[src[labels[src] != labels[dst]]]] = False
    targets = np.flatnonzero(labels == main)
    extra = []
    for comp in np.flatnonzero(leaves):
        members = np.flatnonzero((labels == comp) & usable)
        if comp == main or not len(members):
            continue
        sub = cost[np.ix_(members, targets)]
        k, t = np.unravel_index(int(np.argmin(sub)), sub.shape)
        extra.append((int(members[k]), int(targets[t])))
    return _append(src, dst, c, extra, cost)


def _append(
    src: I32, dst: I32, c: F32, extra: list[tuple[int, int]], cost: F32
) -> tuple[I32, I32, F32]:
    ok = [(i, j) for i, j in extra if np.isfinite(cost[i, j])]
    if not ok:
        return src, dst, c
    s, d = np.array(ok, np.int32).T
    return (
        np.concatenate([src, s]),
        np.concatenate([dst, d]),
        np.concatenate([c, cost[s, d].astype(np.float32)]),
    )


def idle_scores(mouth: F32, usable: B, speech: F32, fps: float) -> F32:
    """Per frame 0..1: the mouth is closed and at rest (its usual closed width and
    rounding, no teeth) and nobody speaks, averaged over a short window around the
    frame (a mouth that opens 0.2 s later is not idle)."""
    mouth = np.nan_to_num(np.asarray(mouth, np.float64))
    ap, width, rnd, teeth = mouth.T
    u = np.array(usable, bool)
    if not u.any():
        return np.zeros(len(usable), np.float32)
    win = 2 * max(1, round(0.2 * fps)) + 1
    rest = float(np.percentile(ap[u], 10))
    spread = max(float(np.percentile(ap[u], 90)) - rest, 1e-3)
    ap_near = ndimage.uniform_filter1d(np.where(u, ap, rest + spread), win)
    closed = np.clip(1.0 - (ap_near - rest) / (0.5 * spread), 0.0, 1.0)
    ref = u & (closed > 0.5)
    ref = ref if ref.sum() >= 5 else u
    w0, r0 = np.median(width[ref]), np.median(rnd[ref])
    # Scales: a smile widens the mouth by ~10-20 %, pursed lips push out ~0.02 IOD.
    neutral = (
        np.clip(1.0 - np.abs(width - w0) / (0.15 * w0), 0.0, 1.0)
        * np.clip(1.0 - np.abs(rnd - r0) / 0.03, 0.0, 1.0)
        * np.clip(1.0 - ndimage.uniform_filter1d(teeth, win) / 0.5, 0.0, 1.0)
    )
    talk = ndimage.uniform_filter1d(np.clip(np.nan_to_num(speech), 0.0, 1.0), win)
    idle = closed * neutral * (1.0 - talk)
    return np.where(u, idle, 0.0).astype(np.float32)
