"""The chat routes of the API on a LiveTwin of fakes: `WS /ws/chat` (bridges: token,
batches, per-item errors), `POST /api/chat` into the pipeline, and the decision log and
operator queue routes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from livetwin.chat.pipeline import ChatPipeline
from livetwin.chat.registry import ChatService
from livetwin.events import Product
from livetwin.server.app import Daemon
from livetwin.server.auth import Token

from ..live_harness import ApiServer, make_live

TOKEN = "t0ken-for-the-chat-tests-01234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PRODUCTS = [Product("lip-tint", "Aurora Lip Tint", 99.0, "CNY", facts=("six shades",),
                    faq=((("price", "多少钱"), "It is {price} yuan."),))]


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    live = make_live(products=PRODUCTS)
    d = Daemon(live, Token(TOKEN, "config"), PRODUCTS)
    d.chat = ChatService(ChatPipeline(PRODUCTS, live.say, lambda: None))
    d.chat.start(d.receive_chat)
    yield d
    d.chat.close()
    live.close()


@pytest.fixture
def server(daemon: Daemon) -> Iterator[ApiServer]:
    with ApiServer(daemon) as s:
        yield s


def test_ws_chat_needs_the_token(server: ApiServer) -> None:
    with server.ws("/ws/chat", {"Authorization": "Bearer wrong-token-000000000"}) as ws, \
            pytest.raises(ConnectionClosed) as closed:
        ws.receive_json()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_ws_chat_batches(server: ApiServer, daemon: Daemon) -> None:
    with server.ws("/ws/chat", AUTH) as ws:
        ws.send_json([{"platform": "douyin", "user": "小鱼", "text": "口红多少钱"},
                      {"platform": "douyin", "user": "x"},
                      {"platform": "douyin", "user": "fan", "kind": "follow"},
                      {"platform": "douyin", "user": "y", "text": "hi", "colour": "red"}])
        batch = ws.receive_json()
        ws.send_json({"platform": "douyin", "user": "solo", "text": "hello"})
        single = ws.receive_json()
        ws.send_text("not json")
        bad = ws.receive_json()
    assert batch["type"] == "batch"
    replies = batch["replies"]
    assert single["type"] == "accepted"
    assert replies[0]["type"] == "accepted" and replies[0]["id"].startswith("c")
    assert replies[1] == {"type": "error", "error": "text: a comment needs text"}
    assert replies[2]["type"] == "accepted"
    assert replies[3]["type"] == "error" and "colour" in replies[3]["error"]
    assert bad["type"] == "error"
    actions = {d.chat_id: d.action for d in daemon.chat.pipeline.decisions}  # type: ignore[union-attr]
    assert actions == {replies[0]["id"]: "answer", replies[2]["id"]: "thanks",
                       single["id"]: "greet"}


def test_post_chat_feeds_the_pipeline(server: ApiServer, daemon: Daemon) -> None:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as http:
        asked = http.post("/api/chat", json={"platform": "t", "user": "a",
                                             "text": "how much is the lip tint?"}).json()["id"]
        odd = http.post("/api/chat", json={"platform": "t", "user": "b",
                                           "text": "is the lip tint waterproof?"}).json()["id"]
        long = http.post("/api/chat", json={"platform": "t", "user": "c",
                                            "text": "buy " * 5000})
        assert long.status_code == 202  # accepted, then dropped by the gate as spam
        decisions = http.get("/api/chat/decisions").json()
        queue = http.get("/api/chat/queue").json()
    by_id = {d["chat_id"]: d for d in decisions}
    assert by_id[asked]["action"] == "answer" and "score" in by_id[asked]["reason"]
    assert by_id[odd]["action"] == "operator"
    assert by_id[long.json()["id"]]["category"] == "spam"
    assert [q["chat_id"] for q in queue] == [odd]
    deadline = time.monotonic() + 5
    while daemon.live.backlog() == 0 and daemon.chat.pipeline.spoken == 0:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the answer was never handed to the twin"
        time.sleep(0.02)
