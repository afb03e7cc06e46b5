"""Twitch chat over IRC with IRCv3 tags (irc.chat.twitch.tv, TLS or WebSocket).

One session: `CAP REQ` for tags and commands (then `CAP END`, which Twitch ignores and a
standard IRC server needs to finish registration), `PASS` when a token is set, `NICK`,
`JOIN #channel`; then every line is read: `PING` is answered with `PONG`, `PRIVMSG` to the
channel becomes a comment (the user is the `display-name` tag, else the nick; a message
with `bits` is a gift too), `USERNOTICE` subscriptions and gifted subs become gifts,
`RECONNECT` (Twitch's maintenance notice) ends the session. A session that ends for any
reason is followed by a new one after `Backoff`'s wait, until the task is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from livetwin.chat.connect import IRC_SCHEMES, Backoff, Emit, LineConn, open_lines, parse_url
from livetwin.config import TwitchChatConfig
from livetwin.events import ChatKind

log = logging.getLogger("livetwin.chat")
GIFT_NOTICES = frozenset({"sub", "resub", "subgift", "submysterygift", "giftpaidupgrade",
                          "bitsbadgetier", "anongiftpaidupgrade"})
LOGIN_ERRORS = frozenset({"432", "433", "436", "464", "465", "471", "473", "474", "475"})
_TAG_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


@dataclass(frozen=True)
class IrcMessage:
    """One parsed IRC line: tags, prefix nick, command, params (the last may have spaces)."""

    command: str
    params: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    nick: str = ""


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(_TAG_ESCAPES.get(value[i + 1], value[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse_line(line: str) -> IrcMessage | None:
    """An IRC line (with optional IRCv3 tags) parsed; None for an empty one."""
    tags: dict[str, str] = {}
    rest = line.strip("\r\n")
    if rest.startswith("@"):
        raw, _, rest = rest.partition(" ")
        for item in raw[1:].split(";"):
            k, _, v = item.partition("=")
            tags[k] = _unescape(v)
    nick = ""
    if rest.startswith(":"):
        prefix, _, rest = rest.partition(" ")
        nick = prefix[1:].split("!", 1)[0]
    head, sep, trailing = rest.partition(" :")
    words = head.split()
    if not words:
        return None
    params = tuple(words[1:]) + ((trailing,) if sep else ())
    return IrcMessage(words[0].upper(), params, tags, nick)


def _refused(msg: IrcMessage) -> bool:
    """Whether the server refused the nick, the token or the channel."""
    if msg.command in LOGIN_ERRORS:
        return True
    last = msg.params[-1].lower() if msg.params else ""
    return msg.command == "NOTICE" and "authentication failed" in last


class TwitchChat:
    """The Twitch connector (module doc)."""

    name = "twitch"

    def __init__(self, cfg: TwitchChatConfig, *, backoff: Backoff | None = None) -> None:
        parse_url(cfg.url, IRC_SCHEMES)  # a bad address fails `serve` at start (exit 2)
        self.cfg = cfg
        self.channel = "#" + cfg.channel.lstrip("#").lower()
        self.backoff = backoff or Backoff()
        self.sessions = 0  # sessions that joined the channel (for tests and stats)
        self.joined = asyncio.Event()

    async def run(self, emit: Emit) -> None:
        """Read the channel until cancelled, reconnecting with backoff."""
        while True:
            started = time.monotonic()
            joined = False
            try:
                conn = await open_lines(self.cfg.url)
            except (TimeoutError, OSError) as exc:
                log.warning("twitch: cannot connect to %s (%s)", self.cfg.url, exc)
            else:
                try:
                    await self._session(conn, emit)
                except (TimeoutError, OSError) as exc:
                    log.warning("twitch: connection lost (%s)", exc)
                finally:
                    joined = self.joined.is_set()
                    self.joined.clear()
                    await conn.close()
            wait = self.backoff.next_wait(time.monotonic() - started, joined=joined)
            log.info("twitch: reconnecting in %.1f s", wait)
            await asyncio.sleep(wait)

    async def _session(self, conn: LineConn, emit: Emit) -> None:
        await conn.send("CAP REQ :twitch.tv/tags twitch.tv/commands")
        await conn.send("CAP END")
        if self.cfg.token:
            token = self.cfg.token
            await conn.send("PASS " + (token if token.startswith("oauth:") else
                                       "oauth:" + token))
        await conn.send(f"NICK {self.cfg.nick}")
        await conn.send(f"USER {self.cfg.nick} 0 * :livetwin")
        await conn.send(f"JOIN {self.channel}")
        while (line := await conn.readline()) is not None:
            msg = parse_line(line)
            if msg is None:
                continue
            if msg.command == "PING":
                await conn.send("PONG :" + (msg.params[-1] if msg.params else "tmi"))
            elif _refused(msg):
                log.warning("twitch: the server refused the login: %s", " ".join(msg.params))
                return
            elif msg.command == "RECONNECT":
                log.info("twitch: the server asked to reconnect")
                return
            elif msg.command == "JOIN" and msg.nick.lower() == self.cfg.nick.lower():
                self.sessions += 1
                self.joined.set()
                log.info("twitch: joined %s", self.channel)
            else:
                self._event(msg, emit)

    def _event(self, msg: IrcMessage, emit: Emit) -> None:
        if not msg.params or msg.params[0].lower() != self.channel:
            return
        user = msg.tags.get("display-name") or msg.nick or msg.tags.get("login", "")
        text = msg.params[1] if len(msg.params) > 1 else ""
        if text.startswith("\x01ACTION ") and text.endswith("\x01"):
            text = text[8:-1]  # "/me" messages
        if msg.command == "PRIVMSG" and text:
            if msg.tags.get("bits"):
                emit(self.name, user, text, ChatKind.GIFT)
            emit(self.name, user, text, ChatKind.COMMENT)
        elif msg.command == "USERNOTICE" and msg.tags.get("msg-id") in GIFT_NOTICES:
            emit(self.name, user, text, ChatKind.GIFT)
