"""Per-frame face tracking over the whole source video in one decoding pass.

For every frame: 478 mediapipe landmarks in source pixels, the mouth descriptor, the
lower-face patch in the canonical face-aligned frame, and an appearance vector for the
idle-loop graph. Frames are decoded on a second thread while face mesh runs here.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.signal import savgol_filter

from livetwin.avatar import face
from livetwin.avatar.ingest import DecodedFrame, MediaInfo, iter_frames, shrink
from livetwin.avatar.loops import appearance_features, box_from_landmarks
from livetwin.avatar.quality import FaceDetector, FaceSample

F32 = npt.NDArray[np.float32]
MESH_SIDE = 640  # face mesh crops the face itself; a smaller input only saves resizing time
ANALYSIS_SIDE = 1280  # larger videos are decoded smaller: patches never need more
DETECT_EVERY_S = 0.5  # face-count samples for the quality verdict
MAX_PATCH_IOD = 128.0  # canonical patch scale cap: 256x192 px patches
MAX_GAP = 3  # tracking gaps up to this many frames are interpolated


@dataclass
class Track:
    """Everything the tracking pass learned, one row per source frame."""

    times: npt.NDArray[np.float64]  # (n,) seconds
    landmarks: F32  # (n, 478, 3) source pixels, smoothed; NaN where lost
    raw_landmarks: F32  # (n, 478, 3) unsmoothed
    present: npt.NDArray[np.bool_]  # face mesh found a face
    usable: npt.NDArray[np.bool_]  # good for loops, atlas and training
    mouth: F32  # (n, 4) aperture, width, rounding, teeth
    pose: F32  # (n, 3) yaw, pitch, roll in degrees relative to the median head pose
    appearance: F32  # (n, d)
    patches: list[npt.NDArray[np.uint8] | None]  # canonical lower-face patches
    canonical: face.CanonicalFrame | None
    size: tuple[int, int]  # source (width, height)
    samples: dict[int, npt.NDArray[np.uint8]]  # a few frames kept for the report
    face_samples: list[FaceSample]  # face detection every DETECT_EVERY_S

    @property
    def n(self) -> int:
        return len(self.times)


class _Mesh:
    def __init__(self) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False, refine_landmarks=True, max_num_faces=1,
            min_detection_confidence=0.5, min_tracking_confidence=0.5,
        )

    def __call__(self, rgb: npt.NDArray[np.uint8]) -> F32 | None:
        h, w = rgb.shape[:2]
        small, _ = shrink(rgb, MESH_SIDE)
        result = self._mesh.process(small)
        if not result.multi_face_landmarks:
            return None
        pts = result.multi_face_landmarks[0].landmark
        arr = np.array([(p.x, p.y, p.z) for p in pts], np.float32)
        return arr * np.array([w, h, w], np.float32)

    def close(self) -> None:
        self._mesh.close()


def _prefetch(frames: Iterator[DecodedFrame], depth: int = 8) -> Iterator[DecodedFrame]:
    """Decode on a worker thread (PyAV releases the GIL) while the caller tracks."""
    q: queue.Queue[DecodedFrame | BaseException | None] = queue.Queue(depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for f in frames:
                if stop.is_set():
                    return
                q.put(f)
            q.put(None)
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)

    t = threading.Thread(target=work, name="livetwin-decode", daemon=True)
    t.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


def track_video(info: MediaInfo, on_frame: Callable[[int], None] | None = None,
                keep: frozenset[int] = frozenset()) -> Track:
    """Run the tracking pass over every frame of the video; frames listed in `keep` are
    returned whole (for the report). Landmarks come back in source pixels."""
    mesh, detector = _Mesh(), FaceDetector()
    acc = _Accumulator()
    every = max(round(info.fps * DETECT_EVERY_S), 1)
    try:
        for fr in _prefetch(iter_frames(info, ANALYSIS_SIDE)):
            lm = mesh(fr.rgb)
            if lm is not None and not _plausible(lm, fr.rgb.shape):
                lm = None
            acc.add(fr, lm)
            if fr.index % every == 0:
                acc.face_samples.append(detector(fr.rgb, fr.time, fr.scale))
            if fr.index in keep:
                acc.samples[fr.index] = fr.rgb
            if on_frame:
                on_frame(fr.index)
    finally:
        mesh.close()
        detector.close()
    return acc.finish((info.width, info.height))


class _Accumulator:
    """Collects the per-frame results of the tracking pass."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.raw: list[F32 | None] = []
        self.apps: list[F32] = []
        self.patches: list[npt.NDArray[np.uint8] | None] = []
        self.teeth: list[float] = []
        self.canonical: face.CanonicalFrame | None = None
        self.samples: dict[int, npt.NDArray[np.uint8]] = {}
        self.face_samples: list[FaceSample] = []

    def add(self, fr: DecodedFrame, lm: F32 | None) -> None:
        if lm is not None and self.canonical is None:
            iod = min(float(face.interocular(lm)), MAX_PATCH_IOD)
            self.canonical = face.CanonicalFrame.from_landmarks(lm, iod)
        patch, t_vis = _patch(fr.rgb, lm, self.canonical)
        self.times.append(fr.time)
        self.raw.append(None if lm is None else lm / np.float32(fr.scale))
        self.patches.append(patch)
        self.teeth.append(t_vis)
        box = None if lm is None else box_from_landmarks(lm)
        self.apps.append(appearance_features(fr.rgb, box))

    def finish(self, size: tuple[int, int]) -> Track:
        track = _assemble(self.times, self.raw, self.apps, self.patches, self.teeth,
                          self.canonical, size)
        track.samples.update(self.samples)
        track.face_samples.extend(self.face_samples)
        return track


