"""One real `livetwin serve` (under `--supervise` where it exists) with every peer, shared
by the fault tests of this folder: starting the daemon is most of the cost."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from livetwin.runtime.fault_rig import FaultRig


@pytest.fixture(scope="package")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultRig]:
    with FaultRig(tmp_path_factory.mktemp("faults")) as r:
        yield r


def need(present: bool, what: str) -> None:
    """Skip without `what` here; in CI (`make sysdeps` installs it) fail instead."""
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing; CI must have it (make sysdeps)")
    pytest.skip(f"{what} is missing on this machine")
