"""Cleaning a chat user name before it may be read aloud in a greeting.

A user name is the only piece of chat that is ever spoken, so it gets the strictest
treatment: markup is removed (its text kept), then everything but letters, combining
marks, spaces, '_' and '-' is dropped (digits too: "mia2024" is read as "mia", and no
number can reach the outbound price check through a name). The result is refused
(None: the name is not read, and the greeting is skipped) when it is empty, longer than
`MAX_NAME_CHARS`, one character hammered, a link or handle, or hits the gate's abuse,
injection, politics or competitor lexicons.
"""

from __future__ import annotations

import re
import unicodedata

from livetwin.chat.text import fold, strip_invisible

MAX_NAME_CHARS = 20
_TAG = re.compile(r"<[^<>]*>")
_REPEAT = re.compile(r"(.)\1{4,}")
_LINK = re.compile(r"://|www\.|\w\.(com|net|org|io|cn|de|tv|me|gg|ly|co)\b|@\w", re.I)


def clean_name(raw: str) -> str | None:
    """A readable form of user name `raw`, or None when it must not be read (module doc)."""
    from livetwin.chat.gate import name_is_blocked

    text = strip_invisible(unicodedata.normalize("NFKC", raw))
    if _LINK.search(text):
        return None  # never read out an address
    text = _TAG.sub(" ", text)
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat[0] in "LM" or ch in " _-":
            kept.append(ch)
        else:
            kept.append(" ")
    name = " ".join("".join(kept).replace("_", " ").split()).strip(" .-")
    if not name or len(name) > MAX_NAME_CHARS or _REPEAT.search(name.casefold()):
        return None
    if not any(unicodedata.category(ch)[0] == "L" for ch in name):
        return None
    if name_is_blocked(fold(name)):
        return None
    return name
