"""The ASGI layer in front of the API: every HTTP route but `/api/health` and the
dashboard's page and static files (`/`, `/static/...`: no data in them) needs the bearer
token (401), and a request body over MAX_BODY bytes is refused with 413 before anything
parses it (by its Content-Length at once, or while a chunked body arrives). Both run
before FastAPI, so a malformed body from a client without the token still gets 401."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from livetwin.server.auth import Token, bearer

MAX_BODY = 64 * 1024
# The dashboard page and its static files hold no data (server/dashboard.py); the page
# asks for the token and sends it on every API call.
OPEN_PATHS = frozenset({"/api/health", "/"})
OPEN_PREFIX = "/static/"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _reply(send: Send, status: int, detail: str,
                 headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Token check and body-size limit around `app` (module doc)."""

    def __init__(self, app: ASGIApp, token: Token, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.token = token
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan; /ws checks its token itself
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        path = str(scope.get("path", ""))
        if path not in OPEN_PATHS and not path.startswith(OPEN_PREFIX):
            auth = headers.get(b"authorization", b"").decode("latin-1")
            if not self.token.matches(bearer(auth)):
                await _reply(send, 401, "missing or wrong API token; send 'Authorization: "
                             "Bearer TOKEN' (see where `livetwin serve` said the token is).",
                             ((b"www-authenticate", b"Bearer"),))
                return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                await _reply(send, 400, "the Content-Length header is not a number.")
                return
            if too_big:
                await _reply(send, 413, f"the request body is over {self.max_body} bytes.")
                return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.max_body:
                await _reply(send, 413, f"the request body is over {self.max_body} bytes.")
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)
