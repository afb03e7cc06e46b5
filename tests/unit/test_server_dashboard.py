"""The dashboard's server side (server/dashboard.py) on a LiveTwin of fakes: the page and
its static files need no token but hold no data, everything else still needs it; the
preview route; the browser's WebSocket token in `Sec-WebSocket-Protocol`."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from livetwin.server.app import Daemon
from livetwin.server.auth import Token

from ..live_harness import ApiServer, make_live

TOKEN = "t0ken-for-the-dashboard-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JPEG = b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9"


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    live = make_live()
    yield Daemon(live, Token(TOKEN, "config"))
    live.close()


def serve(daemon: Daemon) -> ApiServer:
    return ApiServer(daemon)


def test_page_and_static_need_no_token_and_carry_no_data(daemon: Daemon) -> None:
    with serve(daemon) as s, httpx.Client(base_url=s.url, timeout=10) as c:
        page = c.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert TOKEN not in page.text
        for path, kind in (("/static/dashboard.js", "javascript"),
                           ("/static/dashboard.css", "text/css")):
            r = c.get(path)
            assert r.status_code == 200 and kind in r.headers["content-type"], path
        assert c.get("/static/nothing.js").status_code == 404
        # the open prefix opens nothing else: API routes and traversal still need the token
        for path in ("/api/products", "/api/dashboard", "/api/preview.jpg", "/index.html",
                     "/static/../api/products", "/static/%2e%2e/api/products"):
            r = c.get(path)
            assert r.status_code in (401, 404), (path, r.status_code)
            assert not (r.status_code == 200 and r.text.startswith("[")), path


def test_preview_route(daemon: Daemon) -> None:
    frames: list[bytes | None] = [None]
    with serve(daemon) as s, httpx.Client(base_url=s.url, timeout=10) as c:
        r = c.get("/api/preview.jpg", headers=AUTH)
        assert r.status_code == 404 and "preview_fps" in r.json()["detail"]
        daemon.preview = lambda: frames[-1]
        assert c.get("/api/preview.jpg", headers=AUTH).status_code == 204
        frames.append(JPEG)
        r = c.get("/api/preview.jpg", headers=AUTH)
        assert r.status_code == 200 and r.content == JPEG
        assert r.headers["content-type"] == "image/jpeg"
        assert r.headers["cache-control"] == "no-store"
        assert c.get("/api/preview.jpg").status_code == 401


def test_dashboard_info(daemon: Daemon) -> None:
    with serve(daemon) as s, httpx.Client(base_url=s.url, timeout=10) as c:
        info = c.get("/api/dashboard", headers=AUTH).json()
    assert info["avatar"] == "fake"
    assert info["label"] == {"on": True, "text": daemon.live.canvas.label, "editable": False}
    assert info["consent"] is None  # the fake avatar has no bundle: shown as unknown
    assert info["connectors"] == [] and info["chat_pipeline"] is False


def test_websocket_token_as_subprotocol(daemon: Daemon) -> None:
    with serve(daemon) as s:
        url = "ws" + s.url.removeprefix("http") + "/ws"
        with connect(url, subprotocols=["livetwin", f"bearer.{TOKEN}"],  # type: ignore[list-item]
                     open_timeout=10) as ws:
            assert ws.subprotocol == "livetwin"  # the token is never echoed
            assert json.loads(ws.recv(10))["type"] == "hello"
        with connect(url, subprotocols=["livetwin", "bearer.wrong-token-0000000000"],  # type: ignore[list-item]
                     open_timeout=10) as ws:
            with pytest.raises(ConnectionClosed) as exc:
                ws.recv(10)
            assert exc.value.rcvd is not None and exc.value.rcvd.code == 4401



def test_queue_done_takes_a_question_off_the_operator_queue(daemon: Daemon) -> None:
    queue = deque([{"chat_id": "c1", "user": "a", "text": "q1"},
                   {"chat_id": "c2", "user": "b", "text": "q2"}])
    with serve(daemon) as s, httpx.Client(base_url=s.url, timeout=10) as c:
        assert c.post("/api/chat/queue/c1/done", headers=AUTH).status_code == 404  # no chat
        daemon.chat = SimpleNamespace(pipeline=SimpleNamespace(unanswered=queue),  # type: ignore[assignment]
                                      connectors=[])
        assert c.post("/api/chat/queue/c1/done").status_code == 401
        r = c.post("/api/chat/queue/c1/done", headers=AUTH)
        assert r.status_code == 200 and r.json() == {"chat_id": "c1", "removed": 1}
        assert [q["chat_id"] for q in c.get("/api/chat/queue", headers=AUTH).json()] == ["c2"]
        r = c.post("/api/chat/queue/c1/done", headers=AUTH)
        assert r.status_code == 404 and "c1" in r.json()["detail"]


def test_the_page_script_builds_no_html_from_strings() -> None:
    """Data reaches the DOM through textContent only (docs/dashboard.md): the script has
    no HTML-string sink at all, so no product, script line or chat text can become
    markup."""
    from livetwin.server.dashboard import STATIC_DIR

    code = (STATIC_DIR / "dashboard.js").read_text(encoding="utf-8")
    lines = [ln for ln in code.splitlines() if not ln.lstrip().startswith("//")]
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function"):
        assert not [ln for ln in lines if sink in ln], sink
    assert "textContent" in code
