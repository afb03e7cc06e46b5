"""The Twitch connector against a real IRC server (ngircd, a Debian package run here on a
free port): it joins the channel, receives what a second, raw IRC client says there, and
after the server is stopped and started again it reconnects, joins again and receives
again."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from livetwin.chat.connect import Backoff
from livetwin.chat.twitch import TwitchChat
from livetwin.config import TwitchChatConfig
from livetwin.events import ChatKind

pytestmark = pytest.mark.slow
CHANNEL = "shop"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class IrcServer:
    """ngircd in the foreground on 127.0.0.1:`port` (restartable)."""

    def __init__(self, tmp: Path, port: int) -> None:
        self.port = port
        self.conf = tmp / "ngircd.conf"
        run_as = "ServerUID = 65534\nServerGID = 65534\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            "[Global]\nName = irc.test.local\nInfo = livetwin test\nListen = 127.0.0.1\n"
            f"Ports = {port}\nPidFile = {tmp / 'ngircd.pid'}\nMotdPhrase = test\n{run_as}"
            "[Limits]\nPingTimeout = 120\nPongTimeout = 20\nMaxNickLength = 30\n"
            "[Options]\nPAM = no\nIdent = no\nDNS = no\n", encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("ngircd") or "/usr/sbin/ngircd"
        if not Path(binary).exists():
            pytest.fail("ngircd is not installed; `make setup` installs it (SYS_PKGS)")
        self.proc = subprocess.Popen([binary, "-n", "-f", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail("ngircd did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def irc(tmp_path: Path) -> Iterator[IrcServer]:
    server = IrcServer(tmp_path, _free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _say(port: int, nick: str, text: str) -> None:
    """A raw IRC client: register, join, say `text`, quit."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"NICK {nick}\r\nUSER {nick} 0 * :viewer\r\nJOIN #{CHANNEL}\r\n".encode())
    await writer.drain()
    while b" 366 " not in (line := await asyncio.wait_for(reader.readline(), 5)):
        assert line, "the server closed the raw client"
    writer.write(f"PRIVMSG #{CHANNEL} :{text}\r\nQUIT :bye\r\n".encode())
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()


async def _until(cond, within_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_twitch_connector_joins_receives_and_reconnects(irc: IrcServer) -> None:
    asyncio.run(_scenario(irc))


async def _scenario(irc: IrcServer) -> None:
    got: list[tuple[str, str, str, ChatKind]] = []
    chat = TwitchChat(TwitchChatConfig(channel=CHANNEL, nick="livetwinbot",
                                       url=f"irc://127.0.0.1:{irc.port}"),
                      backoff=Backoff(first_s=0.1, max_s=0.5))
    task = asyncio.create_task(chat.run(lambda *e: got.append(e)))
    try:
        await _until(lambda: chat.sessions == 1, 10)
        await _say(irc.port, "viewer1", "how much is the lip tint?")
        await _until(lambda: len(got) == 1, 5)
        assert got[0] == ("twitch", "viewer1", "how much is the lip tint?", ChatKind.COMMENT)

        irc.stop()  # the server goes away ...
        await asyncio.sleep(0.5)
        irc.start()  # ... and comes back on the same port
        await _until(lambda: chat.sessions == 2, 15)
        await _say(irc.port, "viewer2", "你好")
        await _until(lambda: len(got) == 2, 5)
        assert got[1] == ("twitch", "viewer2", "你好", ChatKind.COMMENT)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_the_chat_chosen_in_obs_is_joined_and_left(irc: IrcServer) -> None:
    """The OBS script's chat_target reaches ChatService.set_target: the daemon joins
    that channel on the configured server, and leaves it when the target is none."""
    from livetwin.chat.pipeline import ChatPipeline
    from livetwin.chat.registry import ChatService
    from livetwin.config import ChatConfig

    got: list[tuple[str, str, str, ChatKind]] = []
    cfg = ChatConfig(twitch=TwitchChatConfig(nick="livetwinbot",
                                             url=f"irc://127.0.0.1:{irc.port}"))
    service = ChatService(ChatPipeline([], lambda *a, **k: "1"), (), cfg)
    service.start(lambda *e: got.append(e))
    try:
        service.set_target("twitch", f"#{CHANNEL}")
        assert service.target == ("twitch", f"#{CHANNEL}")
        deadline = time.monotonic() + 15
        while not got:  # the connector needs a moment to register and join
            assert time.monotonic() < deadline, "the chosen channel was never joined"
            asyncio.run(_say(irc.port, "viewer1", "hello twin"))
            time.sleep(0.3)
        assert got[0][:3] == ("twitch", "viewer1", "hello twin")
        service.set_target("none", "")
        time.sleep(1.0)
        n = len(got)
        asyncio.run(_say(irc.port, "viewer2", "still there?"))
        time.sleep(1.0)
        assert len(got) == n, "the connector kept reading after the target was cleared"
    finally:
        service.close(2.0)
