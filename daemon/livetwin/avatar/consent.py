"""The consent record: cloning a person needs their own written agreement, kept in the
bundle with its hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from livetwin.errors import ConsentError

REQUIRED = ("subject", "statement", "date", "contact")
MIN_STATEMENT_WORDS = 5
EXAMPLE = (
    "subject: Jane Doe\n"
    "statement: I, Jane Doe, agree that livetwin clones my face and voice for my own "
    "livestream shop.\n"
    "date: 2026-11-24\n"
    "contact: jane@example.org\n"
)


@dataclass(frozen=True)
class Consent:
    """A validated consent record and the sha256 of the file it came from."""

    subject: str
    statement: str
    date: str
    contact: str
    sha256: str
    raw: bytes
    extra: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """The manifest's consent entry."""
        return {**self.extra, "subject": self.subject, "statement": self.statement,
                "date": self.date, "contact": self.contact, "sha256": self.sha256}


def load_consent(path: Path | None, today: dt.date | None = None) -> Consent:
    """Read and validate a consent file; raise ConsentError saying what to fix."""
    hint = "see `livetwin clone --help` for an example"
    if path is None:
        raise ConsentError(f"cloning needs --consent CONSENT.yaml, signed by the person; {hint}.")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConsentError(f"consent file {path} does not exist; {hint}.") from None
    except OSError as exc:
        raise ConsentError(f"cannot read consent file {path}: {exc.strerror}.") from None
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise ConsentError(f"consent file {path} is not valid YAML; {hint}.") from None
    if not isinstance(data, dict):
        raise ConsentError(f"consent file {path} must be a mapping with {', '.join(REQUIRED)}.")
    missing = [k for k in REQUIRED if not str(data.get(k) or "").strip()]
    if missing:
        raise ConsentError(f"consent file {path} lacks {', '.join(missing)}; {hint}.")
    statement = str(data["statement"]).strip()
    if _word_count(statement) < MIN_STATEMENT_WORDS:
        raise ConsentError(
            f"consent file {path}: the statement is too short; it must be the person's own "
            "words agreeing to be cloned for this use."
        )
    date = _date(data["date"], path, today or dt.date.today())
    extra = {k: v for k, v in data.items() if k not in REQUIRED}
    return Consent(str(data["subject"]).strip(), statement, date, str(data["contact"]).strip(),
                   hashlib.sha256(raw).hexdigest(), raw, extra)


def _word_count(text: str) -> int:
    """Words of a statement; scripts written without spaces (Chinese, Japanese) count each
    wide character as a word."""
    wide = sum(1 for ch in text if unicodedata.east_asian_width(ch) in ("W", "F"))
    return len(text.split()) + wide


def _date(value: object, path: Path, today: dt.date) -> str:
    try:
        day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ConsentError(
            f"consent file {path}: date '{value}' is not a date like 2026-11-24."
        ) from None
    if isinstance(day, dt.datetime):
        day = day.date()
    if day > today:
        raise ConsentError(f"consent file {path}: the date {day} lies in the future.")
    return day.isoformat()
