"""The LLM backend contract: one method, chat messages in, the reply text out. Failures
are BackendError (BackendTimeout when the server does not answer in time), translated
at the backend's boundary, so callers fall back to templates in one place."""

from __future__ import annotations

from typing import Protocol


class LLMBackend(Protocol):
    """A chat-completion LLM."""

    def complete(self, system: str, user: str) -> str:
        """The model's reply to the `system` + `user` messages."""
        ...