def _plausible(lm: F32, shape: tuple[int, ...]) -> bool:
    # Reject meshes whose eyes sit outside the picture (the face left the frame).
    h, w = shape[:2]
    eyes = lm[[face.EYE_OUTER_L, face.EYE_OUTER_R], :2]
    return bool(np.all(eyes >= 0) and np.all(eyes[:, 0] < w) and np.all(eyes[:, 1] < h))


def _patch(rgb: npt.NDArray[np.uint8], lm: F32 | None, canonical: face.CanonicalFrame | None
           ) -> tuple[npt.NDArray[np.uint8] | None, float]:
    if lm is None or canonical is None:
        return None, 0.0
    try:
        m = canonical.transform(lm)
    except ValueError:
        return None, 0.0
    patch = canonical.warp(rgb, m)
    lm_c = np.concatenate([face.apply_affine(m, lm[:, :2]), lm[:, 2:]], axis=1)
    return patch, face.teeth_visibility(patch, lm_c)


def _assemble(times: list[float], raw: list[F32 | None], apps: list[F32],
              patches: list[npt.NDArray[np.uint8] | None], teeth: list[float],
              canonical: face.CanonicalFrame | None, size: tuple[int, int]) -> Track:
    n = len(times)
    present = np.array([r is not None for r in raw], bool)
    lms = np.full((n, face.N_LANDMARKS, 3), np.nan, np.float32)
    for i, r in enumerate(raw):
        if r is not None:
            lms[i] = r
    filled, usable = _fill_gaps(lms, present)
    usable &= ~_glitches(filled, usable)
    smooth = _smooth(filled, usable)
    geo = face.mouth_geometry(np.nan_to_num(filled))
    mouth = np.concatenate([geo, np.array(teeth, np.float32)[:, None]], axis=1)
    mouth[~usable] = np.nan
    return Track(
        times=np.array(times, np.float64), landmarks=smooth, raw_landmarks=filled,
        present=present, usable=usable, mouth=mouth, pose=head_pose(smooth, usable),
        appearance=np.stack(apps).astype(np.float32) if apps else np.zeros((0, 1), np.float32),
        patches=patches, canonical=canonical, size=size, samples={}, face_samples=[],
    )


def _fill_gaps(lms: F32, present: npt.NDArray[np.bool_]) -> tuple[F32, npt.NDArray[np.bool_]]:
    """Interpolate short tracking gaps; longer gaps stay unusable."""
    out = lms.copy()
    usable = present.copy()
    idx = np.flatnonzero(present)
    for a, b in itertools.pairwise(idx):
        gap = b - a - 1
        if 0 < gap <= MAX_GAP:
            w = np.linspace(0, 1, gap + 2)[1:-1, None, None].astype(np.float32)
            out[a + 1 : b] = (1 - w) * lms[a] + w * lms[b]
            usable[a + 1 : b] = True
    return out, usable


def _glitches(lms: F32, usable: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Frames whose face jumps implausibly against both neighbours (mesh glitches)."""
    bad = np.zeros(len(lms), bool)
    if len(lms) < 3:
        return bad
    iod = np.asarray(face.interocular(np.nan_to_num(lms)))
    centre = np.nan_to_num(lms[:, list(face.STABLE), :2].mean(axis=1))
    step = np.linalg.norm(np.diff(centre, axis=0), axis=1) / np.maximum(iod[1:], 1e-3)
    jump = np.concatenate([[0.0], step]) > 0.35
    bad[1:-1] = jump[1:-1] & jump[2:] & usable[:-2] & usable[2:]
    return bad


def _smooth(lms: F32, usable: npt.NDArray[np.bool_]) -> F32:
    """Zero-phase smoothing over each run of usable frames (keeps the render still)."""
    out = lms.copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], usable.astype(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a >= 7:
            out[a:b] = savgol_filter(lms[a:b], 7, 2, axis=0)
    out[~usable] = np.nan
    return out


def head_pose(lms: F32, usable: npt.NDArray[np.bool_]) -> F32:
    """Yaw, pitch, roll (degrees) of each frame against the person's median head pose,
    from a scaled rigid fit of the stable 3-D landmarks (Kabsch)."""
    pose = np.full((len(lms), 3), np.nan, np.float32)
    if not usable.any():
        return pose
    pts = lms[:, list(face.STABLE), :].astype(np.float64)
    pts = pts - pts.mean(axis=1, keepdims=True)
    pts /= np.linalg.norm(pts, axis=(1, 2), keepdims=True) + 1e-9
    ref = np.median(pts[usable], axis=0)
    for i in np.flatnonzero(usable):
        u, _, vt = np.linalg.svd(pts[i].T @ ref)
        d = np.sign(np.linalg.det(u @ vt))
        r = u @ np.diag([1.0, 1.0, d]) @ vt
        pose[i] = _euler(r)
    return pose


def _euler(r: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    yaw = np.degrees(np.arcsin(np.clip(-r[2, 0], -1, 1)))
    pitch = np.degrees(np.arctan2(r[2, 1], r[2, 2]))
    roll = np.degrees(np.arctan2(r[1, 0], r[0, 0]))
    return float(yaw), float(pitch), float(roll)
