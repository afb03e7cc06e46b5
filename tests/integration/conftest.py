"""Fixtures shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_clone_media import TED_GESTURES, run_clone

TED = "tedlieu_60s_edtalk_pose_source2.mp4"


@pytest.fixture(scope="session")
def ted_twin(media, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """One plain clone of the whole tedlieu clip (no gestures), shared by the render
    tests: they only read the bundle. (The re-dub clone, 82 % of the clip with a
    time-budgeted model, left the silence test's speech-vs-silence margin at its limit.)"""
    out = tmp_path_factory.mktemp("ted_twin")
    proc = run_clone(media(TED), out, "ted")
    assert proc.returncode == 0, proc.stderr
    return out / "ted.twin"


@pytest.fixture(scope="session")
def ted_gestures_run(media, tmp_path_factory):  # type: ignore[no-untyped-def]
    """One CLI clone of the tedlieu clip with the TED_GESTURES clips: (bundle, the clone
    process), shared by the clone checks of test_clone_media and the gesture tests (they
    only read the bundle)."""
    out = tmp_path_factory.mktemp("ted_gestures")
    proc = run_clone(media(TED), out, "ted", TED_GESTURES)
    return out / "ted.twin", proc


@pytest.fixture(scope="session")
def ted_gestures(ted_gestures_run) -> Path:  # type: ignore[no-untyped-def]
    """The bundle of `ted_gestures_run`, once the clone succeeded."""
    path, proc = ted_gestures_run
    assert proc.returncode == 0, proc.stderr
    return path  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def sweater_run(media, tmp_path_factory):  # type: ignore[no-untyped-def]
    """One CLI clone of the whole bearded portrait clip (1080x1920 HEVC, 20 s): (bundle,
    the clone process), shared by the portrait clone checks and the ghost-jaw test."""
    out = tmp_path_factory.mktemp("sweater")
    proc = run_clone(media("man_black_sweater_20s_latentsync_demo2.mp4"), out, "sweater")
    return out / "sweater.twin", proc
