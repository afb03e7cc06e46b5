"""The dashboard's server side (server/dashboard.py) on a LiveTwin of fakes: the page and
its static files need no token but hold no data, everything else still needs it; the
preview route; the browser's WebSocket token in `Sec-WebSocket-Protocol`; a gesture
played now (it changes the frames; an unknown name is 422); the AI label reworded (the
frames show the new text; empty, long or AI-less texts are 422 and change nothing)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import numpy as np
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
    assert info["label"] == {"on": True, "text": daemon.live.canvas.label, "editable": True,
                             "max": 40}
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


def test_show_outlook_without_a_show(daemon: Daemon) -> None:
    with serve(daemon) as s, httpx.Client(base_url=s.url, timeout=10, headers=AUTH) as c:
        assert c.get("/api/show").json() == {"running": False}


def test_a_gesture_plays_now_and_an_unknown_one_is_refused(daemon: Daemon) -> None:
    live = daemon.live
    with serve(daemon) as s, httpx.Client(base_url=s.url, timeout=10, headers=AUTH) as c:
        listed = c.get("/api/gestures").json()
        ids = [g["id"] for g in listed]
        assert ids == live.gesture_names() and {"nod", "cue_cart_arrow"} <= set(ids)
        assert all(g["name"] and g["description"] for g in listed)
        r = c.post("/api/gesture", json={"name": "moonwalk"})
        assert r.status_code == 422
        assert r.json()["detail"] == ("no gesture 'moonwalk' for this avatar; choose one of "
                                      "GET /api/gestures.")
        assert c.post("/api/gesture", json={"name": ""}).status_code == 422
        assert c.post("/api/gesture", json={"name": "nod", "x": 1}).status_code == 422
        still = live.tick(0)[0]
        r = c.post("/api/gesture", json={"name": "cue_cart_arrow"})  # an on-screen arrow
        assert r.status_code == 202 and r.json()["name"] == "cue_cart_arrow"
        frames = round(r.json()["duration_s"] * live.fps) + 10
        changed = [bool((live.tick(i)[0] != still).any()) for i in range(1, frames)]
        assert live.stats()["gesture"] is None  # over, by itself
    # the arrow shows for a while after the lead, then the picture is as before
    assert any(changed) and not changed[0] and not changed[-1], changed


def label_pixels(daemon: Daemon, index: int) -> np.ndarray:
    frame = daemon.live.tick(index)[0]
    box = daemon.live.canvas.label_box
    assert box is not None
    return np.asarray(frame[box[1]:box[3], box[0]:box[2]])


def test_the_ai_label_is_reworded_never_removed(daemon: Daemon) -> None:
    old = daemon.live.canvas.label
    before = label_pixels(daemon, 0)
    with serve(daemon) as s, httpx.Client(base_url=s.url, timeout=10, headers=AUTH) as c:
        for text, why in (("", "cannot be empty"), ("   ", "cannot be empty"),
                          ("A" * 41, "keep it to 40"), ("Hosted by Mia", "must still say"),
                          ("AIRPORT deals", "must still say")):
            r = c.post("/api/label", json={"text": text})
            assert r.status_code == 422 and why in r.json()["detail"], (text, r.text)
        assert c.post("/api/label", json={}).status_code == 422
        assert daemon.live.label == old
        assert np.array_equal(label_pixels(daemon, 1), before)
        r = c.post("/api/label", json={"text": "  KI-generierter   Host "})
        assert r.status_code == 200
        assert r.json() == {"on": True, "text": "KI-generierter Host", "editable": True,
                            "max": 40}
        assert c.get("/api/dashboard").json()["label"]["text"] == "KI-generierter Host"
    after = label_pixels(daemon, 2)  # drawn from the next frame on
    assert daemon.live.canvas.label == "KI-generierter Host"
    assert after.shape != before.shape or not np.array_equal(after, before)
