"""Shared fixtures. Real test media lives in ../shared/media and is never copied here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.make_demo_run import NODE_ID, DemoRun, start_demo_run

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIVETWIN_SHARED", REPO.parent / "shared")).resolve()
MEDIA = SHARED / "media"


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """../shared/media; tests using it skip only where ../shared is absent (CI has it)."""
    if not MEDIA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{MEDIA} is missing; CI must run with ../shared beside the clone")
        pytest.skip("../shared/media is absent on this machine")
    return MEDIA


@pytest.fixture(scope="session")
def media(media_dir: Path):  # type: ignore[no-untyped-def]
    """Look up one clip of ../shared/media by file name."""

    def get(name: str) -> Path:
        path = media_dir / name
        assert path.is_file(), f"missing test clip {path}"
        return path

    return get


# ----------------------------------------------- `make demo` beside the unit tests
# The fresh-copy `make demo` test (tests/e2e/make_demo_run.py) spends about two minutes
# installing and playing a real-time show. It starts in the background once collection
# ends and the unit tests, which assert no timings, run first, beside it; every test
# that measures time runs after it has ended.
_DEMO_RUNS: list[DemoRun] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    demo = [item for item in items if item.nodeid == NODE_ID]
    if demo:
        unit = [item for item in items if item.nodeid.startswith("tests/unit/")]
        rest = [item for item in items if item not in unit and item not in demo]
        items[:] = unit + demo + rest


def pytest_collection_finish(session: pytest.Session) -> None:
    selected = any(item.nodeid == NODE_ID for item in session.items)
    if selected and not session.config.option.collectonly:
        _DEMO_RUNS.append(start_demo_run())


def pytest_sessionfinish(session: pytest.Session) -> None:
    while _DEMO_RUNS:
        _DEMO_RUNS.pop().remove()


@pytest.fixture(scope="session")
def make_demo_run() -> DemoRun:
    """The background `make demo` run, once it has ended."""
    if not _DEMO_RUNS:
        _DEMO_RUNS.append(start_demo_run())
    return _DEMO_RUNS[0].wait()
