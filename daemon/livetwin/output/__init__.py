"""The live output: media-clocked encoder (PyAV, H.264 + AAC) and its sinks (OBS over
UDP MPEG-TS, RTMP, MP4 recording, dashboard preview). See docs/live.md.

The public names below load on first use (PEP 562): importing the package stays cheap,
so the RTMP relay child (`.relay`) starts with PyAV alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real types for mypy; at run time __getattr__ loads them
    from livetwin.output.encoder import EncodedPacket, EncodedTick, EncoderSettings
    from livetwin.output.live import LiveOutput, OutputStats, TickSource, samples_in_tick
    from livetwin.output.measure import measure_output
    from livetwin.output.sinks import (
        DEFAULT_OBS_URL,
        FileSink,
        PreviewSink,
        RtmpSink,
        Sink,
        SinkStats,
        UdpTsSink,
        sinks_from_config,
    )

__all__ = [
    "DEFAULT_OBS_URL",
    "EncodedPacket",
    "EncodedTick",
    "EncoderSettings",
    "FileSink",
    "LiveOutput",
    "OutputStats",
    "PreviewSink",
    "RtmpSink",
    "Sink",
    "SinkStats",
    "TickSource",
    "UdpTsSink",
    "measure_output",
    "samples_in_tick",
    "sinks_from_config",
]
_MODULE = {"EncodedPacket": "encoder", "EncodedTick": "encoder", "EncoderSettings": "encoder",
           "LiveOutput": "live", "OutputStats": "live", "TickSource": "live",
           "samples_in_tick": "live", "measure_output": "measure"}


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = importlib.import_module(f"livetwin.output.{_MODULE.get(name, 'sinks')}")
        return getattr(module, name)
    raise AttributeError(f"module 'livetwin.output' has no attribute {name!r}")
