"""The one place TTS backends are chosen by name (config `tts.backend`).

Entries are import paths, imported only when asked for, so naming a backend never loads
another's dependencies and importing this module has no side effects.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from livetwin.config import TTSConfig
from livetwin.errors import ConfigError, InternalError
from livetwin.speech.base import TTSBackend

BACKENDS: dict[str, str] = {
    "espeak": "livetwin.speech.espeak:EspeakTTS",
    "piper": "livetwin.speech.piper:PiperTTS",
    "http": "livetwin.speech.http_openai:OpenAISpeechTTS",
    "gpt-sovits": "livetwin.speech.gpt_sovits:GPTSoVITSTTS",
}


def backend_class(name: str) -> type[TTSBackend]:
    """The class registered as `name`; ConfigError listing the known names otherwise."""
    path = BACKENDS.get(name)
    if path is None:
        raise ConfigError(
            f"Unknown TTS backend {name!r}; choose one of {', '.join(sorted(BACKENDS))}."
        )
    module_name, _, class_name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise InternalError(f"TTS backend {name!r} ({path}) cannot be loaded: {exc}.") from None
    if not (isinstance(cls, type) and issubclass(cls, TTSBackend)):
        raise InternalError(f"{path} is not a TTSBackend.")
    return cls


def create(name: str, **settings: Any) -> TTSBackend:
    """A new backend by name, given only its own settings."""
    return backend_class(name)(**settings)


def _settings(name: str, cfg: TTSConfig, voice_ref: Path | None) -> dict[str, Any]:
    """The constructor arguments of backend `name`, from its own config slice only."""
    if name == "piper":
        if cfg.piper.model is None:
            raise ConfigError("tts backend 'piper' needs tts.piper.model: the path of a Piper "
                              "voice (.onnx with its .onnx.json beside it).")
        return {"model": cfg.piper.model, "speaker": cfg.piper.speaker}
    if name == "http":
        return cfg.http.model_dump()
    if name == "gpt-sovits":
        if voice_ref is None:
            raise ConfigError("tts backend 'gpt-sovits' clones the voice from the avatar's "
                              "voice_ref.wav; this avatar has none (its video had no speech).")
        return {"voice_ref": voice_ref, **cfg.gpt_sovits.model_dump()}
    return {}


def from_config(cfg: TTSConfig, *, voice_ref: Path | None = None) -> TTSBackend:
    """The configured backend with its fallbacks and the line cache around it."""
    from livetwin.speech.cache import CachedTTS, TTSCache
    from livetwin.speech.fallback import FallbackTTS

    names = list(dict.fromkeys([cfg.backend, *cfg.fallback]))
    chain = [create(n, **_settings(n, cfg, voice_ref)) for n in names]
    tts: TTSBackend = FallbackTTS(chain, timeout_s=cfg.timeout_s,
                                  cooldown_s=cfg.retry_after_s)
    if cfg.cache_mb:
        tts = CachedTTS(tts, TTSCache(max_bytes=cfg.cache_mb * 2**20))
    return tts
