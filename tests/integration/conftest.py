"""Fixtures shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_clone_media import run_clone


@pytest.fixture(scope="session")
def ted_twin(media, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """One plain clone of the tedlieu clip (no gestures), shared by the render tests:
    they only read the bundle."""
    out = tmp_path_factory.mktemp("ted_twin")
    proc = run_clone(media("tedlieu_60s_edtalk_pose_source2.mp4"), out, "ted")
    assert proc.returncode == 0, proc.stderr
    return out / "ted.twin"


# Gesture clips declared at clone time, shared by the gesture playback and render tests.
TED_GESTURES = {"nod": {"start": 20.0, "end": 21.6}, "shrug": {"start": 41.0, "end": 42.0}}


@pytest.fixture(scope="session")
def ted_gestures(media, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """One clone of the tedlieu clip with the TED_GESTURES clips, shared by the gesture
    tests (they only read the bundle)."""
    out = tmp_path_factory.mktemp("ted_gestures")
    proc = run_clone(media("tedlieu_60s_edtalk_pose_source2.mp4"), out, "ted", TED_GESTURES)
    assert proc.returncode == 0, proc.stderr
    return out / "ted.twin"
