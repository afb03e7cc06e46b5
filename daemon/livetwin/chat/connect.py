"""What every chat connector shares: reconnecting with backoff, and a line connection
over plain TCP, TLS or WebSocket.

`Backoff` doubles the wait after each failed or short-lived session (0.5 s up to 30 s,
with jitter so many daemons do not reconnect in step) and starts again from the bottom
after a session that lived `healthy_s`, or after one that got into the channel (joined)
while such resets stay rare (`joined_resets` a minute): a chat that drops now and then
is back within a second, one that accepts and drops at once is still backed off.
`open_lines(url)` gives `LineConn` for `irc://host:port` (TCP), `ircs://host:port`
(TLS) and `ws://` / `wss://` (WebSocket, one or more lines per message), so a connector
speaks lines and never sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from livetwin.errors import InputError
from livetwin.events import ChatKind

# What a connector calls per viewer event: emit(platform, user, text, kind).
Emit = Callable[[str, str, str, ChatKind], object]
MAX_LINE = 16 * 1024  # IRCv3 tags may make a line up to 8 KiB + 512
IRC_SCHEMES = {"irc": 6667, "ircs": 6697, "ws": 80, "wss": 443}  # scheme -> default port


@dataclass
class Backoff:
    """Waits between reconnects (module doc); `rng` is injected for tests."""

    first_s: float = 0.5
    max_s: float = 30.0
    healthy_s: float = 10.0
    joined_resets: int = 5  # a minute
    rng: random.Random = field(default_factory=random.Random)
    current: float = 0.0
    clock: Callable[[], float] = time.monotonic
    _resets: list[float] = field(default_factory=list)

    def next_wait(self, session_s: float, *, joined: bool = False) -> float:
        """Seconds to wait before the next try, after a session that lasted `session_s`
        (`joined`: it got into the channel)."""
        now = self.clock()
        self._resets = [t for t in self._resets if now - t < 60.0]
        if joined and len(self._resets) < self.joined_resets:
            self._resets.append(now)
            self.current = 0.0
        if session_s >= self.healthy_s:
            self.current = 0.0
        self.current = self.first_s if self.current == 0 else min(self.max_s,
                                                                   self.current * 2)
        return self.current * (0.8 + 0.4 * self.rng.random())


class LineConn:
    """A connection that reads and writes text lines (module doc)."""

    def __init__(self, reader: asyncio.StreamReader | None = None,
                 writer: asyncio.StreamWriter | None = None, ws: Any = None) -> None:
        self._reader, self._writer, self._ws = reader, writer, ws
        self._pending: list[str] = []

    async def readline(self) -> str | None:
        """The next line without its line ending; None when the peer closed."""
        if self._ws is not None:
            while not self._pending:
                try:
                    msg = await self._ws.recv()
                except Exception:  # websockets raises ConnectionClosed* on close
                    return None
                text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else msg
                self._pending = [ln for ln in text.split("\r\n") if ln]
            return self._pending.pop(0)
        assert self._reader is not None
        try:
            raw = await self._reader.readuntil(b"\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        except asyncio.LimitOverrunError:
            await self._reader.read(MAX_LINE)  # drop the oversized line
            return ""
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    async def send(self, line: str) -> None:
        line = line.replace("\r", " ").replace("\n", " ")
        if self._ws is not None:
            await self._ws.send(line)
            return
        assert self._writer is not None
        self._writer.write((line + "\r\n").encode("utf-8"))
        await self._writer.drain()

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()


def parse_url(url: str, default_ports: dict[str, int]) -> tuple[str, str, int]:
    """(scheme, host, port) of a connector URL; InputError for an unusable one."""
    parts = urlsplit(url)
    if parts.scheme not in default_ports or not parts.hostname:
        raise InputError(f"chat server URL {url!r} is not usable; use one of "
                         f"{', '.join(s + '://host:port' for s in default_ports)}.")
    return parts.scheme, parts.hostname, parts.port or default_ports[parts.scheme]


async def open_lines(url: str, limit_s: float = 10.0) -> LineConn:
    """A LineConn to `url` (irc, ircs, ws, wss)."""
    scheme, host, port = parse_url(url, IRC_SCHEMES)
    if scheme in ("ws", "wss"):
        import websockets

        ws = await asyncio.wait_for(websockets.connect(url, max_size=MAX_LINE * 4), limit_s)
        return LineConn(ws=ws)
    ctx = ssl.create_default_context() if scheme == "ircs" else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ctx, limit=MAX_LINE), limit_s)
    return LineConn(reader, writer)
