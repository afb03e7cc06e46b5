"""The API's bearer token: `LIVETWIN_TOKEN` (environment) wins, then `server.token` from
the config, else a token generated on first run and kept in the livetwin home folder in
a file only its owner can read (mode 0600)."""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from livetwin.config import home_dir
from livetwin.errors import ConfigError

ENV = "LIVETWIN_TOKEN"
TOKEN_FILE = "api_token"
MIN_CHARS = 16


@dataclass(frozen=True)
class Token:
    """The token and where it came from ("env", "config" or "file")."""

    value: str
    source: str
    path: Path | None = None

    def matches(self, given: str | None) -> bool:
        """Constant-time comparison with a presented token."""
        return given is not None and hmac.compare_digest(given.encode(), self.value.encode())

    def describe(self) -> str:
        """Where the token is, for the operator (never the token itself)."""
        if self.source == "env":
            return f"API token: from the environment variable {ENV}"
        if self.source == "config":
            return "API token: server.token in the config file"
        return f"API token: in {self.path} (send it as 'Authorization: Bearer TOKEN')"


def token_path() -> Path:
    return home_dir() / TOKEN_FILE


def resolve_token(configured: str | None) -> Token:
    """The token to require (module doc); ConfigError if one is too short."""
    env = os.environ.get(ENV)
    if env is not None:
        if len(env.strip()) < MIN_CHARS:
            raise ConfigError(f"{ENV} is shorter than {MIN_CHARS} characters; use a long "
                              "random token (or unset it to have one generated).")
        return Token(env.strip(), "env")
    if configured:
        return Token(configured, "config")
    path = token_path()
    return Token(_read_or_create(path), "file", path)


def _read_or_create(path: Path) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        value = ""
    except OSError as exc:
        raise ConfigError(f"cannot read the API token file {path}: {exc.strerror}.") from None
    if len(value) >= MIN_CHARS:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)  # readable by others: tighten it, it guards the API
        return value
    value = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, (value + "\n").encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ConfigError(f"cannot write the API token file {path}: {exc.strerror}; set "
                          f"{ENV} or server.token instead.") from None
    return value


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
