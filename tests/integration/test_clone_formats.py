"""Clone reads the containers and codecs people actually have: MPEG-4 Part 2 in AVI,
H.264 in MOV and MKV, and variable-frame-rate phone video."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import yaml

from livetwin.avatar import bundle
from livetwin.cli import main
from tests import mediagen

pytestmark = [pytest.mark.media, pytest.mark.slow]
SOURCE = "tedlieu_60s_edtalk_pose_source2.mp4"


def _clone(video: Path, out: Path) -> dict:  # type: ignore[type-arg]
    consent = mediagen.write_consent(out / "consent.yaml")
    assert main(["clone", str(video), "--name", "c", "--consent", str(consent),
                 "--out", str(out)]) == 0
    assert bundle.verify(out / "c.twin").ok
    return yaml.safe_load((out / "c.twin" / "manifest.yaml").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize(("codec", "suffix", "name"), [
    ("mpeg4", ".avi", "mpeg4"), ("libx264", ".mov", "h264"), ("libx264", ".mkv", "h264"),
])
def test_containers_and_codecs(media, tmp_path: Path, codec: str, suffix: str,  # type: ignore[no-untyped-def]
                               name: str) -> None:
    video = mediagen.make_clip(media(SOURCE), tmp_path / f"clip{suffix}", start=5.0,
                               duration=12.0, codec=codec)
    m = _clone(video, tmp_path)
    assert m["source"]["codec"] == name
    assert m["footage"] == f"footage{suffix}"
    assert abs(m["source"]["frames"] - 300) <= 2
    assert m["quality"]["usable_share"] > 0.95


def _write_vfr(src: Path, out: Path, seconds: float) -> tuple[int, np.ndarray]:
    """Re-encode `src` dropping every other frame in alternate seconds, as phones do under
    load: kept frames keep their true timestamps, so the rate varies 12.5-25 fps."""
    keep = [i for i in range(round(seconds * 25)) if not (i // 25 % 2 and i % 2)]
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(src),
           "-t", str(seconds), "-vf", r"select=not(mod(n\,2)*mod(floor(n/25)\,2))",
           "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac",
           str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return len(keep), np.array(keep) / 25.0


def test_variable_frame_rate_keeps_true_frame_times(media, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    video = tmp_path / "vfr.mp4"
    n, true_times = _write_vfr(media(SOURCE), video, 14.0)
    m = _clone(video, tmp_path)
    assert m["source"]["frames"] == n
    with np.load(tmp_path / "c.twin" / "track.npz") as z:
        times = z["times"]
    np.testing.assert_allclose(times, true_times - true_times[0], atol=0.002)
    steps = np.round(np.diff(times) * 1000)
    assert {40.0, 80.0} <= set(steps.tolist())  # really variable
    assert m["person_model"]["val_r"] is not None
