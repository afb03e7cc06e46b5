"""The one place an LLM backend is chosen by name (config `llm.backend`)."""

from __future__ import annotations

from collections.abc import Callable

from livetwin.config import LLMConfig
from livetwin.errors import ConfigError
from livetwin.llm.base import LLMBackend


def _openai(cfg: LLMConfig) -> LLMBackend:
    from livetwin.llm.openai_compat import OpenAICompatLLM

    return OpenAICompatLLM(cfg)


BACKENDS: dict[str, Callable[[LLMConfig], LLMBackend] | None] = {
    "none": None,  # templates only
    "openai": _openai,
}


def from_config(cfg: LLMConfig) -> LLMBackend | None:
    """The configured backend; None for "none" (templates only)."""
    if cfg.backend not in BACKENDS:
        raise ConfigError(f"llm.backend '{cfg.backend}' is unknown; use "
                          f"{' or '.join(BACKENDS)}.")
    make = BACKENDS[cfg.backend]
    return make(cfg) if make else None


def prober(cfg: LLMConfig) -> Callable[[], str] | None:
    """A cheap liveness probe of the configured LLM server (returns a note, raises
    BackendError when it is down); None with "none" (templates only)."""
    if cfg.backend == "none" or cfg.backend not in BACKENDS:
        return None
    from livetwin.llm.openai_compat import OpenAICompatLLM

    client = OpenAICompatLLM(cfg)
    return client.ping
