"""End-to-end clones of real footage from ../shared/media through the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from livetwin.avatar import bundle, face

pytestmark = [pytest.mark.media, pytest.mark.slow]

CONSENT = {
    "subject": "Test Person",
    "statement": "Footage used only for livetwin's internal tests, never published.",
    "date": "2026-11-01",
    "contact": "maintainers",
}

# Gesture clips declared when tedlieu is cloned (conftest `ted_gestures_run`), shared by
# these clone checks and the gesture playback and render tests.
TED_GESTURES = {"nod": {"start": 20.0, "end": 21.6}, "shrug": {"start": 41.0, "end": 42.0}}


def run_clone(video: Path, out: Path, name: str, gestures: dict[str, Any] | None = None
              ) -> subprocess.CompletedProcess[str]:
    consent = out / f"{name}.consent.yaml"
    out.mkdir(parents=True, exist_ok=True)
    consent.write_text(yaml.safe_dump(CONSENT))
    cmd = [sys.executable, "-m", "livetwin.cli", "clone", str(video), "--name", name,
           "--consent", str(consent), "--out", str(out)]
    if gestures:
        (out / "gestures.yaml").write_text(yaml.safe_dump({"gestures": gestures}))
        cmd += ["--gestures", str(out / "gestures.yaml")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


def manifest(path: Path) -> dict[str, Any]:
    return yaml.safe_load((path / "manifest.yaml").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def ted(ted_gestures_run) -> tuple[Path, subprocess.CompletedProcess[str]]:  # type: ignore[no-untyped-def]
    """The session's CLI clone of tedlieu with gesture clips (conftest TED_GESTURES)."""
    return ted_gestures_run  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def sweater(sweater_run) -> tuple[Path, subprocess.CompletedProcess[str]]:  # type: ignore[no-untyped-def]
    """The session's CLI clone of the portrait clip (conftest `sweater_run`)."""
    return sweater_run  # type: ignore[no-any-return]


def test_ted_clone_succeeds_and_verifies(ted) -> None:  # type: ignore[no-untyped-def]
    path, proc = ted
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "atlas_coverage" in proc.stdout and "person_model.val_r" in proc.stdout
    check = bundle.verify(path)
    assert check.ok, check.problems
    comps = set(check.manifest["components"])
    assert set(bundle.REQUIRED) - {"footage"} <= comps
    assert {"footage.mp4", "person_model.onnx", "voice_ref.wav", "report.png"} <= comps


def test_ted_manifest_describes_the_source(ted, media) -> None:  # type: ignore[no-untyped-def]
    path, _ = ted
    m = manifest(path)
    src = m["source"]
    assert src["sha256"] == bundle.sha256_file(media("tedlieu_60s_edtalk_pose_source2.mp4"))
    assert (src["width"], src["height"], src["fps"], src["codec"]) == (256, 256, 25.0, "h264")
    assert abs(src["frames"] - 1499) <= 2
    assert m["format_version"] == bundle.FORMAT_VERSION
    assert m["consent"]["sha256"] == bundle.sha256_file(path / "consent.yaml")
    assert m["consent"]["subject"] == CONSENT["subject"]
    assert m["quality"]["usable_share"] > 0.95
    assert m["quality"]["clone_seconds"] > 0


def test_ted_track_and_atlas(ted) -> None:  # type: ignore[no-untyped-def]
    path, _ = ted
    with np.load(path / "track.npz") as z:
        lm, usable, mouth, times = z["landmarks"], z["usable"], z["mouth"], z["times"]
    n = len(times)
    assert lm.shape == (n, face.N_LANDMARKS, 3) and mouth.shape == (n, 4)
    assert np.all(np.diff(times) > 0)
    ok = lm[usable]
    assert np.all((ok[..., :2] >= -5) & (ok[..., :2] <= 261))  # inside the 256 px frame
    assert np.all(ok[:, face.EYE_OUTER_L, 1] < ok[:, face.LIP_INNER_UP, 1])  # upright
    m = manifest(path)
    assert m["quality"]["atlas_patches"] >= 100
    assert m["quality"]["atlas_coverage"] >= 0.9
    atlas_img = cv2.imread(str(path / "atlas.jpg"))
    assert atlas_img is not None and atlas_img.std() > 10  # real pixels, not a blank sheet


