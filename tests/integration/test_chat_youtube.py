"""The YouTube connector against a real local HTTP server speaking the Data API's
liveChatMessages.list: the first page (history) is skipped, nextPageToken is passed on,
pollingIntervalMillis is honoured, message types map to ChatKind, a 503 is retried, and
liveChatEnded stops the connector."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from livetwin.chat.connect import Backoff
from livetwin.chat.youtube import YouTubeChat
from livetwin.config import YouTubeChatConfig
from livetwin.events import ChatKind


def _msg(kind: str, author: str, text: str, **extra: object) -> dict[str, object]:
    return {"id": f"m-{author}", "snippet": {"type": kind, "displayMessage": text, **extra},
            "authorDetails": {"displayName": author, "channelId": "UC" + author}}


PAGES = [  # (expected pageToken, status, body)
    (None, 200, {"nextPageToken": "p1", "pollingIntervalMillis": 100,
                 "items": [_msg("textMessageEvent", "old", "said before we started")]}),
    ("p1", 200, {"nextPageToken": "p2", "pollingIntervalMillis": 100,
                 "items": [_msg("textMessageEvent", "Mia", "how much is the lip tint?"),
                           _msg("superChatEvent", "Rich", "CN¥50.00",
                                superChatDetails={"userComment": "is it vegan?"}),
                           _msg("newSponsorEvent", "Neo", "Welcome!")]}),
    ("p2", 503, {"error": {"errors": [{"reason": "backendError"}]}}),
    ("p2", 200, {"nextPageToken": "p3", "pollingIntervalMillis": 100,
                 "items": [_msg("textMessageEvent", "小鱼", "口红多少钱")]}),
    ("p3", 403, {"error": {"errors": [{"reason": "liveChatEnded"}]}}),
]


class Api(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, list[str]]]] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        Api.requests.append(query)
        step = min(len(Api.requests), len(PAGES)) - 1
        token, status, body = PAGES[step]
        if url.path != "/youtube/v3/liveChat/messages" or query.get("liveChatId") != ["chat1"]:
            status, body = 400, {"error": {"errors": [{"reason": "badRequest"}]}}
        elif query.get("pageToken", [None])[0] != token:
            status, body = 400, {"error": {"errors": [{"reason": "pageTokenInvalid"}]}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    Api.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/youtube/v3"
    finally:
        server.shutdown()
        server.server_close()


def test_youtube_polling(api: str) -> None:
    got: list[tuple[object, ...]] = []
    chat = YouTubeChat(YouTubeChatConfig(live_chat_id="chat1", api_key="k", base_url=api),
                       backoff=Backoff(first_s=0.05, max_s=0.2), min_poll_s=0.05)
    t0 = time.monotonic()
    asyncio.run(asyncio.wait_for(chat.run(lambda *e: got.append(e)), 20))
    assert chat.ended and chat.polls == 5
    assert got == [("youtube", "Mia", "how much is the lip tint?", ChatKind.COMMENT),
                   ("youtube", "Rich", "CN¥50.00", ChatKind.GIFT),
                   ("youtube", "Rich", "is it vegan?", ChatKind.COMMENT),
                   ("youtube", "Neo", "Welcome!", ChatKind.FOLLOW),
                   ("youtube", "小鱼", "口红多少钱", ChatKind.COMMENT)]
    assert all(q["key"] == ["k"] and q["part"] == ["snippet,authorDetails"]
               for q in Api.requests)
    assert time.monotonic() - t0 >= 0.3  # three 100 ms polling intervals were honoured
