"""TTS backends come from config through the one registry, each with its own slice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from livetwin.config import Config, TTSConfig, load_config
from livetwin.errors import ConfigError
from livetwin.speech.cache import CachedTTS
from livetwin.speech.fallback import FallbackTTS
from livetwin.speech.registry import from_config


async def _all(tts, text: str):  # type: ignore[no-untyped-def]
    return [sentence async for sentence in tts.stream(text, lang="en")]


def test_default_config_speaks_with_espeak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.setenv("LIVETWIN_HOME", str(tmp_path))
    tts = from_config(Config().tts)
    assert isinstance(tts, CachedTTS) and isinstance(tts.backend, FallbackTTS)
    spoken = asyncio.run(_all(tts, "Hello there, welcome to the stream. Ask me anything."))
    assert len(spoken) == 2 and spoken[0].duration > 0.5 and spoken[0].words
    assert any((tmp_path / "cache" / "tts").rglob("*.npz"))  # the line is cached
    again = asyncio.run(_all(tts, "Hello there, welcome to the stream. Ask me anything."))
    assert tts.hits == 2 and len(again[0].pcm) == len(spoken[0].pcm)  # one per sentence


def test_cache_can_be_turned_off() -> None:
    assert isinstance(from_config(TTSConfig(cache_mb=0)), FallbackTTS)


def test_a_failed_voice_is_retried_after_the_configured_time() -> None:
    tts = from_config(TTSConfig(cache_mb=0, retry_after_s=4.0))
    assert isinstance(tts, FallbackTTS) and tts.cooldown_s == 4.0
    assert isinstance(from_config(TTSConfig(cache_mb=0)), FallbackTTS)
    assert TTSConfig().retry_after_s == 30.0


def test_yaml_slice_and_mistakes(tmp_path: Path) -> None:
    f = tmp_path / "livetwin.yaml"
    f.write_text("tts:\n  backend: piper\n  fallback: [espeak]\n")
    with pytest.raises(ConfigError, match=r"tts\.piper\.model"):
        from_config(load_config(f).tts)
    with pytest.raises(ConfigError, match=r"voice_ref\.wav"):
        from_config(TTSConfig(backend="gpt-sovits"))
    with pytest.raises(ConfigError, match="Unknown TTS backend 'nope'"):
        from_config(TTSConfig(backend="nope"))
    f.write_text("tts:\n  backnd: espeak\n")
    with pytest.raises(ConfigError, match=r"livetwin.yaml:2: unknown setting 'tts.backnd'"):
        load_config(f)
