"""livetwin for OBS Studio: shows the live twin in a scene and connects OBS to the daemon.

Load it in OBS with Tools > Scripts (see README.md beside this file). It needs only the
Python standard library; the `websockets` package is used when OBS's Python can import
it, otherwise a small built-in RFC 6455 client (`MiniWebSocket` below) talks to the
daemon.

What it does:
- keeps a Media Source (`ffmpeg_source`, default name "livetwin avatar") that plays the
  daemon's low-latency MPEG-TS stream, adds it to the current scene scaled to the canvas
  and re-creates it if it is deleted;
- connects to the daemon's WebSocket `/ws` from a background thread (its own asyncio
  loop, reconnecting with back-off) and shows the connection state in its properties;
- tells the daemon when streaming/recording starts or stops and whether the twin is in
  the program scene (`obs_event`), and which chat to read (`chat_target`);
- hotkeys: pause/resume, next product, call to follow, point to cart, skip line;
- keeps text sources up to date: live captions of the current line, "Now selling: ..."
  and, optionally, a chat overlay with the last chat messages and the twin's answers.

Threading: OBS API calls happen only on OBS's own threads (script callbacks, timers,
frontend events). The WebSocket thread never touches OBS; it puts text updates in a
queue that an OBS timer drains.

The protocol is described in docs/live.md of the livetwin project.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import heapq
import itertools
import json
import os
import queue
import ssl
import struct
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import obspython as obs  # provided by OBS; the unit tests put a stub in its place

SCRIPT_VERSION = "1"
LOG_PREFIX = "livetwin:"

DEFAULTS: dict[str, Any] = {
    "daemon_url": "http://127.0.0.1:8765",
    "token": "",
    "stream_url": "udp://127.0.0.1:9999?overrun_nonfatal=1&fifo_size=50000",
    "source_name": "livetwin avatar",
    "chat_platform": "none",
    "chat_channel": "",
    "caption_source": "livetwin captions",
    "product_source": "livetwin now selling",
    "chat_source": "",
    "chat_lines": 8,
    "caption_delay_ms": 500,
}

# Measured on the UDP MPEG-TS path (about 0.5 s glass-to-glass instead of about 1.1 s with
# FFmpeg's defaults). Probing harder than this (analyzeduration=0) can lose the audio.
LOW_LATENCY_FFMPEG_OPTIONS = "fflags=nobuffer flags=low_delay analyzeduration=500000"

CHAT_PLATFORMS = (("none", "None"), ("twitch", "Twitch"), ("youtube", "YouTube"))

# (hotkey name, description shown in Settings > Hotkeys, daemon command)
HOTKEYS: tuple[tuple[str, str, str], ...] = (
    ("livetwin.toggle_pause", "livetwin: pause / resume", "toggle_pause"),
    ("livetwin.next_product", "livetwin: next product", "next_product"),
    ("livetwin.call_to_follow", "livetwin: call to follow", "call_to_follow"),
    ("livetwin.point_to_cart", "livetwin: point to cart", "point_to_cart"),
    ("livetwin.skip_line", "livetwin: skip line", "skip_line"),
)

# Text source kinds, best first: FreeType 2 (Linux, macOS), GDI+ (Windows).
TEXT_SOURCE_KINDS = ("text_ft2_source_v2", "text_gdiplus_v2", "text_gdiplus", "text_ft2_source")

DRAIN_INTERVAL_MS = 100
# how often the avatar source is looked for (re-created when deleted) and the program
# scene checked (libobs calls only: cheap, and safe on the timer thread).
CHECK_EVERY_S = 1.0


def log(*parts: object) -> None:
    print(LOG_PREFIX, *parts, flush=True)


# --------------------------------------------------------------------------------------
# Pure parts (no OBS calls): settings, URLs, message handling. Unit-tested outside OBS.
# --------------------------------------------------------------------------------------


def ws_url(daemon_url: str, token: str = "", token_in_query: bool = False) -> str:
    """The daemon's WebSocket URL: http(s)://host:port[/prefix] -> ws(s)://.../ws."""
    url = (daemon_url or DEFAULTS["daemon_url"]).strip()
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"daemon_url must start with http:// or https://, not {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/ws"):
        path += "/ws"
    query = urllib.parse.urlencode({"token": token}) if token and token_in_query else ""
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, query, ""))


def media_source_settings(stream_url: str) -> dict[str, Any]:
    """Settings of the Media Source that plays the daemon's stream with little latency."""
    return {
        "is_local_file": False,
        "input": stream_url or DEFAULTS["stream_url"],
        "input_format": "",
        "ffmpeg_options": LOW_LATENCY_FFMPEG_OPTIONS,
        "buffering_mb": 0,
        "reconnect_delay_sec": 1,
        "restart_on_activate": False,
        "close_when_inactive": False,
        "clear_on_media_end": False,
        "hw_decode": False,
        "looping": False,
    }


def format_price(price: Any) -> str:
    if isinstance(price, bool):
        return str(price)
    if isinstance(price, (int, float)):
        return str(int(price)) if float(price).is_integer() else f"{price:.2f}"
    return str(price)


