"""The chat safety gate: every incoming message is classified, and every line is checked
again before it is spoken.

Inbound (`classify`): one `Verdict` per message, with the category and the reason logged
by the pipeline. The order matters and is the policy: too long / spam and abuse are
ignored; personal data gets a warning that never repeats it; an identity question ("are
you a bot?") is always answered that the host is an AI; injection and role-play, political
and competitor bait, and health/medical claims are deflected with a neutral fixed line;
greetings are greeted by cleaned name; everything else is a question for the answer
database. The lexicons live in lexicon.yaml (en/zh/de); structure (phone and card numbers,
e-mail, addresses, repetition) is matched here.

Outbound (`check_line`): the host only ever says catalog answers and the fixed lines of
general.yaml, so this is the second wall, not the first. A line is refused when it has
personal data or abuse, a number that the catalog does not contain, a claim word (free,
percent, cure, FDA, warranty, ...) the catalog does not use, or a run of words copied from
chat that is not in the catalog or the fixed lines.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources

import yaml

from livetwin.chat.text import contains_phrase, fold, has_han, tokens
from livetwin.events import Product

MAX_MESSAGE_CHARS = 400  # longer chat is spam on a livestream (and never read)
ECHO_WORDS = 4  # this many words in a row copied from chat is an echo
ECHO_HAN = 5  # ... or this many Chinese characters


class Category(StrEnum):
    """What a chat message is, as far as the gate can tell."""

    SPAM = "spam"
    ABUSE = "abuse"
    PII = "pii"
    IDENTITY = "identity"
    INJECTION = "injection"
    POLITICS = "politics"
    COMPETITOR = "competitor"
    MEDICAL = "medical"
    GREETING = "greeting"
    QUESTION = "question"
    EMPTY = "empty"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The gate's decision on one message: its category and why."""

    category: Category
    reason: str
    purchase: bool = False


@dataclass(frozen=True, slots=True)
class LineCheck:
    """The outbound decision on one line: ok, or the reason it must not be spoken."""

    ok: bool
    reason: str = ""


@functools.lru_cache(maxsize=1)
def lexicon() -> dict[str, re.Pattern[str]]:
    """lexicon.yaml: category -> one regex over the folded phrases of every language."""
    text = resources.files("livetwin.chat").joinpath("lexicon.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return {cat: phrase_regex(w for words in langs.values() for w in words)
            for cat, langs in data.items()}


def phrase_regex(words: Iterable[object]) -> re.Pattern[str]:
    """One regex matching any of `words` by `contains_phrase`'s rules, on folded text."""
    alts = []
    for w in words:
        star, lead = str(w).endswith("*"), str(w).startswith("*")
        f = fold(str(w).strip("*"))
        if not f:
            continue
        if has_han(f):
            alts.append(re.escape(f))
        else:
            tail = f"{_WORDCH}*" if star else f"(?!{_WORDCH})"
            head = f"{_WORDCH}*" if lead else f"(?<!{_WORDCH})"
            alts.append(f"{head}{re.escape(f)}{tail}")
    alts.sort(key=len, reverse=True)
    return re.compile("|".join(alts) or "(?!)")


_WORDCH = "[a-z0-9\u00c0-\u024f]"


def hits(folded: str, category: str) -> list[str]:
    """The pieces of folded text that lexicon `category` matches."""
    return lexicon()[category].findall(folded)


# ------------------------------------------------------------------ structure

