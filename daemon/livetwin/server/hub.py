"""From LiveTwin events to WebSocket messages: the JSON shapes of docs/live.md and the hub
that fans them out to every connected client without ever blocking the sender."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from livetwin.events import ChatEvent
from livetwin.runtime.live_events import (
    LineEnded,
    LineFailed,
    LineStarted,
    LiveEvent,
    LiveState,
    StateChanged,
)
from livetwin.show.catalog import product_json

log = logging.getLogger(__name__)
Message = dict[str, Any]
CLIENT_QUEUE = 1_000  # messages a client may lag behind before it is dropped


def state_message(state: LiveState) -> Message:
    """The `state` message (docs/live.md), plus chat_target."""
    target = state.chat_target
    return {"type": "state", "paused": state.paused, "on_air": state.on_air,
            "product": product_json(state.product),
            "chat_target": {"platform": target[0], "channel": target[1]} if target else None}


def event_message(event: LiveEvent) -> Message:
    """The WebSocket message of a LiveTwin event."""
    match event:
        case LineStarted(utterance=u, at=at):
            return {"type": "line_start", "id": u.id, "text": u.text, "source": str(u.source),
                    "product_id": u.product_id, "reply_to": u.reply_to, "at": at}
        case LineEnded(id=line_id, skipped=skipped):
            return {"type": "line_end", "id": line_id, "skipped": skipped}
        case LineFailed(id=line_id, message=message):
            return {"type": "error", "message": f"line {line_id} was not spoken: {message}"}
        case StateChanged(state=state):
            return state_message(state)
    raise TypeError(f"not a live event: {event!r}")


def chat_message(chat: ChatEvent) -> Message:
    return {"type": "chat", "id": chat.id, "platform": chat.platform, "user": chat.user,
            "text": chat.text}


class Client:
    """One connected WebSocket: its outgoing queue; `dropped` once it lagged too far."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Message | None] = asyncio.Queue(CLIENT_QUEUE)
        self.dropped = False

    def send(self, message: Message) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped = True  # the sender task closes it; the others go on
            log.warning("a WebSocket client fell %d messages behind; closing it", CLIENT_QUEUE)


class Hub:
    """Fans messages out to the clients; `publish_threadsafe` may be called from any
    thread (the LiveTwin dispatcher)."""

    def __init__(self) -> None:
        self.clients: set[Client] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    def add(self) -> Client:
        client = Client()
        self.clients.add(client)
        return client

    def remove(self, client: Client) -> None:
        self.clients.discard(client)

    def publish(self, message: Message) -> None:
        for c in list(self.clients):
            c.send(message)

    def publish_threadsafe(self, message: Message) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.publish, message)

    def close_all(self) -> None:
        """Ask every client's sender to close (server shutdown)."""
        for c in list(self.clients):
            c.dropped = True
            with contextlib.suppress(asyncio.QueueFull):
                c.queue.put_nowait(None)
