"""The HTTP API and the WebSocket of `livetwin serve` on a LiveTwin of fakes: bad input
gets the right 4xx and leaves the daemon healthy; say -> line_start/line_end on the
WebSocket and in the transcript."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from livetwin.events import Product
from livetwin.server.app import Daemon
from livetwin.server.auth import Token

from ..live_harness import ApiServer, Ticker, WsClient, make_live

TOKEN = "t0ken-for-the-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PRODUCTS = [Product("lip-tint", "Aurora Lip Tint", 99.0, "CNY", facts=("six shades",),
                    faq=((("price", "多少钱"), "It is {price} yuan."),))]


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    live = make_live(products=PRODUCTS)
    yield Daemon(live, Token(TOKEN, "config"), PRODUCTS, stream_url="udp://127.0.0.1:9999")
    live.close()


@pytest.fixture
def server(daemon: Daemon) -> Iterator[ApiServer]:
    with ApiServer(daemon) as s:
        yield s


@pytest.fixture
def client(server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def healthy(client: httpx.Client) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_health_needs_no_token(client: httpx.Client) -> None:
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["avatar"] == "fake"
    assert {"fps", "uptime_s", "output", "live"} <= set(body)


@pytest.mark.parametrize("method,path", [("GET", "/api/transcript"), ("GET", "/api/products"),
                                         ("POST", "/api/say"), ("POST", "/api/chat"),
                                         ("POST", "/api/viewers"), ("GET", "/api/nothing")])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-000000000"},
                                     {"Authorization": TOKEN},
                                     {"Authorization": f"Basic {TOKEN}"}])
def test_wrong_or_missing_token_is_401(client: httpx.Client, method: str, path: str,
                                       headers: dict[str, str]) -> None:
    r = client.request(method, path, headers=headers, content=b"{not json")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    healthy(client)


@pytest.mark.parametrize("path,body", [
    ("/api/say", b"{not json"),
    ("/api/say", b""),
    ("/api/say", b"[1, 2]"),
    ("/api/say", json.dumps({"text": 5}).encode()),
    ("/api/say", json.dumps({"text": "hi", "extra": 1}).encode()),
    ("/api/say", json.dumps({}).encode()),
    ("/api/say", json.dumps({"text": ""}).encode()),
    ("/api/say", json.dumps({"text": "🙂"}).encode()),  # nothing to say
    ("/api/say", json.dumps({"text": "x" * 2001}).encode()),
    ("/api/say", json.dumps({"text": "hi", "lang": "xx"}).encode()),
    ("/api/chat", json.dumps({"platform": "twitch", "user": "u"}).encode()),
    ("/api/chat", json.dumps({"platform": "twitch", "user": "u", "text": ["a"]}).encode()),
    ("/api/chat", json.dumps({"platform": "t", "user": "u", "text": "a", "x": 1}).encode()),
    ("/api/viewers", json.dumps({"count": "12"}).encode()),
    ("/api/viewers", json.dumps({"count": -1}).encode()),
    ("/api/viewers", json.dumps({"count": 1.5}).encode()),
    ("/api/viewers", json.dumps({"count": True}).encode()),
])
def test_bad_bodies_are_422(client: httpx.Client, path: str, body: bytes) -> None:
    r = client.post(path, headers=AUTH | {"content-type": "application/json"}, content=body)
    assert r.status_code == 422, r.text
    healthy(client)


def test_a_1mb_body_is_413_before_parsing(client: httpx.Client) -> None:
    big = b'{"text": "' + b"a" * (1 << 20) + b'"}'
    r = client.post("/api/say", headers=AUTH | {"content-type": "application/json"},
                    content=big)
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(16):
            yield b"a" * 65536

    r = client.post("/api/chat", headers=AUTH, content=chunks())
    assert r.status_code == 413
    healthy(client)


def test_say_is_spoken_and_transcribed(server: ApiServer, client: httpx.Client,
        daemon: Daemon) -> None:
    with Ticker(daemon.live), server.ws("/ws", headers=AUTH) as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["version"] == 1
        assert hello["size"] == [320, 180] and hello["fps"] == 25
        assert hello["stream_url"] == "udp://127.0.0.1:9999" and hello["paused"] is False
        r = client.post("/api/say", headers=AUTH, json={"text": "Hello, world."})
        assert r.status_code == 202
        line_id = r.json()["id"]
        start = ws.receive_json()
        end = ws.receive_json()
    assert start["type"] == "line_start" and start["id"] == line_id
    assert start["text"] == "Hello, world." and start["source"] == "operator"
    assert start["reply_to"] is None and start["product_id"] is None
    assert end == {"type": "line_end", "id": line_id, "skipped": False}
    entries = client.get("/api/transcript", headers=AUTH).json()
    assert entries == [{"id": line_id, "at": start["at"], "text": "Hello, world.",
                        "source": "operator", "product_id": None, "reply_to": None}]
    assert client.get(f"/api/transcript?since={line_id}", headers=AUTH).json() == []
    assert client.get("/api/transcript?since=0", headers=AUTH).json() == entries


def test_chat_is_stored_and_broadcast(server: ApiServer, client: httpx.Client,
        daemon: Daemon) -> None:
    with server.ws(f"/ws?token={TOKEN}") as ws:
        ws.receive_json()
        r = client.post("/api/chat", headers=AUTH,
                        json={"platform": "twitch", "user": "ann", "text": "how much?"})
        assert r.status_code == 202
        msg = ws.receive_json()
    assert msg == {"type": "chat", "id": r.json()["id"], "platform": "twitch", "user": "ann",
                   "text": "how much?"}
    assert daemon.chats.recent()[-1].text == "how much?"
    r = client.post("/api/viewers", headers=AUTH, json={"count": 42})
    assert r.status_code == 202
    assert client.get("/api/health").json()["viewers"] == 42


def test_products(client: httpx.Client) -> None:
    r = client.get("/api/products", headers=AUTH)
    assert r.json() == [{"id": "lip-tint", "name": "Aurora Lip Tint", "price": 99.0,
                         "currency": "CNY", "list_price": None, "stock": None,
                         "facts": ["six shades"],
                         "faq": [{"q": ["price", "多少钱"], "a": "It is {price} yuan."}]}]


@pytest.mark.parametrize("url,headers", [("/ws", {}), ("/ws?token=nope", {}),
                                         ("/ws", {"Authorization": "Bearer nope"})])
def test_ws_wrong_token_closes_4401(server: ApiServer, client: httpx.Client, url: str,
                                    headers: dict[str, str]) -> None:
    with server.ws(url, headers=headers) as ws, pytest.raises(ConnectionClosed) as exc:
        ws.receive_json()
    assert exc.value.rcvd is not None and exc.value.rcvd.code == 4401


def _send(ws: WsClient, message: Any) -> dict[str, Any]:
    ws.send_text(message if isinstance(message, str) else json.dumps(message))
    reply: dict[str, Any] = ws.receive_json()
    return reply


def test_ws_bad_messages_get_errors_and_the_socket_stays(server: ApiServer) -> None:
    with server.ws("/ws", headers=AUTH) as ws:
        ws.receive_json()
        for bad in ["not json", "[1]", {"no": "type"}, {"type": "nonsense"},
                    {"type": "command", "command": "explode"},
                    {"type": "command", "command": "pause", "extra": 1},
                    {"type": "obs_event", "event": "scene_changed", "twin_on_air": "yes"},
                    {"type": "chat_target", "platform": "myspace", "channel": "x"}]:
            reply = _send(ws, bad)
            assert reply["type"] == "error" and reply["message"], bad
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_json()["type"] == "error"
        assert _send(ws, {"type": "ping", "id": 7}) == {"type": "pong", "id": 7}


def test_ws_commands_change_the_state(server: ApiServer, daemon: Daemon) -> None:
    with server.ws("/ws", headers=AUTH) as ws:
        ws.receive_json()
        state = _send(ws, {"type": "command", "command": "pause"})
        assert state["type"] == "state" and state["paused"] is True
        assert _send(ws, {"type": "command", "command": "toggle_pause"})["paused"] is False
        off = _send(ws, {"type": "obs_event", "event": "scene_changed", "scene": "Other",
                         "twin_on_air": False})
        assert off["on_air"] is False
        state = _send(ws, {"type": "command", "command": "next_product"})
        assert state["product"] == {"id": "lip-tint", "name": "Aurora Lip Tint",
                                    "price": 99.0, "currency": "CNY"}
        target = _send(ws, {"type": "chat_target", "platform": "twitch", "channel": "shop"})
        assert target["chat_target"] == {"platform": "twitch", "channel": "shop"}
        assert _send(ws, {"type": "ping", "id": "x"}) == {"type": "pong", "id": "x"}
    assert daemon.live.state.product is not None and not daemon.live.state.on_air


def test_ws_next_product_without_catalog_is_an_error() -> None:
    live = make_live()
    try:
        d = Daemon(live, Token(TOKEN, "config"))
        with ApiServer(d) as server, server.ws("/ws", headers=AUTH) as ws:
            ws.receive_json()
            reply = _send(ws, {"type": "command", "command": "next_product"})
            assert reply["type"] == "error" and "catalog" in reply["message"]
    finally:
        live.close()


def test_ws_skip_line(server: ApiServer, client: httpx.Client,
        daemon: Daemon) -> None:
    with Ticker(daemon.live), server.ws("/ws", headers=AUTH) as ws:
        ws.receive_json()
        client.post("/api/say", headers=AUTH, json={"text": "One. Two. Three. Four. Five."})
        start = ws.receive_json()
        assert start["type"] == "line_start"
        ws.send_json({"type": "command", "command": "skip_line"})
        end = ws.receive_json()
    assert end == {"type": "line_end", "id": start["id"], "skipped": True}
