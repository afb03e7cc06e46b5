"""Shared fixtures. Real test media lives in ../shared/media and is never copied here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
