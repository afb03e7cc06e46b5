"""The frame compositor on a real clone (tedlieu): identity, driven mouth (the re-dub idea
of ARCHITECTURE.md §4 at its simplest), closed mouth, seams, and PNGs a person looks at."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from livetwin.avatar import face
from livetwin.render.compositor import Compositor

pytestmark = [pytest.mark.media, pytest.mark.slow]

CHECK_DIR = Path("/tmp/render_check")
U8 = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def comp(ted_twin: Path) -> Compositor:
    """A compositor on the session's plain tedlieu clone (conftest `ted_twin`)."""
    return Compositor(ted_twin)


def apertures(frames: list[U8]) -> npt.NDArray[np.float64]:
    """ARCHITECTURE.md §4 aperture, measured by face mesh on rendered frames (NaN: no face)."""
    import mediapipe as mp

    out = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, refine_landmarks=True,
                                         max_num_faces=1) as mesh:
        for rgb in frames:
            res = mesh.process(rgb)
            if not res.multi_face_landmarks:
                out.append(np.nan)
                continue
            h, w = rgb.shape[:2]
            lm = np.array([(p.x * w, p.y * h, p.z * w)
                           for p in res.multi_face_landmarks[0].landmark], np.float32)
            out.append(float(face.mouth_geometry(lm)[0]))
    return np.array(out)


def usable(comp: Compositor) -> npt.NDArray[np.int64]:
    return np.flatnonzero(comp.footage.usable & np.isfinite(comp.footage.mouth).all(axis=1))


def lower_face_diff(comp: Compositor, i: int, out: U8) -> float:
    m = comp.mask_at(i)
    assert m is not None
    (x0, y0, x1, y1), alpha = m
    diff = np.abs(out[y0:y1, x0:x1].astype(np.float32)
                  - comp.footage.frame(i)[y0:y1, x0:x1]).mean(axis=2)
    return float((diff * alpha).sum() / alpha.sum())


def test_identity_own_descriptor_keeps_the_base_frame(comp: Compositor) -> None:
    ok = usable(comp)[::15]
    comp.allow_own = True
    comp.reset()
    own = [lower_face_diff(comp, int(i), comp.render(int(i), comp.footage.mouth[i]))
           for i in ok]
    comp.allow_own = False
    try:
        pasted = []
        for i in ok:
            comp.reset()
            pasted.append(lower_face_diff(comp, int(i), comp.render(int(i),
                                                                    comp.footage.mouth[i])))
    finally:
        comp.allow_own = True
    print(f"identity: own-mouth diff {np.mean(own):.2f}, nearest-patch diff "
          f"mean {np.mean(pasted):.2f} p95 {np.percentile(pasted, 95):.2f} (0-255, in mask)")
    assert max(own) < 0.5
    assert np.mean(pasted) < 12.0


