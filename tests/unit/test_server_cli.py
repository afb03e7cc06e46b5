"""`livetwin serve` refuses bad input with one line and exit 2, before loading anything."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from livetwin.cli import main


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVETWIN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIVETWIN_TOKEN", raising=False)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    text = capsys.readouterr().err.strip()
    assert text.startswith("error:") and "\n" not in text, text
    return text


def test_serve_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    for option in ("--avatar", "--catalog", "--host", "--port", "--config"):
        assert option in text


def test_bad_catalog(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "catalog.yaml"
    bad.write_text("products:\n  - id: a\n    name: A\n    price: free\n    currency: EUR\n")
    assert main(["serve", "--catalog", str(bad)]) == 2
    assert f"{bad}:4" in one_error_line(capsys)
    assert main(["serve", "--catalog", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read catalog" in one_error_line(capsys)


def test_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert "in use" in one_error_line(capsys)


def test_bad_port_and_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port" in one_error_line(capsys)
    cfg = tmp_path / "livetwin.yaml"
    cfg.write_text("server:\n  prot: 1\n")
    assert main(["serve", "--config", str(cfg)]) == 2
    assert "server.prot" in one_error_line(capsys)


def test_bad_avatar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--avatar", str(tmp_path / "nobody.twin"), "--port", "0"]) == 2
    one_error_line(capsys)