def test_ted_person_model_beats_energy_on_held_out_frames(ted) -> None:  # type: ignore[no-untyped-def]
    path, _ = ted
    pm = manifest(path)["person_model"]
    assert pm["val_frames"] >= 0.14 * 1499
    assert pm["val_r"] > pm["energy_r"] + 0.1, pm
    assert pm["val_r"] > 0.45, pm


def test_ted_person_model_runs_in_onnxruntime(ted) -> None:  # type: ignore[no-untyped-def]
    from livetwin.avatar.ingest import probe, read_audio
    from livetwin.lipsync.person_onnx import PersonMouthModel

    path, _ = ted
    model = PersonMouthModel.load(path / "person_model.onnx")
    pcm = read_audio(probe(path / "footage.mp4"))
    assert pcm is not None
    with np.load(path / "track.npz") as z:
        times, mouth, usable = z["times"], z["mouth"], z["usable"]
    pred = model.predict(pcm, 16000, times)
    assert pred.shape == (len(times), 4)
    held = np.arange(len(times)) >= int(0.85 * len(times))
    sel = held & usable
    r = np.corrcoef(pred[sel, 0], mouth[sel, 0])[0, 1]
    assert r > 0.45


def test_ted_gesture_clips_are_stored_with_frames(ted) -> None:  # type: ignore[no-untyped-def]
    path, _ = ted
    clips = {c["id"]: c for c in yaml.safe_load((path / "gestures.yaml").read_text())["gestures"]}
    assert set(clips) == set(TED_GESTURES)  # nod 20-21.6 s, shrug 41-42 s at 25 fps
    assert (clips["nod"]["start_frame"], clips["nod"]["end_frame"]) == (500, 540)
    assert (clips["shrug"]["start_frame"], clips["shrug"]["end_frame"]) == (1025, 1050)
    assert min(c["tracked"] for c in clips.values()) > 0.95
    assert manifest(path)["gestures"] == list(clips.values())


def test_ted_report_png(ted) -> None:  # type: ignore[no-untyped-def]
    path, _ = ted
    img = cv2.imread(str(path / "report.png"))
    assert img is not None and img.shape[1] == 960 and img.shape[0] > 600


def test_ted_voice_reference(ted) -> None:  # type: ignore[no-untyped-def]
    path, _ = ted
    ref = manifest(path)["voice_reference"]
    assert 8.0 <= ref["end_s"] - ref["start_s"] <= 21.5
    assert ref["snr_db"] > 15


def test_portrait_hevc_clone(sweater) -> None:  # type: ignore[no-untyped-def]
    path, proc = sweater
    assert proc.returncode == 0, proc.stderr
    assert "warning:" in proc.stderr and "20 s long" in proc.stderr
    assert bundle.verify(path).ok
    m = manifest(path)
    src = m["source"]
    assert (src["width"], src["height"], src["codec"]) == (1080, 1920, "hevc")
    with np.load(path / "track.npz") as z:
        lm, usable = z["landmarks"], z["usable"]
    # Landmarks are in source pixels although tracking ran on a smaller decode.
    iod = np.median(np.asarray(face.interocular(lm[usable])))
    assert 150 < iod < 185, iod
    pm = m["person_model"]
    # 20 s leave only 3 s to validate on: the model is kept only where it beats the
    # loudness baseline there, and the clone says so when it is not.
    kept = pm["file"] == "person_model.onnx"
    assert kept == (pm["val_r"] > pm["energy_r"]), pm
    assert kept or "does not beat" in proc.stderr or "hardly predicts" in proc.stderr
    assert ("person_model.onnx" in bundle.verify(path).manifest["components"]) == kept


@pytest.mark.parametrize(("clip", "expect_warning", "speech"), [
    ("woman_expressive_34s_liveportrait_d6.mp4", "34 s long", True),
    ("asian_man_glasses_20s_liveportrait_d9_SILENT.mp4", "no speech", False),
])
def test_other_people_clone(media, tmp_path: Path, clip: str, expect_warning: str,  # type: ignore[no-untyped-def]
                            speech: bool) -> None:
    proc = run_clone(media(clip), tmp_path, "x")
    assert proc.returncode == 0, proc.stderr
    assert expect_warning in proc.stderr.replace("\n", " ")
    path = tmp_path / "x.twin"
    assert bundle.verify(path).ok
    m = manifest(path)
    assert (m["person_model"] is not None) == speech
    assert m["quality"]["usable_share"] > 0.8