_DIGITS_RUN = re.compile(r"(?:\+?\d[\d\s().-]{5,}\d)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
_ADDRESS = re.compile(
    r"\b\d{1,5}\s+\w+(\s\w+)?\s+(street|st|road|rd|avenue|ave|lane|ln|drive|dr|blvd|way)\b"
    r"|\b\w+(straße|strasse|str|weg|gasse|allee|platz)\.?\s*\d{1,4}\b"
    r"|[路街道巷弄]\s*\d+\s*号|\d+\s*(号楼|单元|室)|住在|我家在|我的地址|地址是"
    r"|my address|i live at|meine adresse|ich wohne in",
    re.IGNORECASE,
)
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s", "!": "i", "*": "", "+": "t"})


def has_pii(text: str) -> str | None:
    """What personal data `text` seems to carry ('phone or card number', 'e-mail',
    'address'), or None."""
    for m in _DIGITS_RUN.finditer(text):
        if sum(ch.isdigit() for ch in m.group()) >= 7:
            return "phone or card number"
    if _EMAIL.search(text):
        return "e-mail"
    if _ADDRESS.search(text):
        return "address"
    return None


# A message that opens with an order to say something is an attempt to put words in the
# host's mouth, whatever follows.
_COMMAND = re.compile(
    r"^(?:pls |please |plz |bitte |hey |yo )?(?:say|tell(?! (?:me|us)\b)|announce|repeat|"
    r"shout|yell|scream|sing|declare|promise|sage?(?! (?:mir|uns)\b)|sprich|wiederhol\w*|"
    r"verkünd\w*|versprich)\b"
    r"|^(?:请|快|你|主播)?(?:说(?!说|一下)|念|喊|宣布|告诉(?!我)|承诺|保证)")


def _spammy(folded: str) -> str | None:
    words = folded.split()
    if len(words) >= 8 and len(set(words)) * 4 <= len(words):
        return f"{len(words)} words but only {len(set(words))} different"
    if re.search(r"(.{1,8}?)\1{7,}", folded.replace(" ", "")):
        return "a short piece repeated many times"
    return None


def _deleet(folded: str) -> str:
    """'f*ck', 'sh1t', 'f u c k' -> plain letters, for the abuse lexicon only."""
    text = folded.translate(_LEET)
    return re.sub(r"\b(\w) (?=\w\b)", r"\1", text)


def _is_greeting(folded: str) -> bool:
    words = folded.split()
    if not words or (len(words) > 5 and not has_han(folded)):
        return False
    if has_han(folded) and len(folded.replace(" ", "")) > 10:
        return False
    found = hits(folded, "greeting")
    if not found:
        return False
    rest = folded
    for p in sorted(found, key=len, reverse=True):
        rest = rest.replace(p.rstrip("*"), " ")
    leftover = [w for w in rest.split() if w not in {"all", "guys", "everyone", "there",
                                                      "zusammen", "leute", "alle"}]
    return sum(len(w) for w in leftover) <= 6


# ------------------------------------------------------------------ inbound


def classify(text: str) -> Verdict:
    """The gate's decision on chat message `text` (module doc)."""
    if len(text) > MAX_MESSAGE_CHARS:
        return Verdict(Category.SPAM, f"longer than {MAX_MESSAGE_CHARS} characters")
    folded = fold(text)
    if not folded:
        return Verdict(Category.EMPTY, "nothing left once markup and symbols are removed")
    pii = has_pii(text)  # before spam: a card number looks like a repeated piece
    spam = None if pii else _spammy(folded)
    if spam:
        return Verdict(Category.SPAM, spam)
    abuse = hits(folded, "abuse") or hits(_deleet(folded), "abuse")
    if abuse:
        return Verdict(Category.ABUSE, f"abusive word {abuse[0].rstrip('*')!r}")
    if pii:
        return Verdict(Category.PII, f"personal data ({pii})")
    purchase = bool(hits(folded, "purchase"))
    identity = hits(folded, "identity")
    if identity:
        return Verdict(Category.IDENTITY, f"asks whether the host is real ({identity[0]!r})")
    if _COMMAND.search(folded):
        return Verdict(Category.INJECTION, "tells the host what to say", purchase)
    for cat in (Category.INJECTION, Category.POLITICS, Category.COMPETITOR, Category.MEDICAL):
        found = hits(folded, str(cat))
        if found:
            return Verdict(cat, f"{cat} phrase {found[0].rstrip('*')!r}", purchase)
    if _is_greeting(folded):
        return Verdict(Category.GREETING, "a greeting")
    return Verdict(Category.QUESTION, "a question or comment for the answer database", purchase)


_QUESTION = re.compile(
    r"[?\uff1f]|\b(how|what|which|when|where|why|who|is|are|do|does|can|could|will|would|any|"
    r"wie|was|welche[rsnm]?|wann|wo|woher|warum|wer|ist|sind|gibt|kann|hat|habt|haben)\b"
    r"|吗|嘛|什么|多少|怎么|怎样|几|哪|是否|有没有|能不能|可以|可不可以|呢",
    re.IGNORECASE)


def looks_like_question(text: str) -> bool:
    """Whether chat `text` reads as a question (worth the operator's time when the
    answer database has no answer) rather than a remark."""
    return _QUESTION.search(text) is not None


def name_is_blocked(folded_name: str) -> bool:
    """Whether a (folded) user name hits a lexicon that must never be read aloud."""
    if hits(folded_name, "abuse") or hits(_deleet(folded_name), "abuse"):
        return True
    return any(hits(folded_name, cat) for cat in ("injection", "politics", "competitor",
                                                  "medical"))


# ------------------------------------------------------------------ outbound

# Words that make a claim; a line may use one only where the catalog itself does.
CLAIM_WORDS = (
    "free", "gratis", "kostenlos", "umsonst", "%", "percent", "per cent", "prozent", "off",
    "discount*", "rabatt*", "sale", "guarantee*", "garantie*", "warrant*", "certified",
    "approved", "zertifiziert*", "zugelassen", "fda", "cure*", "heal*", "treat*", "heilt",
    "clinical*", "klinisch*", "doctor*", "arzt", "organic", "bio", "best", "beste*", "cheapest",
    "billigste*", "only today", "nur heute", "last chance", "limited", "fake", "yes",
    "免费", "包邮", "折", "优惠", "打折", "保证", "保修", "质保", "认证", "治疗", "治愈",
    "疗效", "最便宜", "最好", "限时", "假", "医生",
)


@dataclass(frozen=True)
class Grounding:
    """What may be said: numbers and claim words found in the catalog and fixed lines."""

    numbers: frozenset[str]
    text: str  # folded catalog + fixed lines, for claim words and echo checks

    @classmethod
    def build(cls, products: Sequence[Product], fixed_lines: Iterable[str] = ()) -> Grounding:
        parts: list[str] = list(fixed_lines)
        nums: set[str] = set()
        for p in products:
            parts.extend([p.name, p.currency, *p.facts])
            parts.extend(a for _, a in p.faq)
            for v in (p.price, p.list_price, p.stock):
                if v is not None:
                    nums.add(_num(str(v)))
        text = " \n ".join(parts)
        nums.update(_num(n) for n in _NUMBER.findall(text))
        return cls(frozenset(nums), fold(text))


_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def _num(s: str) -> str:
    s = s.replace(",", ".")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s.lstrip("0") or "0"


def check_line(text: str, grounding: Grounding, *, chat: Sequence[str] = ()) -> LineCheck:
    """Whether `text` may be spoken (module doc); `chat` are recent chat messages."""
    pii = has_pii(text)
    if pii:
        return LineCheck(False, f"has personal data ({pii})")
    folded = fold(text)
    bad = hits(folded, "abuse") or hits(_deleet(folded), "abuse")
    if bad:
        return LineCheck(False, f"abusive word {bad[0]!r}")
    for n in _NUMBER.findall(text):
        if _num(n) not in grounding.numbers:
            return LineCheck(False, f"number {n} is not in the catalog")
    for w in CLAIM_WORDS:
        f = fold(w.rstrip("*")) + ("*" if w.endswith("*") else "") if w != "%" else "%"
        if f == "%":
            if "%" in folded and "%" not in grounding.text:
                return LineCheck(False, "a percentage the catalog does not give")
            continue
        if contains_phrase(folded, f) and not contains_phrase(grounding.text, f):
            return LineCheck(False, f"claim word {w.rstrip('*')!r} is not in the catalog")
    echo = _echo(folded, grounding.text, chat)
    if echo:
        return LineCheck(False, f"repeats chat text {echo!r}")
    return LineCheck(True)


def _echo(folded_line: str, allowed: str, chat: Sequence[str]) -> str | None:
    for message in chat:
        f = fold(message)
        words = f.split()
        for i in range(len(words) - ECHO_WORDS + 1):
            piece = " ".join(words[i:i + ECHO_WORDS])
            if contains_phrase(folded_line, piece) and not contains_phrase(allowed, piece):
                return piece
        han = "".join(t for t in tokens(f) if len(t) == 1 and has_han(t))
        for i in range(len(han) - ECHO_HAN + 1):
            piece = han[i:i + ECHO_HAN]
            if piece in folded_line.replace(" ", "") and piece not in allowed.replace(" ", ""):
                return piece
    return None
