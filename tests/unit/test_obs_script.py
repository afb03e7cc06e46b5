"""The OBS script's pure parts, outside OBS: a stub stands in for the `obspython` module
(only here), and the built-in WebSocket client talks to a real `websockets` server."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "obs_plugin" / "livetwin_obs.py"
TOKEN = "t" * 24


class StubData:
    """A dict-backed obs_data_t."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.defaults: dict[str, Any] = {}

    def get(self, key: str, fallback: Any) -> Any:
        return self.values.get(key, self.defaults.get(key, fallback))


def make_obspython() -> types.ModuleType:
    mod = types.ModuleType("obspython")
    calls: list[tuple[str, tuple[Any, ...]]] = []
    mod.calls = calls  # type: ignore[attr-defined]
    mod.obs_data_create = StubData  # type: ignore[attr-defined]
    mod.obs_data_release = lambda data: None  # type: ignore[attr-defined]

    def setter(kind: str):  # type: ignore[no-untyped-def]
        def set_value(data: StubData, key: str, value: Any) -> None:
            (data.defaults if kind == "default" else data.values)[key] = value
        return set_value

    for t in ("string", "int", "bool", "double", "obj", "array"):
        setattr(mod, f"obs_data_set_{t}", setter("value"))
        setattr(mod, f"obs_data_set_default_{t}", setter("default"))
    mod.obs_data_get_string = lambda d, k: d.get(k, "")  # type: ignore[attr-defined]
    mod.obs_data_get_int = lambda d, k: d.get(k, 0)  # type: ignore[attr-defined]
    mod.obs_data_get_bool = lambda d, k: d.get(k, False)  # type: ignore[attr-defined]

    def __getattr__(name: str) -> Any:  # any other OBS call is recorded and returns None
        def call(*args: Any) -> None:
            calls.append((name, args))
        return call

    mod.__getattr__ = __getattr__  # type: ignore[method-assign]
    return mod


