"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from livetwin.render.redub import BUNDLE, redub_figures

from .test_clone_media import TED_GESTURES, run_clone

TED = "tedlieu_60s_edtalk_pose_source2.mp4"
Redub = tuple[dict[str, Any], Path]


@pytest.fixture(scope="session")
def redub_run(media, tmp_path_factory) -> Callable[[str], Redub]:  # type: ignore[no-untyped-def]
    """The re-dub test of one shared video, run once a session: `redub_run(name)` gives
    its figures and the bundle it cloned (the video without its held-out end, no gesture
    clips), which the render tests read as a plain clone."""
    done: dict[str, Redub] = {}

    def get(name: str) -> Redub:
        if name not in done:
            work = tmp_path_factory.mktemp("redub")
            done[name] = redub_figures(media(name), work), work / f"{BUNDLE}.twin"
        return done[name]

    return get


@pytest.fixture(scope="session")
def ted_twin(redub_run) -> Path:  # type: ignore[no-untyped-def]
    """A plain clone of tedlieu (its first 82 %, no gesture clips), shared by the render
    tests, which only read the bundle: the re-dub test's clone, so tedlieu is not cloned
    once more for them."""
    figures, path = redub_run(TED)
    assert (path / "manifest.yaml").is_file(), figures
    return path  # type: ignore[no-any-return]


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
