"""`livetwin doctor` on real sockets: a port another program holds fails with what to do,
a livetwin daemon on the API port is information, OBS listening (or not) on the UDP port
is information; exit code 0 without failures, 1 with one; `--json` says the same."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from livetwin.cli import main
from livetwin.config import RenderConfig
from livetwin.doctor import (
    check_daemon_port,
    check_home,
    check_label_font,
    check_obs_port,
    check_obs_websocket,
)
from livetwin.events import Product
from livetwin.server.app import Daemon
from livetwin.server.auth import Token

from ..live_harness import ApiServer, make_live


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("LIVETWIN_HOME", str(path))
    monkeypatch.delenv("LIVETWIN_TOKEN", raising=False)
    return path


@pytest.fixture
def tcp_listener() -> Iterator[int]:
    """A port held by a program that is not livetwin (it accepts and says nothing)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield s.getsockname()[1]


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_free_daemon_port_is_ok() -> None:
    port = free_port(socket.SOCK_STREAM)
    c = check_daemon_port("127.0.0.1", port)
    assert c.status == "ok" and str(port) in c.detail and not c.fix


def test_daemon_port_held_by_another_program_fails_with_what_to_do(tcp_listener: int) -> None:
    c = check_daemon_port("127.0.0.1", tcp_listener)
    assert c.status == "fail" and not c.ok
    assert "another program" in c.detail and str(tcp_listener) in c.detail
    assert "--port" in c.fix and "server.port" in c.fix


def test_a_livetwin_daemon_on_the_port_is_information() -> None:
    products = [Product("tea", "Tea set", 99.0, "CNY")]
    live = make_live(products=products)
    try:
        daemon = Daemon(
            live,
            Token("t0ken-for-the-tests-0123456789", "config"),
            products,
            stream_url="udp://127.0.0.1:9999",
        )
        with ApiServer(daemon) as server:
            port = int(server.url.rsplit(":", 1)[1])
            c = check_daemon_port("127.0.0.1", port)
    finally:
        live.close()
    assert c.status == "info" and c.ok
    assert "livetwin daemon" in c.detail and "--port" in c.fix


def test_obs_port_listening_or_not_is_information() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as obs:  # OBS's Media Source
        obs.bind(("127.0.0.1", 0))
        port = obs.getsockname()[1]
        url = f"udp://127.0.0.1:{port}?pkt_size=1316"
        held = check_obs_port(url)
    assert held.status == "info" and "OBS is listening" in held.detail
    free = check_obs_port(url)  # closed now: nothing listens
    assert free.status == "info" and "nothing listens" in free.detail
    assert "obs_plugin/livetwin_obs.py" in free.fix
    off = check_obs_port("")
    assert off.status == "info" and "off" in off.detail


def test_obs_websocket_port(tcp_listener: int) -> None:
    assert "listens" in check_obs_websocket(tcp_listener).detail
    assert "nothing listens" in check_obs_websocket(free_port(socket.SOCK_STREAM)).detail


def test_label_font(tmp_path: Path) -> None:
    assert check_label_font(RenderConfig()).ok
    bad = check_label_font(RenderConfig(label_font=tmp_path / "missing.ttf"))
    assert bad.status == "fail" and "no such file" in bad.detail
    assert "render.label_font" in bad.fix
    off = check_label_font(RenderConfig(label_enabled=False))
    assert off.status == "info" and "OFF" in off.detail


def test_unwritable_home_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"  # a file where the home's parent folder should be:
    blocker.write_text("x")  # no one can create the home, root included
    c = check_home(blocker / "home")
    assert c.status == "fail" and "not writable" in c.detail and "LIVETWIN_HOME" in c.fix


def test_writable_home_is_ok(home: Path) -> None:
    c = check_home(home)
    assert c.status == "ok" and home.is_dir() and list(home.iterdir()) == []


def test_cli_exit_code_and_json(
    tmp_path: Path, tcp_listener: int, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(f"server: {{port: {free_port(socket.SOCK_STREAM)}}}\n")
    assert main(["doctor", "--config", str(good)]) == 0
    text = capsys.readouterr().out
    assert "no problems found" in text and "daemon port" in text

    busy = tmp_path / "busy.yaml"
    busy.write_text(f"server: {{port: {tcp_listener}}}\n")
    assert main(["doctor", "--json", "--config", str(busy)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    by_name = {c["name"]: c for c in report["checks"]}
    assert {
        "label font",
        "python",
        "packages",
        "codecs",
        "voice",
        "disk",
        "home",
        "daemon port",
        "OBS port",
    } <= set(by_name)
    assert by_name["daemon port"]["status"] == "fail"
    assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == ["daemon port"]
    assert all(c["fix"] for c in report["checks"] if c["status"] == "fail")
