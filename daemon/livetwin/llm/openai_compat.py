"""`OpenAICompatLLM`: any server speaking OpenAI's `POST /v1/chat/completions` (Ollama,
vLLM, llama.cpp's server, hosted APIs). httpx with one overall timeout per request;
errors and timeouts become BackendError/BackendTimeout here and nowhere else."""

from __future__ import annotations

from typing import Any

import httpx

from livetwin.config import LLMConfig
from livetwin.errors import BackendError, BackendTimeout


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

    def close(self) -> None:
        self._client.close()
