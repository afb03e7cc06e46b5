"""`WS /ws` (docs/live.md): token from the `Authorization` header, `?token=`, or (for
browsers, which cannot set headers) a `bearer.TOKEN` entry of `Sec-WebSocket-Protocol`
beside `livetwin`, which is the one echoed back; a wrong token closes with 4401 before
any message. Then `hello`, then events as they happen;
client messages are validated (unknown types or bad fields get an `error` message, the
connection stays open). All sends go through the client's queue and one sender task."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from livetwin import __version__
from livetwin.errors import LivetwinError
from livetwin.server.auth import bearer
from livetwin.server.hub import Client, Message
from livetwin.show.catalog import product_json

if TYPE_CHECKING:
    from livetwin.server.app import Daemon

PROTOCOL_VERSION = 1
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 1013
SUBPROTOCOL = "livetwin"  # what the server echoes to a browser that offered it
BEARER_PREFIX = "bearer."  # a browser offers ["livetwin", "bearer.TOKEN"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ObsEvent(_In):
    type: Literal["obs_event"]
    event: Literal["streaming_started", "streaming_stopped", "recording_started",
                   "recording_stopped", "scene_changed"]
    scene: str | None = Field(None, max_length=256)
    twin_on_air: bool | None = None


class Command(_In):
    type: Literal["command"]
    command: Literal["pause", "resume", "toggle_pause", "next_product", "call_to_follow",
                     "point_to_cart", "skip_line"]


class ChatTarget(_In):
    type: Literal["chat_target"]
    platform: Literal["twitch", "youtube", "none"]
    channel: str = Field("", max_length=100)


class Ping(_In):
    type: Literal["ping"]
    id: int | str | None = None


ClientMessage = TypeAdapter(Annotated[ObsEvent | Command | ChatTarget | Ping,
                                      Field(discriminator="type")])


def hello(daemon: Daemon) -> Message:
    live, state = daemon.live, daemon.live.state
    return {"type": "hello", "version": PROTOCOL_VERSION, "server": __version__,
            "avatar": live.avatar, "fps": live.fps, "size": list(live.size),
            "stream_url": daemon.stream_url, "paused": state.paused, "on_air": state.on_air,
            "product": product_json(state.product)}


def _error(message: str) -> Message:
    return {"type": "error", "message": message}


def _explain(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "union_tag_invalid":
        return ("unknown message type; use obs_event, command, chat_target or ping.")
    if err["type"] == "union_tag_not_found":
        return "the message has no \"type\"."
    return f"bad field {where!r}: {err['msg']}." if where else f"bad message: {err['msg']}."


def handle(daemon: Daemon, text: str) -> Message | None:
    """The reply to one client message (None when there is none)."""
    try:
        data = json.loads(text)
    except ValueError:
        return _error("not JSON; every message is one JSON object with a \"type\".")
    if not isinstance(data, dict):
        return _error("every message is one JSON object with a \"type\".")
    try:
        msg = ClientMessage.validate_python(data)
    except ValidationError as exc:
        return _error(_explain(exc))
    live = daemon.live
    try:
        match msg:
            case Ping(id=ping_id):
                return {"type": "pong", "id": ping_id}
            case ObsEvent(event=event, twin_on_air=on_air):
                live.obs_event(event, twin_on_air=on_air)
            case ChatTarget(platform=platform, channel=channel):
                if daemon.chat is not None:  # no channel yet (being typed): none for now
                    daemon.chat.set_target(platform if channel else "none", channel)
                live.set_chat_target(platform, channel)
            case Command(command="skip_line"):
                live.skip_line()
            case Command(command=command):
                getattr(live, command)()
    except LivetwinError as exc:
        return _error(str(exc))
    return None


def _subprotocols(socket: WebSocket) -> list[str]:
    header = socket.headers.get("sec-websocket-protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


def _protocol_token(offered: list[str]) -> str | None:
    """The token of a `bearer.TOKEN` subprotocol entry (browsers cannot set headers)."""
    return next((p.removeprefix(BEARER_PREFIX) for p in offered
                 if p.startswith(BEARER_PREFIX) and len(p) > len(BEARER_PREFIX)), None)


async def _send_loop(socket: WebSocket, client: Client) -> None:
    while True:
        message = await client.queue.get()
        if message is None or client.dropped:
            with contextlib.suppress(Exception):
                await socket.close(CLOSE_TOO_SLOW if message is not None else 1001)
            return
        await socket.send_text(json.dumps(message, ensure_ascii=False))


async def serve_socket(socket: WebSocket, daemon: Daemon) -> None:
    """One client connection (module doc)."""
    offered = _subprotocols(socket)
    given = (socket.query_params.get("token") or bearer(socket.headers.get("authorization"))
             or _protocol_token(offered))
    # a browser fails the handshake unless one offered subprotocol is echoed: never the token
    await socket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    if not daemon.token.matches(given):
        await socket.close(CLOSE_UNAUTHORIZED, "missing or wrong API token")
        return
    client = daemon.hub.add()
    client.send(hello(daemon))
    sender = asyncio.create_task(_send_loop(socket, client))
    try:
        while not sender.done():
            received = asyncio.ensure_future(socket.receive())
            done, _ = await asyncio.wait({received, sender}, return_when=asyncio.FIRST_COMPLETED)
            if received not in done:
                received.cancel()
                break
            message = received.result()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            reply = (handle(daemon, text) if text is not None
                     else _error("send text frames with JSON, not binary."))
            if reply is not None:
                client.send(reply)
    except WebSocketDisconnect:
        pass
    finally:
        daemon.hub.remove(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
