"""Photo avatars: `livetwin clone PORTRAIT.jpg` turns one portrait image into a bundle that
`livetwin.render.photo.PhotoAnimator` animates by landmark-driven mesh warping.

The bundle (`kind: photo`) holds the consent record, the portrait as PNG (upright, EXIF
orientation applied), and `photo.npz`: the 478 face-mesh landmarks, the triangle mesh of
the warp (face-mesh triangles, the eye and mouth openings filled, rings of points around
the head anchored at the image border) and the photo's own mouth descriptor (its rest
shape). Everything is checked before anything is written, and written through
`bundle.staging`, so a refused or interrupted clone leaves nothing behind.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

from livetwin.avatar import bundle, face
from livetwin.avatar.consent import load_consent
from livetwin.config import CloneConfig
from livetwin.errors import MediaError

if TYPE_CHECKING:
    from livetwin.avatar.clone import CloneResult, Progress

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
U8 = npt.NDArray[np.uint8]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
PORTRAIT = "portrait.png"
DATA = "photo.npz"
REQUIRED = ("consent.yaml", PORTRAIT, DATA)
MIN_SIDE = 128  # smaller pictures are thumbnails, not portraits
MAX_SIDE = 2048  # larger portraits are stored (and animated) at this size
MAX_PIXELS = 80_000_000  # refuse decompression bombs before decoding
MESH_SIDE = 1280  # face mesh runs on a copy no larger than this
SECOND_FACE_SHARE = 0.2  # a second face counts when at least this share of the main one

# The warp mesh: inner-lip and eye openings as (upper, lower) point chains from corner to
# corner, so the openings can be triangulated as strips (the face-mesh triangles leave
# them open).
MOUTH_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
MOUTH_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
EYE_R_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)  # image left
EYE_R_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
EYE_L_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)  # image right
EYE_L_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
N_MESH = 468  # the iris points (468-477) are not part of the warp mesh
# The mouth opening is split into three strips by two chains of extra points (indices
# N_MESH.. right after the mesh landmarks): the upper part moves with the upper lip, the
# lower part with the jaw, and the gap between them (empty at rest) opens as the mouth
# opens, where the animator paints the oral cavity.
MOUTH_SPLIT = 0.75  # where the chains sit at rest, from the upper to the lower inner lip
N_PAIRS = len(MOUTH_UPPER) - 2
SPLIT_UP = tuple(range(N_MESH, N_MESH + N_PAIRS))
SPLIT_LO = tuple(range(N_MESH + N_PAIRS, N_MESH + 2 * N_PAIRS))
N_FACE = N_MESH + 2 * N_PAIRS
HEAD_RING, ANCHOR_RING = 1.35, 2.3  # ring radii, in face-oval radii from its centre


def _face_oval() -> tuple[int, ...]:
    """The face-oval landmarks in order around the face."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL

    nxt = dict(FACEMESH_FACE_OVAL)
    order = [10]
    while (n := nxt[order[-1]]) != order[0]:
        order.append(n)
    return tuple(order)


