"""The `chat:` section of livetwin.yaml and the one place connectors are chosen by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from livetwin.chat.registry import ChatService, connectors_from_config, open_chat
from livetwin.chat.twitch import TwitchChat
from livetwin.chat.youtube import YouTubeChat
from livetwin.config import load_config
from livetwin.errors import ConfigError, InputError


def test_chat_section(tmp_path: Path) -> None:
    path = tmp_path / "livetwin.yaml"
    path.write_text("chat:\n  threshold: 0.9\n  user_burst: 5\n  twitch:\n    channel: myshop\n"
                    "  youtube:\n    live_chat_id: abc\n    api_key: k\n", encoding="utf-8")
    cfg = load_config(path).chat
    assert cfg.threshold == 0.9 and cfg.twitch.url.startswith("ircs://")
    connectors = connectors_from_config(cfg)
    assert [type(c) for c in connectors] == [TwitchChat, YouTubeChat]
    assert connectors[0].channel == "#myshop"  # type: ignore[attr-defined]
    service = open_chat(cfg, [], lambda *a, **k: "1", lambda: None, lambda: 0)
    assert isinstance(service, ChatService)
    assert service.pipeline.settings.threshold == 0.9 and service.pipeline.settings.user_burst == 5


def test_no_connectors_by_default() -> None:
    assert connectors_from_config(load_config(None).chat) == []


def test_unknown_chat_setting_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "livetwin.yaml"
    path.write_text("chat:\n  treshold: 0.9\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"livetwin.yaml:2: unknown setting 'chat.treshold'"):
        load_config(path)


def test_bad_connector_address_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "livetwin.yaml"
    path.write_text("chat:\n  twitch:\n    channel: shop\n    url: http://x\n", encoding="utf-8")
    with pytest.raises(InputError, match="is not usable; use one of irc://host:port"):
        connectors_from_config(load_config(path).chat)