def now_selling(product: dict[str, Any] | None) -> str:
    """'Now selling: NAME - PRICE CURRENCY', or '' without a product."""
    if not isinstance(product, dict) or not product.get("name"):
        return ""
    text = f"Now selling: {product['name']}"
    if product.get("price") is not None:
        text += f" - {format_price(product['price'])}"
        if product.get("currency"):
            text += f" {product['currency']}"
    return text


def stream_mismatch(daemon_stream_url: Any, stream_url: str) -> str | None:
    """A warning when the daemon sends its stream somewhere else than the Media Source
    reads (different scheme or port); None when they match or the daemon sends none."""
    if not isinstance(daemon_stream_url, str) or not daemon_stream_url:
        return None
    theirs = urllib.parse.urlsplit(daemon_stream_url)
    ours = urllib.parse.urlsplit(stream_url or DEFAULTS["stream_url"])
    try:
        same = (theirs.scheme, theirs.port) == (ours.scheme, ours.port)
    except ValueError:
        same = False
    if same:
        return None
    return (f"the daemon streams to {daemon_stream_url} but the Media Source reads "
            f"{stream_url}; set the Stream URL to match")


def command_message(command: str) -> dict[str, Any]:
    return {"type": "command", "command": command}


def chat_target_message(platform: str, channel: str) -> dict[str, Any]:
    platform = platform if platform in {p for p, _ in CHAT_PLATFORMS} else "none"
    return {"type": "chat_target", "platform": platform,
            "channel": channel.strip() if platform != "none" else ""}


def obs_event_message(event: str, scene: str | None = None,
                      twin_on_air: bool | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "obs_event", "event": event}
    if event == "scene_changed":
        msg["scene"] = scene or ""
        msg["twin_on_air"] = bool(twin_on_air)
    return msg


# One text update for OBS: (kind, text, due) with kind caption|product|chat|status and
# due the time.time() at which to show it.
Update = tuple[str, str, float]


class MessageHandler:
    """Turns the daemon's messages into text updates; keeps the chat overlay's last lines."""

    def __init__(self, chat_lines: int = 8, caption_delay_s: float = 0.5,
                 clock: Callable[[], float] = time.time) -> None:
        self.chat: deque[str] = deque(maxlen=max(1, chat_lines))
        self.caption_delay_s = max(0.0, caption_delay_s)
        self.clock = clock
        self.current_line: Any = None
        self.hello: dict[str, Any] | None = None
        self.paused: bool | None = None
        self.errors: list[str] = []

    def set_chat_lines(self, n: int) -> None:
        self.chat = deque(self.chat, maxlen=max(1, n))

    def handle(self, msg: Any) -> list[Update]:
        if not isinstance(msg, dict):
            return []
        kind = msg.get("type")
        now = self.clock()
        if kind == "hello":
            self.hello = msg
            self.paused = bool(msg.get("paused"))
            return [("product", now_selling(msg.get("product")), now)]
        if kind == "state":
            self.paused = bool(msg.get("paused"))
            return [("product", now_selling(msg.get("product")), now)]
        if kind == "line_start":
            self.current_line = msg.get("id")
            at = msg.get("at")
            start = float(at) if isinstance(at, (int, float)) and not isinstance(at, bool) else now
            due = max(now, start + self.caption_delay_s)
            return [("caption", str(msg.get("text") or ""), due)]
        if kind == "line_end":
            if self.current_line is not None and msg.get("id") != self.current_line:
                return []  # the end of a line that is no longer shown
            self.current_line = None
            return [("caption", "", now + self.caption_delay_s)]
        if kind == "chat":
            user = str(msg.get("user") or "someone")
            self.chat.append(f"{user}: {msg.get('text') or ''}")
            return [("chat", "\n".join(self.chat), now)]
        if kind == "answer":
            self.chat.append(f"twin: {msg.get('text') or ''}")
            return [("chat", "\n".join(self.chat), now)]
        if kind == "error":
            self.errors.append(str(msg.get("message")))
            del self.errors[:-10]
            return [("status", f"daemon error: {msg.get('message')}", now)]
        return []


