"""`OpenAICompatLLM`: any server speaking OpenAI's `POST /v1/chat/completions` (Ollama,
vLLM, llama.cpp's server, hosted APIs). httpx with one overall timeout per request;
errors and timeouts become BackendError/BackendTimeout here and nowhere else."""

from __future__ import annotations

from typing import Any

import httpx

from livetwin.config import LLMConfig
from livetwin.errors import BackendError, BackendTimeout

PING_TIMEOUT_S = 3.0


class OpenAICompatLLM:
    """Chat completions from an OpenAI-compatible server (module doc)."""

    def __init__(self, cfg: LLMConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.cfg = cfg
        headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
        self._client = httpx.Client(base_url=cfg.base_url.rstrip("/") + "/",
                                    timeout=httpx.Timeout(cfg.timeout_s), headers=headers,
                                    transport=transport)

    def complete(self, system: str, user: str) -> str:
        body = {"model": self.cfg.model, "temperature": self.cfg.temperature, "stream": False,
                "messages": [{"role": "system", "content": system},
                             {"role": "user", "content": user}]}
        try:
            r = self._client.post("chat/completions", json=body)
        except httpx.TimeoutException:
            raise BackendTimeout(f"the LLM at {self.cfg.base_url} did not answer within "
                                 f"{self.cfg.timeout_s:g} s.") from None
        except httpx.HTTPError as exc:
            raise BackendError(f"the LLM at {self.cfg.base_url} cannot be reached: {exc}.",
                               retryable=True) from None
        if r.status_code != 200:
            raise BackendError(f"the LLM at {self.cfg.base_url} answered HTTP "
                               f"{r.status_code}: {r.text[:200]}",
                               retryable=r.status_code >= 500)
        try:
            data: Any = r.json()
            return str(data["choices"][0]["message"]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise BackendError(f"the LLM at {self.cfg.base_url} sent a reply that is not a "
                               "chat completion.") from None

    def ping(self, timeout_s: float = PING_TIMEOUT_S) -> str:
        """Whether the server answers (`GET models`, no tokens spent): a short note, or
        BackendError. For the watchdog; script drafts fall back to templates meanwhile."""
        try:
            r = self._client.get("models", timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise BackendError(f"the LLM at {self.cfg.base_url} cannot be reached: "
                               f"{type(exc).__name__}.", retryable=True) from None
        if r.status_code >= 500 or r.status_code in (401, 403):
            raise BackendError(f"the LLM at {self.cfg.base_url} answered HTTP "
                               f"{r.status_code}.", retryable=r.status_code >= 500)
        return f"{self.cfg.model} at {self.cfg.base_url} answers"

    def close(self) -> None:
        self._client.close()
