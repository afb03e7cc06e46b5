"""The Twitch connector's protocol against a scripted local server: IRCv3 tags
(display-name, escapes, bits), PING/PONG, /me, sub notices as gifts, other channels
ignored, RECONNECT ends the session and the connector comes back; and the Backoff."""

from __future__ import annotations

import asyncio
import contextlib
import random

from livetwin.chat.connect import Backoff
from livetwin.chat.twitch import TwitchChat, parse_line
from livetwin.config import TwitchChatConfig
from livetwin.events import ChatKind


def test_parse_tagged_privmsg() -> None:
    msg = parse_line("@badge-info=;display-name=Mia\\sB;bits=100 :mia!mia@mia.tmi.twitch.tv "
                     "PRIVMSG #shop :how much? :)")
    assert msg is not None
    assert msg.command == "PRIVMSG" and msg.nick == "mia"
    assert msg.tags["display-name"] == "Mia B" and msg.tags["bits"] == "100"
    assert msg.params == ("#shop", "how much? :)")
    assert parse_line("PING :tmi.twitch.tv") == parse_line("ping :tmi.twitch.tv")
    assert parse_line("") is None


def test_backoff_doubles_and_resets() -> None:
    b = Backoff(first_s=1, max_s=8, healthy_s=10, rng=random.Random(0))
    waits = [b.next_wait(0.1) for _ in range(6)]
    assert [round(w / 1) for w in waits][:2] in ([1, 2], [1, 2])
    assert 6.4 <= waits[-1] <= 9.6  # capped at max_s (+-20 % jitter)
    assert 0.8 <= b.next_wait(60) <= 1.2  # a healthy session resets it


SCRIPT = [
    "PING :tmi.twitch.tv",
    "@display-name=Mia :mia!mia@mia PRIVMSG #shop :how much is it?",
    ":bo!bo@bo PRIVMSG #othershop :not ours",
    ":bo!bo@bo PRIVMSG #shop :\x01ACTION waves\x01",
    "@msg-id=subgift;display-name=Kai :tmi.twitch.tv USERNOTICE #shop :Kai gifted a sub",
    "@display-name=Cheer;bits=50 :cheer!c@c PRIVMSG #shop :cheer50 great",
    ":tmi.twitch.tv RECONNECT",
]


async def _scenario() -> tuple[list[tuple[object, ...]], list[str], int]:
    received: list[str] = []
    writers: list[asyncio.StreamWriter] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writers.append(writer)
        while not (line := (await reader.readline()).decode()).startswith("JOIN"):
            received.append(line.strip())
        received.append(line.strip())
        writer.write(b":bot!bot@bot JOIN #shop\r\n")
        if connections == 1:
            for out in SCRIPT:
                writer.write((out + "\r\n").encode())
                await writer.drain()
                if out.startswith("PING"):
                    received.append((await reader.readline()).decode().strip())
        await writer.drain()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(5)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    got: list[tuple[object, ...]] = []
    chat = TwitchChat(TwitchChatConfig(channel="Shop", nick="bot", token="abc",
                                       url=f"irc://127.0.0.1:{port}"),
                      backoff=Backoff(first_s=0.05, max_s=0.1))
    task = asyncio.create_task(chat.run(lambda *e: got.append(e)))
    for _ in range(200):
        if chat.sessions >= 2:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    for w in writers:
        w.close()
    server.close()
    await server.wait_closed()
    return got, received, chat.sessions


def test_session_against_a_scripted_server() -> None:
    got, received, sessions = asyncio.run(_scenario())
    assert received[:6] == ["CAP REQ :twitch.tv/tags twitch.tv/commands", "CAP END",
                            "PASS oauth:abc", "NICK bot", "USER bot 0 * :livetwin",
                            "JOIN #shop"]
    assert "PONG :tmi.twitch.tv" in received
    assert got == [("twitch", "Mia", "how much is it?", ChatKind.COMMENT),
                   ("twitch", "bo", "waves", ChatKind.COMMENT),
                   ("twitch", "Kai", "Kai gifted a sub", ChatKind.GIFT),
                   ("twitch", "Cheer", "cheer50 great", ChatKind.GIFT),
                   ("twitch", "Cheer", "cheer50 great", ChatKind.COMMENT)]
    assert sessions == 2  # RECONNECT: a new session joined


def test_backoff_resets_after_a_joined_session_while_that_stays_rare() -> None:
    now = [0.0]
    b = Backoff(first_s=1, max_s=30, healthy_s=10, joined_resets=3,
                rng=random.Random(0), clock=lambda: now[0])
    waits = [b.next_wait(0.1) for _ in range(4)]  # failed tries: 1, 2, 4, 8 s
    assert 6.4 <= waits[-1] <= 9.6
    for _ in range(3):  # in the channel, then dropped: back at once, three times
        now[0] += 5
        assert 0.8 <= b.next_wait(3.0, joined=True) <= 1.2
    now[0] += 5
    assert 1.6 <= b.next_wait(3.0, joined=True) <= 2.4  # a fourth within a minute: doubling
    now[0] += 60
    assert 0.8 <= b.next_wait(3.0, joined=True) <= 1.2  # a minute later it resets again
