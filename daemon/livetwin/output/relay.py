"""A child process that relays FLV from stdin to an RTMP server.

PyAV holds the GIL while FFmpeg opens an RTMP connection (TCP connect, handshake,
connect/publish round trips): done in the daemon, that froze the tick thread for
~200 ms on every (re)connect. In this child it freezes nothing. It prints "connected"
once the server accepted the stream and exits non-zero, one line on stderr, on failure.

Usage: python -m livetwin.output.relay rtmp://server/app/key (sinks.RtmpSink starts it)
"""

from __future__ import annotations

import os
import sys

import av


class _Stdin:
    """stdin for PyAV: read(n) returns what has arrived instead of waiting for n bytes
    (a buffered read would hold the live stream back by PyAV's 32 KB read size)."""

    def read(self, n: int) -> bytes:
        return os.read(0, n)


def relay(url: str) -> None:
    """Copy FLV packets from stdin to `url` until stdin ends."""
    with av.open(_Stdin(), "r", format="flv",
                 options={"analyzeduration": "0", "probesize": "2048"}) as inp:
        with av.open(url, "w", format="flv",
                     options={"flvflags": "no_duration_filesize"}) as out:
            streams = {s.index: out.add_stream_from_template(s) for s in inp.streams
                       if s.type in ("video", "audio")}
            told = False
            for pkt in inp.demux():
                if pkt.dts is None or pkt.stream.index not in streams:
                    continue
                pkt.stream = streams[pkt.stream.index]
                out.mux(pkt)
                if not told:
                    print("connected", flush=True)
                    told = True


def main() -> int:
    """Entry point of the child process."""
    try:
        relay(sys.argv[1])
    except (OSError, av.FFmpegError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
