"""The livetwin exception tree.

    LivetwinError                  base; `exit_code` is what the CLI returns
    ├── InputError                 the user gave something unusable (exit 2)
    │   ├── ConfigError            livetwin.yaml or a setting is wrong
    │   ├── ConsentError           the consent record is missing or invalid
    │   ├── MediaError             a video/audio/image file cannot be used
    │   └── BundleError            an avatar bundle is missing, incomplete or tampered
    ├── BackendError(retryable)    a TTS/LLM/chat/sink backend failed (exit 1)
    │   └── BackendTimeout         ... by not answering in time (retryable)
    └── InternalError              a bug or an unexpected state (exit 1)

Messages are one sentence saying what is wrong, then what to do.
"""

from __future__ import annotations


class LivetwinError(Exception):
    """Base of every error livetwin raises on purpose."""

    exit_code = 1


class InputError(LivetwinError):
    """The user's input cannot be used; the message says what to change."""

    exit_code = 2


class ConfigError(InputError):
    """A configuration file or setting is invalid."""


class ConsentError(InputError):
    """The consent record required for cloning is missing or invalid."""


class MediaError(InputError):
    """A media file is unreadable, or unsuitable for what was asked."""


class BundleError(InputError):
    """An avatar bundle is missing, incomplete or has been modified."""


class BackendError(LivetwinError):
    """A pluggable backend failed; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class BackendTimeout(BackendError):
    """A backend did not answer within its time limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class InternalError(LivetwinError):
    """Something that should not happen happened; please report it."""
