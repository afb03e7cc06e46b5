"""YouTube live chat through the Data API v3: `liveChatMessages.list` polling.

Each poll is `GET {base_url}/liveChat/messages?liveChatId=..&part=snippet,authorDetails
&pageToken=..&key=..`; the answer's `nextPageToken` is the next poll's `pageToken`, and
its `pollingIntervalMillis` is how long to wait (YouTube sets it; polling faster only
burns quota). The first page is the chat's recent history: it is skipped, so the host
does not answer questions from before it started. Message types map to ChatKind:
text -> comment, Super Chat / Super Sticker / gifted memberships -> gift (a Super Chat's
text is also a comment), a new member -> follow. Errors: 5xx and network failures retry
with Backoff; 403/404 saying the chat ended or does not exist stop the connector (logged);
other 4xx (quota, bad key) wait the longest backoff and try again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

from livetwin.chat.connect import Backoff, Emit, parse_url
from livetwin.config import YouTubeChatConfig
from livetwin.events import ChatKind

log = logging.getLogger("livetwin.chat")
GIFT_TYPES = frozenset({"superChatEvent", "superStickerEvent", "membershipGiftingEvent",
                        "giftMembershipReceivedEvent"})
FINAL_REASONS = frozenset({"liveChatEnded", "liveChatNotFound", "liveChatDisabled",
                           "forbidden"})
MIN_POLL_S = 1.0


class YouTubeChat:
    """The YouTube connector (module doc). `transport` is injected for tests."""

    name = "youtube"

    def __init__(self, cfg: YouTubeChatConfig, *, backoff: Backoff | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 min_poll_s: float = MIN_POLL_S) -> None:
        parse_url(cfg.base_url, {"http": 80, "https": 443})  # fails `serve` at start
        self.cfg, self.backoff, self.transport = cfg, backoff or Backoff(), transport
        self.min_poll_s = min_poll_s
        self.polls = 0
        self.ended = False

    async def run(self, emit: Emit) -> None:
        """Poll until cancelled or the chat ends."""
        page: str | None = None
        first = True
        async with httpx.AsyncClient(base_url=self.cfg.base_url.rstrip("/"), timeout=10.0,
                                     transport=self.transport) as client:
            while True:
                started = time.monotonic()
                try:
                    data = await self._poll(client, page)
                except httpx.HTTPStatusError as exc:
                    reason = _reason(exc.response)
                    if reason in FINAL_REASONS or exc.response.status_code == 404:
                        log.warning("youtube: the live chat is gone (%s); stopping", reason)
                        self.ended = True
                        return
                    wait = self.backoff.next_wait(0) if exc.response.status_code >= 500 \
                        else self.backoff.max_s
                    log.warning("youtube: HTTP %s (%s); retrying in %.1f s",
                                exc.response.status_code, reason, wait)
                    await asyncio.sleep(wait)
                    continue
                except (httpx.TransportError, ValueError) as exc:
                    wait = self.backoff.next_wait(time.monotonic() - started)
                    log.warning("youtube: %s; retrying in %.1f s", exc, wait)
                    await asyncio.sleep(wait)
                    continue
                self.backoff.next_wait(self.backoff.healthy_s)  # a good poll resets it
                if not first:
                    for item in data.get("items", []):
                        self._event(item, emit)
                first = False
                page = data.get("nextPageToken") or page
                if data.get("offlineAt"):
                    log.info("youtube: the broadcast went offline; stopping")
                    self.ended = True
                    return
                interval = float(data.get("pollingIntervalMillis", 5000)) / 1000.0
                await asyncio.sleep(max(self.min_poll_s, interval))

    async def _poll(self, client: httpx.AsyncClient, page: str | None) -> dict[str, Any]:
        params = {"liveChatId": self.cfg.live_chat_id, "part": "snippet,authorDetails",
                  "maxResults": "2000"}
        if self.cfg.api_key:
            params["key"] = self.cfg.api_key
        if page:
            params["pageToken"] = page
        response = await client.get("/liveChat/messages", params=params)
        self.polls += 1
        response.raise_for_status()
        data = response.json()
        if not isinstance(data, dict):
            raise ValueError("the API answered with something that is not a JSON object")
        return data

    def _event(self, item: dict[str, Any], emit: Emit) -> None:
        snippet = item.get("snippet") or {}
        author = (item.get("authorDetails") or {}).get("displayName", "")
        kind = snippet.get("type", "")
        text = str(snippet.get("displayMessage") or "")
        if kind == "textMessageEvent" and text:
            emit(self.name, author, text, ChatKind.COMMENT)
        elif kind in GIFT_TYPES:
            emit(self.name, author, text, ChatKind.GIFT)
            comment = (snippet.get("superChatDetails") or {}).get("userComment")
            if comment:
                emit(self.name, author, str(comment), ChatKind.COMMENT)
        elif kind == "newSponsorEvent":
            emit(self.name, author, text, ChatKind.FOLLOW)


def _reason(response: httpx.Response) -> str:
    """The API error's `reason` (liveChatEnded, quotaExceeded, ...), or the status text."""
    try:
        errors = response.json()["error"]["errors"]
        return str(errors[0]["reason"])
    except (ValueError, KeyError, IndexError, TypeError):
        return response.reason_phrase