class UpdateSchedule:
    """Text updates waiting for their time, in due order (stable for equal times)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = itertools.count()

    def push(self, update: Update) -> None:
        kind, text, due = update
        heapq.heappush(self._heap, (due, next(self._seq), kind, text))

    def pop_due(self, now: float) -> list[tuple[str, str]]:
        out = []
        while self._heap and self._heap[0][0] <= now:
            _, _, kind, text = heapq.heappop(self._heap)
            out.append((kind, text))
        return out

    def __len__(self) -> int:
        return len(self._heap)


# --------------------------------------------------------------------------------------
# WebSocket clients
# --------------------------------------------------------------------------------------


class ConnectionClosed(Exception):
    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"connection closed (code {code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


class HandshakeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class MiniWebSocket:
    """A minimal RFC 6455 client on asyncio streams, for OBS builds whose Python has no
    `websockets` package.

    Supports ws:// and wss://, extra handshake headers, text messages (fragmented ones
    too), masked client frames, answers pings with pongs, and the closing handshake.
    Binary messages are skipped (the daemon sends JSON text only); no extensions, no
    subprotocols. Messages larger than `max_size` bytes close the connection (1009).
    """

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 max_size: int = 4 * 1024 * 1024) -> None:
        self.reader = reader
        self.writer = writer
        self.max_size = max_size
        self.close_sent = False
        self.closed = False
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, url: str, headers: Iterable[tuple[str, str]] = (),
                      open_timeout: float = 10.0) -> MiniWebSocket:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
        secure = parts.scheme == "wss"
        port = parts.port or (443 if secure else 80)
        ctx = ssl.create_default_context() if secure else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, port, ssl=ctx), open_timeout)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            host = parts.netloc.rsplit("@", 1)[-1]
            lines = [f"GET {target} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
                     "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                     "Sec-WebSocket-Version: 13", "User-Agent: livetwin-obs"]
            lines += [f"{k}: {v}" for k, v in headers]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), open_timeout)
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            fields = status_line.split(" ", 2)
            status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
            if status != 101:
                raise HandshakeError(status, f"handshake refused: {status_line.strip()}")
            got = {}
            for line in header_lines:
                if ":" in line:
                    k, v = line.split(":", 1)
                    got[k.strip().lower()] = v.strip()
            expect = base64.b64encode(hashlib.sha1((key + cls.GUID).encode()).digest()).decode()
            if got.get("upgrade", "").lower() != "websocket" or \
                    got.get("sec-websocket-accept") != expect:
                raise HandshakeError(status, "handshake answer is not a WebSocket upgrade")
        except BaseException:
            writer.close()
            raise
        return cls(reader, writer)

    @staticmethod
    def _mask(payload: bytes, key: bytes) -> bytes:
        n = len(payload)
        if n == 0:
            return b""
        mask = (key * (n // 4 + 1))[:n]
        return (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")

    async def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        key = os.urandom(4)
        async with self._lock:
            self.writer.write(head + key + self._mask(payload, key))
            await self.writer.drain()

    async def send(self, text: str) -> None:
        if self.close_sent or self.closed:
            raise ConnectionClosed(None, "already closing")
        await self._send_frame(0x1, text.encode("utf-8"))

    async def ping(self, data: bytes = b"") -> None:
        await self._send_frame(0x9, data)

    async def _read_frame(self) -> tuple[bool, int, bytes]:
        try:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            key = await self.reader.readexactly(4) if b1 & 0x80 else b""
            if n > self.max_size:
                await self._fail(1009, "message too big")
            payload = await self.reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self.closed = True
            raise ConnectionClosed(1006, "connection lost") from exc
        if key:
            payload = self._mask(payload, key)
        return bool(b0 & 0x80), b0 & 0x0F, payload

    async def _fail(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.close(code, reason)
        raise ConnectionClosed(code, reason)

    async def recv(self) -> str:
        """The next text message; raises ConnectionClosed when the connection ends."""
        parts: list[bytes] = []
        text = False
        while True:
            if self.closed:
                raise ConnectionClosed(1006, "connection closed")
            fin, opcode, payload = await self._read_frame()
            if opcode == 0x9:  # ping
                if not self.close_sent:
                    await self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:  # pong
                continue
            if opcode == 0x8:  # close
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                reason = payload[2:].decode("utf-8", "replace")
                if not self.close_sent:
                    self.close_sent = True
                    with contextlib.suppress(Exception):
                        await self._send_frame(0x8, payload[:2])
                self.closed = True
                self.writer.close()
                raise ConnectionClosed(code, reason)
            if opcode in (0x1, 0x2):
                parts, text = [payload], opcode == 0x1
            elif opcode == 0x0 and parts:
                parts.append(payload)
            else:
                await self._fail(1002, f"unexpected opcode {opcode}")
            if sum(len(p) for p in parts) > self.max_size:
                await self._fail(1009, "message too big")
            if fin:
                data = b"".join(parts)
                parts = []
                if text:
                    try:
                        return data.decode("utf-8")
                    except UnicodeDecodeError:
                        await self._fail(1007, "invalid UTF-8")
                # a binary message: not part of the protocol, skipped

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed:
            return
        if not self.close_sent:
            self.close_sent = True
            with contextlib.suppress(Exception):
                await self._send_frame(0x8, struct.pack("!H", code) + reason.encode()[:120])
            # wait briefly for the server's close frame
            async def wait_close() -> None:
                while True:
                    _, opcode, _ = await self._read_frame()
                    if opcode == 0x8:
                        return

            with contextlib.suppress(Exception):
                await asyncio.wait_for(wait_close(), 2.0)
        self.closed = True
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)


class _WebsocketsConnection:
    """The `websockets` package behind the same small interface as MiniWebSocket."""

    def __init__(self, ws: Any, closed_exc: type[BaseException]) -> None:
        self.ws = ws
        self.closed_exc = closed_exc

    async def send(self, text: str) -> None:
        try:
            await self.ws.send(text)
        except self.closed_exc as exc:
            raise self._closed(exc) from exc

    async def recv(self) -> str:
        while True:
            try:
                data = await self.ws.recv()
            except self.closed_exc as exc:
                raise self._closed(exc) from exc
            if isinstance(data, str):
                return data

    async def close(self, code: int = 1000, reason: str = "") -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code, reason), 3.0)

    @staticmethod
    def _closed(exc: BaseException) -> ConnectionClosed:
        rcvd = getattr(exc, "rcvd", None)
        code = getattr(rcvd, "code", None) if rcvd is not None else getattr(exc, "code", None)
        reason = getattr(rcvd, "reason", "") if rcvd is not None else getattr(exc, "reason", "")
        return ConnectionClosed(code, reason or "")


def websockets_available() -> bool:
    try:
        import websockets  # noqa: F401
    except Exception:
        return False
    return True


async def open_websocket(url: str, headers: list[tuple[str, str]], mode: str = "auto",
                         open_timeout: float = 10.0) -> Any:
    """Connect with `websockets` when importable (mode auto|websockets), else MiniWebSocket.
    Returns an object with async send(text), recv() -> text, close()."""
    if mode != "stdlib" and websockets_available():
        import websockets

        closed_exc = websockets.ConnectionClosed
        try:
            from websockets.asyncio.client import connect  # websockets >= 13
            ws = await asyncio.wait_for(
                connect(url, additional_headers=headers, open_timeout=open_timeout),
                open_timeout + 1)
        except ImportError:
            ws = await asyncio.wait_for(  # older releases: the legacy client
                websockets.connect(url, extra_headers=headers, open_timeout=open_timeout),
                open_timeout + 1)
        except Exception as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            status = status or getattr(exc, "status_code", None)
            if status:
                raise HandshakeError(int(status), f"handshake refused: HTTP {status}") from exc
            raise
        return _WebsocketsConnection(ws, closed_exc)
    if mode == "websockets":
        raise RuntimeError("the websockets package is not importable in this Python")
    return await MiniWebSocket.connect(url, headers, open_timeout)


class DaemonClient:
    """Keeps a WebSocket connection to the daemon from a background thread.

    `on_message(dict)` and `on_status(str)` are called on the background thread; they
    must not call OBS. `initial_messages()` (also called there) gives what to send on
    each (re)connect. `send()` and `stop()` may be called from any thread.
    """

    def __init__(self, daemon_url: str, token: str,
                 on_message: Callable[[dict[str, Any]], None],
                 on_status: Callable[[str], None],
                 initial_messages: Callable[[], list[dict[str, Any]]] = list,
                 mode: str = "auto", ping_interval: float = 15.0, idle_timeout: float = 45.0,
                 max_backoff: float = 30.0) -> None:
        self.url = ws_url(daemon_url)
        self.token = token.strip()
        self.on_message = on_message
        self.on_status = on_status
        self.initial_messages = initial_messages
        self.mode = mode
        self.ping_interval = ping_interval
        self.idle_timeout = idle_timeout
        self.max_backoff = max_backoff
        self.connected = False
        self.status = "not started"
        self._stopping = threading.Event()
        self._stop_evt = asyncio.Event()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ping_ids = itertools.count(1)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="livetwin-ws", daemon=True)
        self._thread.start()

    def send(self, msg: dict[str, Any]) -> bool:
        """Queue a message for the daemon (dropped while disconnected). Thread-safe."""
        loop = self._loop
        if loop is None or not self.connected or self._stopping.is_set():
            return False
        try:
            loop.call_soon_threadsafe(self._outbox.put_nowait, msg)
        except RuntimeError:  # the loop has just closed
            return False
        return True

    def stop(self, timeout: float = 5.0) -> bool:
        """Close the connection and end the thread; True when the thread has ended."""
        self._stopping.set()
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stop_evt.set)
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _set_status(self, text: str) -> None:
        self.status = text
        with contextlib.suppress(Exception):
            self.on_status(text)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except Exception as exc:  # never let the thread die silently
            self._set_status(f"stopped by an error: {exc!r}")
        finally:
            self.connected = False
            with contextlib.suppress(Exception):
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            self._loop = None
            loop.close()

    async def _sleep_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop_evt.wait(), seconds)

    async def _main(self) -> None:
        backoff = 1.0
        headers = [("Authorization", f"Bearer {self.token}")] if self.token else []
        while not self._stopping.is_set():
            self._set_status(f"connecting to {self.url}")
            reason = ""
            try:
                conn = await open_websocket(self.url, headers, self.mode)
            except HandshakeError as exc:
                reason = "wrong token" if exc.status in (401, 403) else str(exc)
            except Exception as exc:
                reason = f"cannot connect: {exc or type(exc).__name__}"
            else:
                backoff = 1.0
                try:
                    reason = await self._session(conn)
                except ConnectionClosed as exc:
                    reason = "wrong token" if exc.code == 4401 else str(exc)
                except Exception as exc:
                    reason = f"connection error: {exc!r}"
                finally:
                    self.connected = False
                    await conn.close()
            if self._stopping.is_set():
                break
            if reason == "wrong token":
                backoff = self.max_backoff
            self._set_status(f"disconnected ({reason}); retrying in {backoff:.0f} s")
            await self._sleep_or_stop(backoff)
            backoff = min(backoff * 2, self.max_backoff)
        self._set_status("stopped")

    async def _session(self, conn: Any) -> str:
        while not self._outbox.empty():  # nothing pressed while offline fires late
            self._outbox.get_nowait()
        last_rx = time.monotonic()

        async def reader() -> str:
            nonlocal last_rx
            while True:
                text = await conn.recv()
                last_rx = time.monotonic()
                try:
                    msg = json.loads(text)
                except ValueError:
                    continue
                if isinstance(msg, dict):
                    self.on_message(msg)

        async def writer() -> str:
            while True:
                msg = await self._outbox.get()
                await conn.send(json.dumps(msg))

        async def keepalive() -> str:
            while True:
                await asyncio.sleep(self.ping_interval)
                if time.monotonic() - last_rx > self.idle_timeout:
                    return "no answer from the daemon"
                await conn.send(json.dumps({"type": "ping", "id": next(self._ping_ids)}))

        async def stopper() -> str:
            await self._stop_evt.wait()
            return "stopped"

        for msg in self.initial_messages():
            await conn.send(json.dumps(msg))
        self.connected = True
        self._set_status(f"connected to {self.url}")
        tasks = [asyncio.ensure_future(c()) for c in (reader, writer, keepalive, stopper)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return str(next(iter(done)).result())


# --------------------------------------------------------------------------------------
# OBS glue: everything below runs on OBS's threads only.
# --------------------------------------------------------------------------------------


def _data_from_dict(values: dict[str, Any]) -> Any:
    """A new obs_data (the caller releases it) from a flat dict."""
    data = obs.obs_data_create()
    for key, value in values.items():
        if isinstance(value, bool):
            obs.obs_data_set_bool(data, key, value)
        elif isinstance(value, int):
            obs.obs_data_set_int(data, key, value)
        elif isinstance(value, float):
            obs.obs_data_set_double(data, key, value)
        elif isinstance(value, dict):
            sub = _data_from_dict(value)
            obs.obs_data_set_obj(data, key, sub)
            obs.obs_data_release(sub)
        else:
            obs.obs_data_set_string(data, key, str(value))
    return data


def read_settings(settings: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        if isinstance(default, int):
            out[key] = obs.obs_data_get_int(settings, key)
        else:
            out[key] = (obs.obs_data_get_string(settings, key) or "").strip()
    return out


class _Source:
    """obs_get_source_by_name as a context manager that releases the reference."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source: Any = None

    def __enter__(self) -> Any:
        self.source = obs.obs_get_source_by_name(self.name) if self.name else None
        if self.source is not None and obs.obs_source_removed(self.source):
            obs.obs_source_release(self.source)
            self.source = None
        return self.source

    def __exit__(self, *exc: object) -> None:
        if self.source is not None:
            obs.obs_source_release(self.source)
        self.source = None


