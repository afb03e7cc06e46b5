"""The `livetwin` commands of the show part (registered by cli.build_parser)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this part's sub-commands to the `livetwin` parser."""