@pytest.fixture(scope="module")
def lt() -> Iterator[types.ModuleType]:
    stub = make_obspython()
    saved = sys.modules.get("obspython")
    sys.modules["obspython"] = stub
    try:
        spec = importlib.util.spec_from_file_location("livetwin_obs_under_test", SCRIPT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        if saved is None:
            sys.modules.pop("obspython", None)
        else:
            sys.modules["obspython"] = saved


def test_script_imports_only_the_standard_library() -> None:
    source = SCRIPT.read_text()
    top_imports = [line.split()[1] for line in source.splitlines()
                   if line.startswith(("import ", "from "))]
    stdlib = set(sys.stdlib_module_names) | {"__future__", "obspython"}
    assert {m.split(".")[0] for m in top_imports} <= stdlib, top_imports


def test_settings_defaults(lt: types.ModuleType) -> None:
    settings = StubData()
    lt.script_defaults(settings)
    d = settings.defaults
    assert d["daemon_url"] == "http://127.0.0.1:8765"
    assert d["token"] == ""
    assert d["stream_url"] == "udp://127.0.0.1:9999?overrun_nonfatal=1&fifo_size=50000"
    assert d["source_name"] == "livetwin avatar"
    assert d["chat_platform"] == "none"
    for key in ("chat_channel", "caption_source", "product_source", "chat_source"):
        assert key in d
    values = lt.read_settings(settings)
    assert values["chat_lines"] == 8 and values["source_name"] == "livetwin avatar"


def test_media_source_settings_are_low_latency(lt: types.ModuleType) -> None:
    s = lt.media_source_settings("udp://127.0.0.1:5000?overrun_nonfatal=1")
    assert s["is_local_file"] is False and s["input"] == "udp://127.0.0.1:5000?overrun_nonfatal=1"
    assert s["ffmpeg_options"] == "fflags=nobuffer flags=low_delay analyzeduration=500000"
    assert s["buffering_mb"] == 0 and s["reconnect_delay_sec"] == 1
    for key in ("restart_on_activate", "close_when_inactive", "clear_on_media_end",
                "hw_decode"):
        assert s[key] is False


def test_ws_url(lt: types.ModuleType) -> None:
    assert lt.ws_url("http://127.0.0.1:8765") == "ws://127.0.0.1:8765/ws"
    assert lt.ws_url("https://host/live/") == "wss://host/live/ws"
    assert lt.ws_url("127.0.0.1:9000") == "ws://127.0.0.1:9000/ws"
    assert lt.ws_url("ws://h:1/ws") == "ws://h:1/ws"
    assert lt.ws_url("http://h:1", "a b", token_in_query=True) == "ws://h:1/ws?token=a+b"
    with pytest.raises(ValueError, match="http"):
        lt.ws_url("ftp://h")


def test_messages_become_text_updates(lt: types.ModuleType) -> None:
    now = [1000.0]
    h = lt.MessageHandler(chat_lines=2, caption_delay_s=0.5, clock=lambda: now[0])
    product = {"id": "p1", "name": "Tea", "price": 19.9, "currency": "EUR"}
    assert h.handle({"type": "hello", "version": 1, "paused": False, "product": product}) == [
        ("product", "Now selling: Tea - 19.90 EUR", 1000.0)]
    assert h.handle({"type": "state", "paused": True, "on_air": True,
                     "product": {"name": "Mug", "price": 12, "currency": "USD"}}) == [
        ("product", "Now selling: Mug - 12 USD", 1000.0)]
    assert h.paused is True
    assert h.handle({"type": "state", "paused": False, "product": None}) == [
        ("product", "", 1000.0)]
    # captions: shown when the line sounds (+ the stream's delay), cleared at its end
    assert h.handle({"type": "line_start", "id": 7, "text": "Hello there", "at": 1001.0}) == [
        ("caption", "Hello there", 1001.5)]
    assert h.handle({"type": "line_end", "id": 6, "skipped": False}) == []  # another line
    assert h.handle({"type": "line_end", "id": 7, "skipped": True}) == [
        ("caption", "", 1000.5)]
    # a line that started in the past shows at once
    assert h.handle({"type": "line_start", "id": 8, "text": "x", "at": 900})[0][2] == 1000.0
    # chat overlay keeps the last N lines, the twin's answers included
    h.handle({"type": "chat", "id": 1, "platform": "twitch", "user": "ann", "text": "hi"})
    h.handle({"type": "chat", "id": 2, "platform": "twitch", "user": "bob", "text": "price?"})
    assert h.handle({"type": "answer", "id": 3, "reply_to": 2, "text": "19.90"}) == [
        ("chat", "bob: price?\ntwin: 19.90", 1000.0)]
    assert h.handle({"type": "error", "message": "unknown command"})[0][0] == "status"
    assert h.handle({"type": "pong", "id": 1}) == []
    assert h.handle(["not", "a", "dict"]) == []


def test_schedule_orders_updates(lt: types.ModuleType) -> None:
    s = lt.UpdateSchedule()
    s.push(("caption", "b", 2.0))
    s.push(("caption", "a", 1.0))
    s.push(("product", "p", 1.0))
    assert s.pop_due(0.5) == []
    assert s.pop_due(1.0) == [("caption", "a"), ("product", "p")]
    assert s.pop_due(5.0) == [("caption", "b")] and len(s) == 0


def test_stream_mismatch(lt: types.ModuleType) -> None:
    ours = "udp://127.0.0.1:9999?overrun_nonfatal=1&fifo_size=50000"
    assert lt.stream_mismatch("udp://127.0.0.1:9999?overrun_nonfatal=1", ours) is None
    assert lt.stream_mismatch("", ours) is None and lt.stream_mismatch(None, ours) is None
    assert "9998" in lt.stream_mismatch("udp://127.0.0.1:9998?x=1", ours)
    assert lt.stream_mismatch("srt://127.0.0.1:9999", ours) is not None


def test_outgoing_messages(lt: types.ModuleType) -> None:
    assert lt.command_message("skip_line") == {"type": "command", "command": "skip_line"}
    assert lt.chat_target_message("twitch", " chan ") == {
        "type": "chat_target", "platform": "twitch", "channel": "chan"}
    assert lt.chat_target_message("myspace", "x")["platform"] == "none"
    assert lt.obs_event_message("scene_changed", "Live", True) == {
        "type": "obs_event", "event": "scene_changed", "scene": "Live", "twin_on_air": True}
    assert lt.obs_event_message("streaming_started") == {
        "type": "obs_event", "event": "streaming_started"}
    assert {c for _, _, c in lt.HOTKEYS} == {
        "toggle_pause", "next_product", "call_to_follow", "point_to_cart", "skip_line"}


def test_script_queues_updates_from_the_websocket_thread(lt: types.ModuleType) -> None:
    settings = StubData()
    lt.script_defaults(settings)
    script = lt.LiveTwinScript(settings)  # not loaded: no thread, no OBS calls
    script.on_message({"type": "hello", "product": {"name": "Tea", "price": 3,
                                                    "currency": "EUR"}})
    script.on_message({"type": "line_start", "id": 1, "text": "Hi", "at": 0})
    script.on_message({"type": "hello", "stream_url": "udp://127.0.0.1:9999?a=1"})  # matches
    script.on_status("connected to ws://x/ws")
    got = [script.ui_queue.get_nowait() for _ in range(4)]
    assert [(k, t) for k, t, _ in got] == [
        ("product", "Now selling: Tea - 3 EUR"), ("caption", "Hi"), ("product", ""),
        ("status", "connected to ws://x/ws")]
    script.on_message({"type": "hello", "stream_url": "udp://127.0.0.1:5000"})
    got = [script.ui_queue.get_nowait() for _ in range(2)]
    assert got[1][0] == "status" and "udp://127.0.0.1:5000" in got[1][1]
    # the scene is not known yet: only the chat target, no "not on air" that holds lines
    assert script.initial_messages() == [
        {"type": "chat_target", "platform": "none", "channel": ""}]
    script.obs_state.update(scene="Live", twin_on_air=True, known=True, streaming=True)
    assert script.initial_messages()[1:] == [
        {"type": "obs_event", "event": "scene_changed", "scene": "Live", "twin_on_air": True},
        {"type": "obs_event", "event": "streaming_started"}]


# ---- the WebSocket clients against a real `websockets` server -----------------------------


class FakeDaemon:
    """A websockets server speaking a little of docs/live.md, in its own thread."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.conns: set[Any] = set()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        from websockets.asyncio.server import serve

        self.server = await serve(self._handler, "127.0.0.1", 0, ping_interval=0.2,
                                  ping_timeout=5)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handler(self, ws: Any) -> None:
        headers = dict(ws.request.headers)
        self.headers.append(headers)
        if headers.get("authorization") != f"Bearer {TOKEN}":
            await ws.close(4401, "unauthorized")
            return
        self.conns.add(ws)
        try:
            await ws.send(json.dumps({"type": "hello", "version": 1, "product": None}))
            await ws.send(json.dumps({"type": "line_start", "id": 1, "text": "x" * 70000}))
            # a fragmented text message
            await ws.send([json.dumps({"type": "answer", "id": 2, "text": "héllo"})[:10],
                           json.dumps({"type": "answer", "id": 2, "text": "héllo"})[10:]])
            async for text in ws:
                msg = json.loads(text)
                self.received.append(msg)
                if msg.get("type") == "ping":
                    await ws.send(json.dumps({"type": "pong", "id": msg["id"]}))
                if msg.get("type") == "command" and msg.get("command") == "bye":
                    await ws.close(1000, "bye")
        finally:
            self.conns.discard(ws)

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def daemon() -> Iterator[FakeDaemon]:
    d = FakeDaemon()
    yield d
    d.close()


def wait_for(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.parametrize("mode", ["stdlib", "websockets"])
def test_client_against_a_real_server(lt: types.ModuleType, daemon: FakeDaemon,
                                      mode: str) -> None:
    got: list[dict[str, Any]] = []
    statuses: list[str] = []
    client = lt.DaemonClient(
        f"http://127.0.0.1:{daemon.port}", TOKEN, got.append, statuses.append,
        lambda: [{"type": "chat_target", "platform": "none", "channel": ""}],
        mode=mode, ping_interval=0.3)
    client.start()
    try:
        wait_for(lambda: len(got) >= 3 and client.connected)
        assert [m["type"] for m in got[:3]] == ["hello", "line_start", "answer"]
        assert len(got[1]["text"]) == 70000 and got[2]["text"] == "héllo"
        assert client.send({"type": "command", "command": "skip_line"})
        wait_for(lambda: {"type": "command", "command": "skip_line"} in daemon.received)
        assert daemon.received[0]["type"] == "chat_target"  # initial messages first
        time.sleep(0.7)  # server pings (answered by the client) and client keep-alives
        wait_for(lambda: any(m["type"] == "ping" for m in daemon.received))
        wait_for(lambda: any(m.get("type") == "pong" for m in got))
        assert client.connected
        # the server ends the connection: the client reconnects by itself
        client.send({"type": "command", "command": "bye"})
        wait_for(lambda: len(daemon.headers) >= 2 and client.connected)
        assert any("disconnected" in s for s in statuses)
    finally:
        t0 = time.monotonic()
        assert client.stop(timeout=5)
        assert time.monotonic() - t0 < 3
    assert statuses[-1] == "stopped"
    assert daemon.headers[0]["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("mode", ["stdlib", "websockets"])
def test_client_reports_a_wrong_token(lt: types.ModuleType, daemon: FakeDaemon,
                                      mode: str) -> None:
    statuses: list[str] = []
    client = lt.DaemonClient(f"http://127.0.0.1:{daemon.port}", "wrong-token-123456",
                             lambda m: None, statuses.append, mode=mode)
    client.start()
    try:
        wait_for(lambda: any("wrong token" in s for s in statuses))
        assert not client.connected
    finally:
        assert client.stop(timeout=5)


def test_client_retries_until_the_daemon_is_there(lt: types.ModuleType) -> None:
    statuses: list[str] = []
    client = lt.DaemonClient("http://127.0.0.1:9", TOKEN, lambda m: None, statuses.append,
                             mode="stdlib")
    client.start()
    try:
        wait_for(lambda: any("retrying in" in s for s in statuses))
    finally:
        assert client.stop(timeout=5)  # also wakes it from its back-off wait
    assert statuses[-1] == "stopped"


def test_mini_websocket_masks_and_round_trips(lt: types.ModuleType) -> None:
    key = b"\x01\x02\x03\x04"
    data = bytes(range(256)) * 3
    masked = lt.MiniWebSocket._mask(data, key)
    assert masked != data and lt.MiniWebSocket._mask(masked, key) == data
    assert lt.MiniWebSocket._mask(b"", key) == b""


def test_load_and_unload_pair_every_registration(lt: types.ModuleType) -> None:
    stub = sys.modules["obspython"]
    settings = StubData()
    lt.script_defaults(settings)
    settings.values["daemon_url"] = "http://127.0.0.1:9"
    stub.calls.clear()  # type: ignore[attr-defined]
    lt.script_load(settings)
    client = lt._script.client
    assert client is not None and client._thread.is_alive()
    lt.script_save(settings)
    lt.script_unload()
    assert lt._script is None and not client._thread.is_alive()
    calls: list[tuple[str, tuple[Any, ...]]] = stub.calls  # type: ignore[attr-defined]
    names = [n for n, _ in calls]
    assert names.count("obs_hotkey_register_frontend") == 5
    assert names.count("obs_hotkey_load") == names.count("obs_hotkey_save") == 5
    assert names.count("obs_hotkey_unregister") == 5
    added = [a[0] for n, a in calls if n == "timer_add"]
    removed = [a[0] for n, a in calls if n == "timer_remove"]
    # the very same objects: OBS finds a callback to remove by identity
    assert len(added) == len(removed) == 2
    assert all(a is r for a, r in zip(added, removed, strict=True))
    cb = [a[0] for n, a in calls if n == "obs_frontend_add_event_callback"]
    cb_removed = [a[0] for n, a in calls if n == "obs_frontend_remove_event_callback"]
    assert len(cb) == 1 and cb[0] is cb_removed[0]
    assert "signal_handler_connect" not in names  # polling instead (see CHECK_EVERY_S)