class _ProgramScene:
    """The program scene's source (released on exit) and its obs_scene, from libobs's
    output channel 0 (the program transition): safe on OBS's timer thread and while OBS
    exits. The frontend API is not: obs_frontend_get_current_scene called from a timer
    made OBS 29 crash (SIGSEGV) in about 1 of 10 exits."""

    def __enter__(self) -> tuple[Any, Any]:
        self.source = None
        out = obs.obs_get_output_source(0)
        if out is not None:
            if obs.obs_source_get_type(out) == obs.OBS_SOURCE_TYPE_TRANSITION:
                self.source = obs.obs_transition_get_active_source(out)
                obs.obs_source_release(out)
            else:
                self.source = out
        scene = obs.obs_scene_from_source(self.source) if self.source is not None else None
        return self.source, scene

    def __exit__(self, *exc: object) -> None:
        if self.source is not None:
            obs.obs_source_release(self.source)


class LiveTwinScript:
    def __init__(self, settings: Any) -> None:
        self.settings = settings  # owned by OBS, never released here
        self.values = read_settings(settings)
        self.handler = MessageHandler(self.values["chat_lines"] or 8,
                                      self.values["caption_delay_ms"] / 1000.0)
        self.schedule = UpdateSchedule()
        self.ui_queue: queue.Queue[Update] = queue.Queue()
        self.client: DaemonClient | None = None
        self.status = "not connected"
        self.hotkeys: dict[str, int] = {}
        self.text_kind: str | None = None
        self.suspended = False  # while OBS loads/clears a scene collection or exits
        self.next_check = 0.0
        self.state_lock = threading.Lock()
        # what the program scene looks like; "known" once OBS has been asked (before
        # that, telling the daemon "not on air" would hold its lines for nothing)
        self.obs_state: dict[str, Any] = {"scene": "", "twin_on_air": False, "known": False,
                                          "streaming": False, "recording": False}
        self.sent_on_air: tuple[str, bool] | None = None
        self.timers_on = False
        self.loaded = False
        # OBS finds callbacks to remove by identity: keep one bound method of each
        self._setup_cb = self.setup_once
        self._drain_cb = self.drain
        self._event_cb = self.on_frontend_event
        self.media_weak: Any = None  # weak reference to the Media Source this script made

    # ---- lifecycle -------------------------------------------------------------------

    def load(self) -> None:
        for name, desc, command in HOTKEYS:
            def pressed(is_pressed: bool, command: str = command) -> None:
                if is_pressed:
                    self.send(command_message(command))
            hid = obs.obs_hotkey_register_frontend(name, desc, pressed)
            arr = obs.obs_data_get_array(self.settings, name)
            obs.obs_hotkey_load(hid, arr)
            obs.obs_data_array_release(arr)
            self.hotkeys[name] = hid
        obs.obs_frontend_add_event_callback(self._event_cb)
        # the frontend API only here and in frontend events (OBS's UI thread)
        self.obs_state.update(streaming=bool(obs.obs_frontend_streaming_active()),
                              recording=bool(obs.obs_frontend_recording_active()))
        obs.timer_add(self._setup_cb, 500)
        obs.timer_add(self._drain_cb, DRAIN_INTERVAL_MS)
        self.timers_on = True
        self.restart_client()
        self.loaded = True
        log(f"script_load (version {SCRIPT_VERSION}, websocket client: "
            f"{'websockets' if websockets_available() else 'built-in'})")

    def save(self, settings: Any) -> None:
        for name, hid in self.hotkeys.items():
            arr = obs.obs_hotkey_save(hid)
            obs.obs_data_set_array(settings, name, arr)
            obs.obs_data_array_release(arr)

    def unload(self) -> None:
        if self.timers_on:
            obs.timer_remove(self._setup_cb)
            obs.timer_remove(self._drain_cb)
            self.timers_on = False
        with contextlib.suppress(Exception):
            obs.obs_frontend_remove_event_callback(self._event_cb)
        if self.media_weak is not None:
            obs.obs_weak_source_release(self.media_weak)
            self.media_weak = None
        stopped = True
        if self.client is not None:
            stopped = self.client.stop(timeout=5.0)
            self.client = None
        for hid in self.hotkeys.values():
            obs.obs_hotkey_unregister(hid)
        self.hotkeys.clear()
        log(f"script_unload: {'stopped cleanly' if stopped else 'websocket thread still running'}")

    def update(self, settings: Any) -> None:
        old = self.values
        self.settings = settings
        self.values = read_settings(settings)
        self.handler.caption_delay_s = max(0.0, self.values["caption_delay_ms"] / 1000.0)
        self.handler.set_chat_lines(self.values["chat_lines"] or 8)
        if self.loaded:
            if (old["daemon_url"], old["token"]) != (self.values["daemon_url"],
                                                     self.values["token"]):
                self.restart_client()
            elif (old["chat_platform"], old["chat_channel"]) != (
                    self.values["chat_platform"], self.values["chat_channel"]):
                self.send(chat_target_message(self.values["chat_platform"],
                                              self.values["chat_channel"]))
            if old["stream_url"] != self.values["stream_url"] or \
                    old["source_name"] != self.values["source_name"]:
                self.sent_on_air = None
                self.ensure_media_source()
            for key in ("caption_source", "product_source", "chat_source"):
                if old[key] != self.values[key]:
                    self.ensure_text_sources()
                    break

    def restart_client(self) -> None:
        if self.client is not None:
            self.client.stop(timeout=5.0)
            self.client = None
        try:
            client = DaemonClient(self.values["daemon_url"], self.values["token"],
                                  self.on_message, self.on_status, self.initial_messages,
                                  mode=os.environ.get("LIVETWIN_OBS_WS", "auto"))
        except ValueError as exc:
            self.on_status(str(exc))
            return
        self.client = client
        client.start()

    # ---- background thread side (no OBS calls) ---------------------------------------

    def on_message(self, msg: dict[str, Any]) -> None:
        for update in self.handler.handle(msg):
            self.ui_queue.put(update)
        if msg.get("type") == "hello":
            warning = stream_mismatch(msg.get("stream_url"), self.values["stream_url"])
            if warning:
                self.on_status(f"connected, but {warning}")

    def on_status(self, text: str) -> None:
        self.ui_queue.put(("status", text, 0.0))

    def initial_messages(self) -> list[dict[str, Any]]:
        with self.state_lock:
            state = dict(self.obs_state)
            self.sent_on_air = (state["scene"], state["twin_on_air"]) if state["known"] else None
        msgs = [chat_target_message(self.values["chat_platform"], self.values["chat_channel"])]
        if state["known"]:
            msgs.append(obs_event_message("scene_changed", state["scene"], state["twin_on_air"]))
        if state["streaming"]:
            msgs.append(obs_event_message("streaming_started"))
        if state["recording"]:
            msgs.append(obs_event_message("recording_started"))
        return msgs

    def send(self, msg: dict[str, Any]) -> None:
        if self.client is not None:
            self.client.send(msg)

    # ---- OBS side --------------------------------------------------------------------

    def on_frontend_event(self, event: int) -> None:
        events = {
            obs.OBS_FRONTEND_EVENT_STREAMING_STARTED: "streaming_started",
            obs.OBS_FRONTEND_EVENT_STREAMING_STOPPED: "streaming_stopped",
            obs.OBS_FRONTEND_EVENT_RECORDING_STARTED: "recording_started",
            obs.OBS_FRONTEND_EVENT_RECORDING_STOPPED: "recording_stopped",
        }
        if event in events:
            name = events[event]
            with self.state_lock:
                self.obs_state[name.split("_")[0]] = name.endswith("started")
            self.send(obs_event_message(name))
        elif event == obs.OBS_FRONTEND_EVENT_SCENE_CHANGED:
            self.refresh_scene_state(force=True)
        elif event in (obs.OBS_FRONTEND_EVENT_SCENE_COLLECTION_CHANGING,
                       obs.OBS_FRONTEND_EVENT_SCENE_COLLECTION_CLEANUP,
                       obs.OBS_FRONTEND_EVENT_EXIT,
                       getattr(obs, "OBS_FRONTEND_EVENT_SCRIPTING_SHUTDOWN", -1)):
            self.suspended = True
        elif event in (obs.OBS_FRONTEND_EVENT_SCENE_COLLECTION_CHANGED,
                       obs.OBS_FRONTEND_EVENT_FINISHED_LOADING):
            if event == obs.OBS_FRONTEND_EVENT_SCENE_COLLECTION_CHANGED:
                self.suspended = False
            self.next_check = 0.0

    def _media_source_ref(self) -> Any:
        """A new reference to the live (not removed) avatar source, or None. Prefers the
        one this script made: a deleted source can linger under its name until its last
        reference goes, and must not be mistaken for the new one (or make another)."""
        name = self.values["source_name"]
        if self.media_weak is not None:
            source = obs.obs_weak_source_get_source(self.media_weak)
            if source is not None:
                if not obs.obs_source_removed(source) and \
                        obs.obs_source_get_name(source) == name:
                    return source
                obs.obs_source_release(source)
        source = obs.obs_get_source_by_name(name)
        if source is not None and obs.obs_source_removed(source):
            obs.obs_source_release(source)
            source = None
        if source is not None:
            self._remember_media(source)
        return source

    def _remember_media(self, source: Any) -> None:
        if self.media_weak is not None:
            obs.obs_weak_source_release(self.media_weak)
        self.media_weak = obs.obs_source_get_weak_source(source)

    def refresh_scene_state(self, force: bool = False) -> None:
        scene_name, on_air = "", False
        with _ProgramScene() as (scene_source, scene):
            if scene_source is not None:
                scene_name = obs.obs_source_get_name(scene_source) or ""
            if scene is not None:
                item = obs.obs_scene_find_source_recursive(scene, self.values["source_name"])
                on_air = item is not None and bool(obs.obs_sceneitem_visible(item))
        with self.state_lock:
            self.obs_state.update(scene=scene_name, twin_on_air=on_air, known=True)
            changed = force or self.sent_on_air != (scene_name, on_air)
        if changed and self.client is not None and self.client.connected:
            self.sent_on_air = (scene_name, on_air)
            self.send(obs_event_message("scene_changed", scene_name, on_air))

    def setup_once(self) -> None:
        obs.remove_current_callback()
        self.ensure_media_source()
        self.ensure_text_sources()
        self.refresh_scene_state()

    def drain(self) -> None:
        try:
            while True:
                update = self.ui_queue.get_nowait()
                if update[0] == "status":
                    self.set_status(update[1])
                else:
                    self.schedule.push(update)
        except queue.Empty:
            pass
        for kind, text in self.schedule.pop_due(time.time()):
            name = {"caption": self.values["caption_source"],
                    "product": self.values["product_source"],
                    "chat": self.values["chat_source"]}.get(kind)
            if name:
                self.set_text(name, text)
        now = time.monotonic()
        if now >= self.next_check and not self.suspended:
            self.next_check = now + CHECK_EVERY_S
            self.ensure_media_source()
            self.refresh_scene_state()

    def set_status(self, text: str) -> None:
        if text != self.status and not text.startswith("connecting"):
            log(f"daemon {text}")
        self.status = text
        if self.settings is not None:
            obs.obs_data_set_string(self.settings, "status", text)

    def ensure_media_source(self) -> None:
        name = self.values["source_name"]
        if not name:
            return
        wanted = media_source_settings(self.values["stream_url"])
        source = self._media_source_ref()
        if source is not None:
            current = obs.obs_source_get_settings(source)
            same = (obs.obs_data_get_string(current, "input") == wanted["input"] and
                    obs.obs_data_get_string(current, "ffmpeg_options") ==
                    wanted["ffmpeg_options"] and
                    not obs.obs_data_get_bool(current, "is_local_file"))
            obs.obs_data_release(current)
            if not same:
                data = _data_from_dict(wanted)
                obs.obs_source_update(source, data)
                obs.obs_data_release(data)
                log(f"updated media source {name!r} -> {wanted['input']}")
            obs.obs_source_release(source)
            return
        data = _data_from_dict(wanted)
        source = obs.obs_source_create("ffmpeg_source", name, data, None)
        obs.obs_data_release(data)
        if source is None:
            log("could not create the media source (is the FFmpeg source plugin missing?)")
            return
        self._remember_media(source)
        try:
            with _ProgramScene() as (_, scene):
                if scene is None:
                    log("no current scene yet; the media source will be added later")
                    return
                item = obs.obs_scene_add(scene, source)
                if item is not None:
                    self._fit_to_canvas(item)
            log(f"created media source {name!r} <- {wanted['input']}")
        finally:
            obs.obs_source_release(source)

    @staticmethod
    def _canvas() -> tuple[int, int]:
        ovi = obs.obs_video_info()
        if not obs.obs_get_video_info(ovi):
            return 1280, 720
        return int(ovi.base_width), int(ovi.base_height)

    def _fit_to_canvas(self, item: Any) -> None:
        width, height = self._canvas()
        pos = obs.vec2()
        pos.x, pos.y = 0.0, 0.0
        obs.obs_sceneitem_set_pos(item, pos)
        bounds = obs.vec2()
        bounds.x, bounds.y = float(width), float(height)
        obs.obs_sceneitem_set_bounds_type(item, obs.OBS_BOUNDS_SCALE_INNER)
        obs.obs_sceneitem_set_bounds_alignment(item, 0)
        obs.obs_sceneitem_set_bounds(item, bounds)

    def _text_kind(self) -> str | None:
        if self.text_kind is None:
            for kind in TEXT_SOURCE_KINDS:
                if obs.obs_source_get_display_name(kind):
                    self.text_kind = kind
                    break
        return self.text_kind

    def ensure_text_sources(self) -> None:
        """Create missing text sources (captions, now selling, chat) in the current scene."""
        width, height = self._canvas()
        layout = {  # name -> (y position, font size)
            self.values["caption_source"]: (height * 0.80, max(12, height // 18)),
            self.values["product_source"]: (height * 0.05, max(12, height // 20)),
            self.values["chat_source"]: (height * 0.20, max(10, height // 30)),
        }
        for name, (y, size) in layout.items():
            if not name:
                continue
            with _Source(name) as source:
                if source is not None:
                    continue
            kind = self._text_kind()
            if kind is None:
                log("no text source type available; captions are off")
                return
            wrap = int(width * 0.9)  # long lines wrap inside the canvas
            values: dict[str, Any] = {
                "text": "", "font": {"face": "Sans", "size": int(size), "style": "",
                                     "flags": 0},
                "outline": True, "drop_shadow": True,
                "custom_width": wrap, "word_wrap": True,  # FreeType 2 text source
                "extents": True, "extents_cx": wrap, "extents_cy": int(size) * 4,
                "extents_wrap": True,  # GDI+ text source (Windows)
            }
            data = _data_from_dict(values)
            source = obs.obs_source_create(kind, name, data, None)
            obs.obs_data_release(data)
            if source is None:
                continue
            with _ProgramScene() as (_, scene):
                if scene is not None:
                    item = obs.obs_scene_add(scene, source)
                    if item is not None:
                        pos = obs.vec2()
                        pos.x, pos.y = float(width) * 0.05, float(y)
                        obs.obs_sceneitem_set_pos(item, pos)
            obs.obs_source_release(source)
            log(f"created text source {name!r} ({kind})")

    def set_text(self, name: str, text: str) -> None:
        with _Source(name) as source:
            if source is None:
                return
            data = obs.obs_data_create()
            obs.obs_data_set_string(data, "text", text)
            obs.obs_source_update(source, data)
            obs.obs_data_release(data)


# --------------------------------------------------------------------------------------
# The functions OBS calls
# --------------------------------------------------------------------------------------

_script: LiveTwinScript | None = None


def script_description() -> str:
    return ("<b>livetwin</b>: shows the live twin (a Media Source playing the daemon's "
            "stream), relays streaming and scene events, hotkeys and the chat target to the "
            "daemon, and keeps caption / now-selling / chat text sources up to date.")


def script_defaults(settings: Any) -> None:
    for key, value in DEFAULTS.items():
        if isinstance(value, int):
            obs.obs_data_set_default_int(settings, key, value)
        else:
            obs.obs_data_set_default_string(settings, key, value)


def script_properties() -> Any:
    props = obs.obs_properties_create()
    status = _script.status if _script is not None else "not loaded"
    if _script is not None and _script.settings is not None:
        obs.obs_data_set_string(_script.settings, "status", status)
    info = obs.obs_properties_add_text(props, "status", "Daemon", obs.OBS_TEXT_INFO)
    if "disconnected" in status or "error" in status:
        obs.obs_property_text_set_info_type(info, obs.OBS_TEXT_INFO_WARNING)
    obs.obs_properties_add_button(props, "refresh_status", "Refresh status", _refresh_clicked)
    obs.obs_properties_add_text(props, "daemon_url", "Daemon URL", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(props, "token", "API token", obs.OBS_TEXT_PASSWORD)
    obs.obs_properties_add_text(props, "stream_url", "Stream URL", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(props, "source_name", "Avatar source name",
                                obs.OBS_TEXT_DEFAULT)
    plat = obs.obs_properties_add_list(props, "chat_platform", "Chat platform",
                                       obs.OBS_COMBO_TYPE_LIST, obs.OBS_COMBO_FORMAT_STRING)
    for value, label in CHAT_PLATFORMS:
        obs.obs_property_list_add_string(plat, label, value)
    obs.obs_properties_add_text(props, "chat_channel", "Chat channel", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(props, "caption_source", "Captions text source (blank: off)",
                                obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(props, "product_source",
                                "Now-selling text source (blank: off)", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(props, "chat_source", "Chat overlay text source (blank: off)",
                                obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_int(props, "chat_lines", "Chat overlay lines", 1, 50, 1)
    obs.obs_properties_add_int(props, "caption_delay_ms",
                               "Caption delay after the line starts (ms)", 0, 5000, 50)
    return props


def _refresh_clicked(props: Any, prop: Any) -> bool:
    if _script is not None and _script.settings is not None:
        obs.obs_data_set_string(_script.settings, "status", _script.status)
    return True  # OBS rebuilds the properties view


def script_load(settings: Any) -> None:
    global _script
    _script = LiveTwinScript(settings)
    _script.load()


def script_update(settings: Any) -> None:
    if _script is not None:
        _script.update(settings)


def script_save(settings: Any) -> None:
    if _script is not None:
        _script.save(settings)


def script_unload() -> None:
    global _script
    if _script is not None:
        _script.unload()
        _script = None
