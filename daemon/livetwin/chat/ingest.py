"""The generic chat ingest for platform bridges (Douyin, Taobao Live, TikTok, Bilibili, ...):
`WS /ws/chat` here, and `POST /api/chat` (server/app.py) for one message at a time.

A bridge is any program that reads a platform's live events and forwards them; it needs
the API token (`Authorization: Bearer TOKEN` header, or `?token=TOKEN`). Over the
WebSocket it sends one JSON object per message, or a JSON list of them:

    {"platform": "douyin", "user": "小鱼", "text": "口红多少钱", "kind": "comment"}

`kind` is comment (default), gift, follow, join or like; text may be empty except for
comments. An object is answered with `{"type": "accepted", "id": "c17"}` or
`{"type": "error", "error": "..."}` (the connection stays open); a list with one
`{"type": "batch", "replies": [...]}` holding those answers in order (one send per list
keeps a busy bridge cheap). Everything received goes
the same way as `POST /api/chat`: the chat log, the `/ws` broadcast, then the chat
pipeline's gate. A bad token closes with 4401 before any message. docs/chat.md has a
complete bridge in a dozen lines.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from livetwin.events import ChatKind

if TYPE_CHECKING:
    from livetwin.server.app import Daemon

CLOSE_UNAUTHORIZED = 4401
MAX_BATCH = 500


class IngestIn(BaseModel):
    """One viewer event from a bridge."""

    model_config = ConfigDict(extra="forbid", strict=True)
    platform: str = Field(min_length=1, max_length=32)
    user: str = Field(min_length=1, max_length=100)
    text: str = Field("", max_length=32_000)
    kind: Literal["comment", "gift", "follow", "join", "like"] = "comment"


def accept(daemon: Daemon, raw: Any) -> dict[str, object]:
    """Validate one object and hand it to the daemon; the reply message."""
    try:
        item = IngestIn.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "message"
        return {"type": "error", "error": f"{where}: {err['msg']}"}
    if item.kind == "comment" and not item.text.strip():
        return {"type": "error", "error": "text: a comment needs text"}
    event = daemon.receive_chat(item.platform, item.user, item.text, ChatKind(item.kind))
    return {"type": "accepted", "id": event.id}


def handle(daemon: Daemon, text: str) -> dict[str, object]:
    """The reply to one WebSocket message (an object or a list of objects)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {"type": "error", "error": "not JSON; send one object or a list of them"}
    if not isinstance(data, list):
        return accept(daemon, data)
    if len(data) > MAX_BATCH:
        return {"type": "error", "error": f"more than {MAX_BATCH} messages in one list"}
    return {"type": "batch", "replies": [accept(daemon, item) for item in data]}


async def serve_ingest(socket: WebSocket, daemon: Daemon) -> None:
    """One bridge connection (module doc)."""
    from livetwin.server.auth import bearer

    given = socket.query_params.get("token") or bearer(socket.headers.get("authorization"))
    await socket.accept()
    if not daemon.token.matches(given):
        await socket.close(CLOSE_UNAUTHORIZED, "missing or wrong API token")
        return
    try:
        while True:
            text = await socket.receive_text()
            await socket.send_text(json.dumps(handle(daemon, text), ensure_ascii=False))
    except WebSocketDisconnect:
        return