def test_driven_aperture_follows_the_target(comp: Compositor) -> None:
    ok = usable(comp)
    n = comp.footage.n
    held = ok[ok >= int(0.85 * n)]
    bases = ok[ok < int(0.85 * n) - len(held)]
    start = int(bases[len(bases) // 3])
    comp.reset()
    frames, targets = [], []
    for k, t in enumerate(held):
        b = start + k
        if not comp.footage.usable[b]:
            continue
        frames.append(comp.render(b, comp.footage.mouth[t]))
        targets.append(float(comp.footage.mouth[t, 0]))
    got = apertures(frames)
    keep = np.isfinite(got)
    r = float(np.corrcoef(got[keep], np.array(targets)[keep])[0, 1])
    base_ap = comp.footage.mouth[start:start + len(held), 0]
    r_base = float(np.corrcoef(base_ap[: len(targets)], targets)[0, 1])
    print(f"driven: r(rendered aperture, target) = {r:.3f} over {keep.sum()} frames "
          f"(base frames' own aperture vs target: r = {r_base:.3f})")
    assert keep.mean() > 0.95
    assert r > 0.7


def test_lip_shift_moves_a_patch_to_the_asked_aperture(
    comp: Compositor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One patch of middling aperture, pasted on ten base frames, asked for its own
    # aperture and for 0.025 IOD less and more: the lip shift alone must open and close it.
    desc = comp.atlas.descriptors[:, 0]
    pick = int(np.argmin(np.abs(desc - np.median(desc))))
    own = float(desc[pick])
    monkeypatch.setattr(comp, "_select", lambda *_a, **_k: pick)
    bases = usable(comp)[:: max(1, len(usable(comp)) // 10)][:10]
    got = {}
    for delta in (-0.025, 0.0, 0.025):
        target = comp.atlas.descriptors[pick].copy()
        target[0] = own + delta
        got[delta] = np.nanmean(apertures([comp.render(int(b), target) for b in bases]))
    print(f"lip shift: patch aperture {own:.3f}; rendered at -0.025 / 0 / +0.025: "
          + " / ".join(f"{v:.3f}" for v in got.values()))
    assert got[-0.025] < got[0.0] - 0.01
    assert got[0.025] > got[0.0] + 0.01


def test_closed_target_closes_open_mouths(comp: Compositor) -> None:
    ok = usable(comp)
    mouth = comp.footage.mouth
    open_frames = ok[np.argsort(mouth[ok, 0])[-40:]]
    closed = np.nanpercentile(mouth[ok], 5, axis=0).astype(np.float32)
    closed[1:] = np.nanmedian(mouth[ok, 1:], axis=0)
    comp.reset()
    got = apertures([comp.render(int(i), closed) for i in open_frames])
    before = mouth[open_frames, 0]
    print(f"closed: base aperture median {np.median(before):.3f} -> rendered "
          f"{np.nanmedian(got):.3f} (target {closed[0]:.3f})")
    assert np.nanmedian(got) < 0.3 * np.median(before)
    assert np.nanmedian(got) < closed[0] + 0.05


def boundary_gradient(img: U8, alpha: npt.NDArray[np.float32], box: tuple[int, ...]) -> float:
    x0, y0, x1, y1 = box
    g = cv2.cvtColor(img[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32)
    mag = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    band = (alpha > 0.15) & (alpha < 0.85)
    return float(mag[band].mean())


def test_no_seam_at_the_mask_boundary(comp: Compositor) -> None:
    ok = usable(comp)
    rng = np.random.default_rng(3)
    ratios = []
    comp.reset()
    for i in rng.choice(ok, 60, replace=False):
        target = comp.footage.mouth[rng.choice(ok)]
        out = comp.render(int(i), target)
        m = comp.mask_at(int(i))
        assert m is not None
        box, alpha = m
        ratios.append(boundary_gradient(out, alpha, box)
                      / max(boundary_gradient(comp.footage.frame(int(i)), alpha, box), 1e-3))
    print(f"seam: boundary gradient rendered/base median {np.median(ratios):.3f} "
          f"p95 {np.percentile(ratios, 95):.3f}")
    assert np.median(ratios) < 1.15
    assert np.percentile(ratios, 95) < 1.5


def test_sentence_pngs(comp: Compositor, tmp_path: Path) -> None:
    ok = usable(comp)
    mouth = comp.footage.mouth[ok]
    lo, hi = np.nanpercentile(mouth, 3, axis=0), np.nanpercentile(mouth, 97, axis=0)
    sweep = np.concatenate([np.zeros(3), np.sin(np.linspace(0, np.pi, 18)) ** 0.7, np.zeros(3)])
    start = int(ok[len(ok) // 2])
    comp.reset()
    frames, crops = [], []
    for k, s in enumerate(sweep):
        target = (lo + (hi - lo) * s).astype(np.float32)
        target[1] = float(np.nanmedian(mouth[:, 1]))
        out = comp.render(start + k, target)
        frames.append(out)
        m = comp.mask_at(start + k)
        assert m is not None
        x0, y0, x1, y1 = m[0]
        crop = out[y0:y1, x0:x1]
        crops.append(cv2.resize(crop, (256, round(256 * crop.shape[0] / crop.shape[1])),
                                interpolation=cv2.INTER_CUBIC))
    grid = _grid(frames, 8)
    h = min(c.shape[0] for c in crops)
    mouths = _grid([c[:h] for c in crops], 8)
    CHECK_DIR.mkdir(parents=True, exist_ok=True)
    for name, img in (("sentence_grid.png", grid), ("sentence_mouths.png", mouths)):
        assert cv2.imwrite(str(tmp_path / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        shutil.copyfile(tmp_path / name, CHECK_DIR / name)
    t = comp.timing()
    print("timing ms " + ", ".join(f"{s} {v['p50']:.2f}/{v['p99']:.2f}" for s, v in t.items()))


@pytest.fixture(scope="module")
def sweater(sweater_run) -> Compositor:  # type: ignore[no-untyped-def]
    """The session's clone of the bearded portrait clip (footage at 720x1280, conftest
    `sweater_run`): its beard-against-neck jaw edge shows any patch whose jaw outline
    differs from the base frame's."""
    path, proc = sweater_run
    assert proc.returncode == 0, proc.stderr
    return Compositor(path)


def jaw_band_gradient(img: U8, lm: npt.NDArray[np.float32]) -> float:
    """Mean gradient magnitude inside the face just above its jaw line: between the base
    frame's jaw outline pulled in by 0.025 IOD and by 0.16 IOD, lips left out. A patch
    whose own jaw edge lands inside the base face (a ghost chin) adds edges here."""
    iod = float(face.interocular(lm))
    shape = img.shape[:2]
    face_mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(face_mask, [np.round(lm[list(face.JAW), :2]).astype(np.int32)], 1)

    def erode(r: float) -> npt.NDArray[np.uint8]:
        k = max(1, round(r * iod))
        return cv2.erode(face_mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                              (2 * k + 1, 2 * k + 1)))

    lips = np.zeros(shape, np.uint8)
    cv2.fillPoly(lips, [np.round(lm[list(face.OUTER_LIP), :2]).astype(np.int32)], 1)
    lips = cv2.dilate(lips, np.ones((round(0.16 * iod),) * 2, np.uint8))
    band = (erode(0.025) > 0) & (erode(0.16) == 0) & (lips == 0)
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mag = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    return float(mag[band].mean())


def test_no_ghost_jaw_line(sweater: Compositor) -> None:
    comp = sweater
    ok = usable(comp)
    rng = np.random.default_rng(5)
    ratios = []
    comp.allow_own = False
    try:
        for i in rng.choice(ok, 80, replace=False):
            comp.reset()
            out = comp.render(int(i), comp.footage.mouth[rng.choice(ok)])
            lm = comp.footage.landmarks[int(i)]
            ratios.append(jaw_band_gradient(out, lm)
                          / max(jaw_band_gradient(comp.footage.frame(int(i)), lm), 1e-3))
    finally:
        comp.allow_own = True
    r = np.array(ratios)
    print(f"ghost: jaw-band gradient rendered/base median {np.median(r):.3f} "
          f"p90 {np.percentile(r, 90):.3f} max {r.max():.3f}")
    assert np.median(r) < 1.05
    assert np.percentile(r, 90) < 1.15


def _grid(images: list[U8], cols: int) -> U8:
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    out = np.zeros((rows * h, cols * w, 3), np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    return out