def _mesh_triangles() -> I32:
    """Triangles of the face mesh (3-cliques of its edges minus the few spurious ones)."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    edges = {(min(a, b), max(a, b)) for a, b in FACEMESH_TESSELATION}
    adj: dict[int, set[int]] = {}
    for a, b in edges:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    tris = {tuple(sorted((a, b, c))) for a, b in edges for c in adj[a] & adj[b]}
    count: dict[tuple[int, int], int] = {}
    for t in tris:
        for e in ((t[0], t[1]), (t[0], t[2]), (t[1], t[2])):
            count[e] = count.get(e, 0) + 1
    # A 3-cycle whose every edge already borders two real triangles is no face.
    real = [t for t in tris
            if not all(count[e] > 2 for e in ((t[0], t[1]), (t[0], t[2]), (t[1], t[2])))]
    return np.array(sorted(real), np.int32)


def _strip(upper: tuple[int, ...], lower: tuple[int, ...]) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    for i in range(len(upper) - 1):
        u0, u1, l0, l1 = upper[i], upper[i + 1], lower[i], lower[i + 1]
        if u0 == l0:
            out.append((u0, u1, l1))
        elif u1 == l1:
            out.append((u0, u1, l0))
        else:
            out += [(u0, u1, l1), (u0, l1, l0)]
    return out


def build_mesh(lm: F32, size: tuple[int, int]) -> tuple[F32, I32, F32]:
    """The warp mesh for landmarks `lm` (478, 3) in an image of `size` (w, h): points
    (n, 2) (the 468 mesh landmarks first, the two mouth chains, then a head ring, an
    anchor ring and the image border), triangles (m, 3), and each point's ring level (0
    face, 1 head ring, 2 still)."""
    from scipy.spatial import Delaunay

    w, h = size
    oval = np.array(_face_oval())
    pts = lm[:N_MESH, :2].astype(np.float64)
    centre = pts[oval].mean(axis=0)
    ring1 = centre + HEAD_RING * (pts[oval] - centre)
    ring2 = centre + ANCHOR_RING * (pts[oval] - centre)
    border = np.array([(x, y) for x in np.linspace(0, w - 1, 5) for y in np.linspace(0, h - 1, 5)
                       if x in (0, w - 1) or y in (0, h - 1)])
    lim = np.array([w - 1, h - 1], np.float64)
    ring1 = np.clip(ring1, 0, lim)
    ring2 = np.clip(ring2, 0, lim)
    outer = np.concatenate([ring1, ring2, border])
    levels_outer = np.concatenate([np.ones(len(ring1)), np.full(len(ring2) + len(border), 2.0)])
    # Drop outer points that coincide (rings clipped onto the border) or sit on the face.
    keep: list[int] = []
    seen: set[tuple[int, int]] = set()
    oval_poly = pts[oval].astype(np.float32)
    for i, p in enumerate(outer):
        key = (round(p[0]), round(p[1]))
        if key in seen or cv2.pointPolygonTest(oval_poly, (float(p[0]), float(p[1])), True) > -2:
            continue
        seen.add(key)
        keep.append(i)
    outer, levels_outer = outer[keep], levels_outer[keep]
    up_i, lo_i = list(MOUTH_UPPER[1:-1]), list(MOUTH_LOWER[1:-1])
    split = pts[up_i] + MOUTH_SPLIT * (pts[lo_i] - pts[up_i])
    points = np.concatenate([pts, split, split, outer]).astype(np.float32)
    levels = np.concatenate([np.zeros(N_FACE), levels_outer]).astype(np.float32)

    tris = [tuple(t) for t in _mesh_triangles().tolist()]
    c0, c1 = MOUTH_UPPER[0], MOUTH_UPPER[-1]
    chain_up, chain_lo = (c0, *SPLIT_UP, c1), (c0, *SPLIT_LO, c1)
    for up, lo in ((MOUTH_UPPER, chain_up), (chain_up, chain_lo), (chain_lo, MOUTH_LOWER),
                   (EYE_R_UPPER, EYE_R_LOWER), (EYE_L_UPPER, EYE_L_LOWER)):
        tris += _strip(up, lo)
    # Outside the face: Delaunay over the face oval and the outer points.
    ids = np.concatenate([oval, N_FACE + np.arange(len(outer))])
    dl = Delaunay(points[ids].astype(np.float64))
    for simplex in dl.simplices:
        t = ids[simplex]
        if all(int(v) < N_MESH for v in t):
            continue  # inside the face oval: the face mesh covers it
        c = points[t].mean(axis=0)
        if cv2.pointPolygonTest(oval_poly, (float(c[0]), float(c[1])), False) > 0:
            continue
        tris.append(tuple(int(v) for v in t))
    return points, np.array(tris, np.int32), levels


def read_image(path: Path) -> U8:
    """An image file as upright RGB uint8 (EXIF orientation applied), or MediaError."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    if not path.is_file():
        raise MediaError(f"{path} does not exist; give the path of a portrait photo.")
    try:
        with Image.open(path) as im:
            upright = ImageOps.exif_transpose(im)
            rgb = np.asarray(upright.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise MediaError(f"{path.name} is not a readable image; give a JPEG, PNG, WebP or BMP "
                         "portrait photo.") from None
    except (OSError, ValueError, SyntaxError):
        raise MediaError(f"{path.name} is damaged or cut short and cannot be decoded; export "
                         "the photo again.") from None
    return np.ascontiguousarray(rgb)


def _count_faces(rgb: U8) -> int:
    import mediapipe as mp

    small, _ = _shrink(rgb, 640)
    with mp.solutions.face_detection.FaceDetection(model_selection=1,
                                                   min_detection_confidence=0.5) as det:
        result = det.process(small)
    dets = [d for d in (result.detections or []) if d.score[0] >= 0.5]
    if not dets:
        return 0
    areas = [d.location_data.relative_bounding_box.width
             * d.location_data.relative_bounding_box.height for d in dets]
    big = max(areas)
    return sum(1 for a in areas if a >= SECOND_FACE_SHARE * big)


def _shrink(rgb: U8, side: int) -> tuple[U8, float]:
    h, w = rgb.shape[:2]
    s = min(1.0, side / max(h, w))
    if s >= 1.0:
        return rgb, 1.0
    out = cv2.resize(rgb, (max(round(w * s), 1), max(round(h * s), 1)),
                     interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(out), s


def face_landmarks(rgb: U8) -> tuple[F32 | None, int]:
    """Face mesh in static-image mode: (478, 3) landmarks in pixels of `rgb` for the largest
    face (None when there is none), and the number of faces the mesh found."""
    import mediapipe as mp

    h, w = rgb.shape[:2]
    small, _ = _shrink(rgb, MESH_SIDE)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                         max_num_faces=3, min_detection_confidence=0.5) as mesh:
        result = mesh.process(small)
    faces = result.multi_face_landmarks or []
    if not faces:
        return None, 0
    arrs = [np.array([(p.x, p.y, p.z) for p in f.landmark], np.float32)
            * np.array([w, h, w], np.float32) for f in faces]
    best = max(arrs, key=lambda a: float(face.interocular(a)))
    return best, len(arrs)


def check_photo(rgb: U8, name: str, cfg: CloneConfig) -> F32:
    """Refuse pictures that cannot make a photo avatar (MediaError, one sentence); return
    the face landmarks."""
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise MediaError(f"{name} is only {w}x{h} pixels; use a portrait photo at least "
                         f"{MIN_SIDE} pixels on each side (512 or more works best).")
    lm, n_mesh = face_landmarks(rgb)
    n_det = _count_faces(rgb)
    if lm is None:
        if n_det:
            raise MediaError(f"{name}: the face is too small, turned away or covered to be "
                             "animated; use a closer photo of one face looking at the camera.")
        raise MediaError(f"no face was found in {name}; use a photo of one person facing the "
                         "camera.")
    if max(n_mesh, n_det) > 1:
        raise MediaError(f"{name} shows {max(n_mesh, n_det)} faces; use a photo of only the "
                         "person to clone.")
    iod = float(face.interocular(lm))
    if iod < cfg.min_face_px:
        raise MediaError(f"the face in {name} is too small ({iod:.0f} px between the outer eye "
                         f"corners, at least {cfg.min_face_px:.0f} needed); use a closer or "
                         "larger photo.")
    xy = lm[:, :2]
    margin = 0.05 * iod
    if xy[:, 0].min() < -margin or xy[:, 1].min() < -margin or xy[:, 0].max() > w + margin \
            or xy[:, 1].max() > h + margin:
        raise MediaError(f"the face in {name} is cut off by the picture's edge; use a photo "
                         "that shows the whole face with some room around it.")
    return lm


def clone_photo(image: Path, name: str, consent_path: Path | None, *, out_dir: Path,
                force: bool = False, cfg: CloneConfig | None = None,
                progress: Progress | None = None, extra: dict[str, Any] | None = None
                ) -> CloneResult:
    """Clone the person in a portrait photo into `out_dir/NAME.twin` (a photo bundle);
    `extra` adds entries to the manifest."""
    from livetwin.avatar.clone import CloneResult

    t0 = time.perf_counter()
    cfg = cfg or CloneConfig()
    timings: dict[str, float] = {}
    consent = load_consent(consent_path)
    if progress:
        progress.step("checking the photo", None)
    rgb = read_image(image)
    scale = 1.0
    if max(rgb.shape[:2]) > MAX_SIDE:
        rgb, scale = _shrink(rgb, MAX_SIDE)
    lm = check_photo(rgb, image.name, cfg)
    timings["checking the photo"] = round(time.perf_counter() - t0, 3)
    if progress:
        progress.step("building the face mesh", None)
    t1 = time.perf_counter()
    h, w = rgb.shape[:2]
    points, tris, levels = build_mesh(lm, (w, h))
    geo = face.mouth_geometry(lm)
    rest = np.array([*geo, face.teeth_visibility(rgb, lm)], np.float32)
    iod = float(face.interocular(lm))
    warnings: list[str] = []
    if rest[0] > 0.08:
        warnings.append("the mouth is open in the photo; a photo with the lips closed and a "
                        "relaxed face animates more naturally.")
    timings["building the face mesh"] = round(time.perf_counter() - t1, 3)
    with bundle.staging(out_dir, name, force=force) as tmp:
        ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise MediaError(f"{image.name} could not be re-encoded as PNG.")
        (tmp / PORTRAIT).write_bytes(png.tobytes())
        with (tmp / DATA).open("wb") as fh:
            np.savez_compressed(fh, landmarks=lm.astype(np.float32), points=points,
                                triangles=tris, levels=levels, mouth=rest)
        shutil.copyfile(consent_path, tmp / "consent.yaml")  # type: ignore[arg-type]
        seconds = time.perf_counter() - t0
        quality = {"width": w, "height": h, "face_iod_px": round(iod, 1),
                   "mouth_aperture": round(float(rest[0]), 4),
                   "mouth_width": round(float(rest[1]), 4),
                   "teeth_visible": round(float(rest[3]), 3),
                   "mesh_triangles": len(tris), "clone_seconds": round(seconds, 2)}
        info: dict[str, Any] = {
            "kind": "photo",
            "source": {"file": image.name, "sha256": bundle.sha256_file(image),
                       "bytes": image.stat().st_size, "width": round(w / scale),
                       "height": round(h / scale)},
            "portrait": PORTRAIT,
            "photo": {"file": DATA, "iod_px": round(iod, 2),
                      "rest_mouth": [round(float(v), 4) for v in rest]},
            "consent": consent.record(),
            "timings_s": timings,
            "quality": quality,
            "warnings": warnings,
            **(extra or {}),
        }
        manifest = bundle.write_manifest(tmp, name, info)
    return CloneResult(out_dir / f"{name}{bundle.SUFFIX}", manifest, warnings,
                       time.perf_counter() - t0, timings)
