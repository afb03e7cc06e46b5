"""The answer database: what the host may say back to a question, and how sure it is.

Entries come from the catalog (each product's FAQ, its facts, and a price and stock line
built from its fields) and from general.yaml (questions with a grounded answer that need no
product). They are kept in SQLite with an FTS5 index (in memory by default, or a file):
the index holds each entry's folded trigger tokens (chat/text.py: casefold, NFKC width,
punctuation, traditional -> simplified, Chinese characters and bigrams) plus concept tags,
and narrows a question to candidates; the candidates are then scored here.

Scoring is built for precision, because a wrong answer is worse than none:
- concepts.yaml maps phrases in en/zh/de to what a question is about (price, shipping,
  colours, ...). An entry takes the concepts of its triggers and text; a catalog trigger
  that names no known concept becomes a concept of its own.
- A question that names a specific concept is only answered by an entry that covers it
  ("how much is shipping?" never gets the price). A question with only generic concepts
  (price, duration) is answered by an entry that matches them and is about nothing else.
- The product is the one the question names (catalog name words, or product_words.yaml
  words across languages), else the product on screen, else every product that has an
  answer: one gets its answer, up to `MAX_COMBINED` get one line each, more get a
  "which one do you mean?" line.
- Two different entries of one product tied for the top score: no answer. Below
  `threshold`: no answer. Unanswered questions go to the operator queue (pipeline.py).
"""

from __future__ import annotations

import functools
import re
import sqlite3
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from livetwin.chat.gate import phrase_regex
from livetwin.chat.text import contains_phrase, detect_lang, fold, has_han, tokens
from livetwin.events import Product

DEFAULT_THRESHOLD = 0.75
MAX_COMBINED = 3
FAQ_BONUS = 0.05  # the catalog's own FAQ beats a fact saying the same
NAME_STOP = frozenset("the and with for of a an ml l g kg cm mm pro new set pack mini max plus "
                      "edition der die das und mit für von".split())


@dataclass(frozen=True)
class Concept:
    name: str
    generic: bool
    regex: re.Pattern[str]


@functools.lru_cache(maxsize=1)
def _data(name: str) -> dict[str, Any]:
    text = resources.files("livetwin.chat").joinpath(name).read_text("utf-8")
    return dict(yaml.safe_load(text))


def _phrase(word: object) -> str:
    w = str(word)
    return fold(w.rstrip("*")) + ("*" if w.endswith("*") else "")


@functools.lru_cache(maxsize=1)
def concepts() -> tuple[Concept, ...]:
    """concepts.yaml, folded."""
    out = []
    for name, spec in _data("concepts.yaml")["concepts"].items():
        words = [w for lang in ("en", "zh", "de") for w in spec.get(lang, [])]
        out.append(Concept(name, bool(spec.get("generic", False)), phrase_regex(words)))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def product_word_groups() -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(_phrase(w) for w in group)
                 for group in _data("concepts.yaml")["product_words"])


@functools.lru_cache(maxsize=1)
def general() -> dict[str, Any]:
    """general.yaml: fixed lines, currency names and general entries."""
    return _data("general.yaml")


def fixed_line(key: str, lang: str, **slots: str) -> str:
    """A fixed line of general.yaml in `lang` (English when missing), slots filled."""
    lines = general()["lines"][key]
    return str(lines.get(lang, lines["en"])).format(**slots)


def currency_name(code: str, lang: str) -> str:
    names = general()["currencies"].get(code.upper())
    return str(names.get(lang, names["en"])) if names else code


def price_text(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def concepts_of(folded: str) -> tuple[frozenset[str], frozenset[str]]:
    """(specific, generic) concept names found in folded text."""
    spec: set[str] = set()
    gen: set[str] = set()
    for c in concepts():
        if c.regex.search(folded):
            (gen if c.generic else spec).add(c.name)
    return frozenset(spec), frozenset(gen)


@dataclass(frozen=True)
class Entry:
    """One answer: its text per language (a catalog answer has one), where it came from."""

    id: int
    product_id: str | None
    kind: str  # faq | fact | price | stock | general
    texts: dict[str, str]
    triggers: tuple[str, ...]
    specific: frozenset[str]
    generic: frozenset[str]

    def text(self, lang: str) -> tuple[str, str]:
        """(text, its language): the asker's language when the entry has it."""
        if lang in self.texts:
            return self.texts[lang], lang
        lang0, text = next(iter(self.texts.items()))
        return text, lang0


@dataclass(frozen=True)
class Answer:
    """What to say to a question: one or more (product, text, lang) parts, and why."""

    parts: tuple[tuple[str | None, str, str], ...]
    score: float
    reason: str
    entry_ids: tuple[int, ...] = ()

    @property
    def product_id(self) -> str | None:
        return self.parts[0][0] if len(self.parts) == 1 else None


@dataclass
class _Scored:
    entry: Entry
    score: float
    why: str = ""


@dataclass
class AnswerDB:
    """The answer database over `products` (module doc)."""

    products: Sequence[Product]
    threshold: float = DEFAULT_THRESHOLD
    path: Path | None = None
    entries: list[Entry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_id = {p.id: p for p in self.products}
        self._names = {p.id: self._name_words(p) for p in self.products}
        ours = {w for ws in self._names.values() for w in ws}
        # one regex per question-time test: a flood runs them for every message
        self._name_re = {pid: phrase_regex(_loose(w) for w in ws)
                         for pid, ws in self._names.items()}
        self._any_name_re = phrase_regex(_loose(w) for w in ours)
        self._other_re = phrase_regex(_loose(w) for group in product_word_groups()
                                      for w in group if w not in ours)
        self._db = sqlite3.connect(str(self.path) if self.path else ":memory:",
                                   check_same_thread=False)
        self._db.execute("DROP TABLE IF EXISTS entries")
        self._db.execute("CREATE VIRTUAL TABLE entries USING fts5(body, tokenize='unicode61')")
        for p in self.products:
            self._add_product(p)
        for spec in general().get("entries", []):
            triggers = tuple(_phrase(q) for q in spec["q"])
            self._add(None, "general", dict(spec["a"]), triggers, " ".join(triggers))
        self._db.commit()

    # ---------------------------------------------------------------- building

    def _add(self, product_id: str | None, kind: str, texts: dict[str, str],
             triggers: tuple[str, ...], about: str) -> None:
        spec, gen = concepts_of(about)
        own = {f"t:{t}" for t in triggers if not any(concepts_of(t))}
        entry = Entry(len(self.entries), product_id, kind, texts, triggers,
                      spec | own, gen)
        self.entries.append(entry)
        body = " ".join([*tokens(" ".join(t.rstrip("*") for t in triggers)),
                         *(f"c{c}" for c in (*spec, *gen)),
                         *(_tag(o) for o in own)])
        self._db.execute("INSERT INTO entries(rowid, body) VALUES (?, ?)", (entry.id, body))

    def _add_product(self, p: Product) -> None:
        fields = {"id": p.id, "name": p.name, "price": price_text(p.price),
                  "currency": p.currency, "stock": "" if p.stock is None else str(p.stock),
                  "list_price": "" if p.list_price is None else price_text(p.list_price)}
        has_price_faq = False
        for qs, a in p.faq:
            text = _render(a, fields)
            if text is None:
                continue
            triggers = tuple(_phrase(q) for q in qs)
            about = " ".join(triggers)
            texts = {detect_lang(text): text}
            spec, gen = concepts_of(about)
            if gen == {"price"} and not spec:
                has_price_faq = True
                texts = {**self._price_texts(p), **texts}
            self._add(p.id, "faq", texts, triggers, about + " " + fold(text))
        if not has_price_faq:
            self._add(p.id, "price", self._price_texts(p), (), "price")
        if p.stock is not None:
            texts = {lang: fixed_line("stock", lang, product=p.name, stock=str(p.stock))
                     for lang in ("en", "zh", "de")}
            self._add(p.id, "stock", texts, (), "in stock")
        for fact in p.facts:
            texts = {lang: fixed_line("fact", lang, product=p.name, fact=fact)
                     for lang in (detect_lang(fact),)}
            self._add(p.id, "fact", texts, (), fold(fact))

    def _price_texts(self, p: Product) -> dict[str, str]:
        out = {}
        for lang in ("en", "zh", "de"):
            slots = {"product": p.name, "price": price_text(p.price),
                     "currency": currency_name(p.currency, lang)}
            if p.list_price is not None and p.list_price > p.price:
                out[lang] = fixed_line("price_was", lang, list_price=price_text(p.list_price),
                                       **slots)
            else:
                out[lang] = fixed_line("price", lang, **slots)
        return out

    @staticmethod
    def _name_words(p: Product) -> tuple[str, ...]:
        words = [w for w in fold(f"{p.name} {p.id.replace('-', ' ')}").split()
                 if len(w) >= 3 and w not in NAME_STOP and not w.isdigit()]
        folded_name = fold(p.name)
        for group in product_word_groups():
            if any(contains_phrase(folded_name, g) for g in group):
                words.extend(group)
        return tuple(dict.fromkeys(words))

    # ---------------------------------------------------------------- asking

    def mentioned(self, folded: str) -> list[str]:
        """Ids of the products the folded question names."""
        return [pid for pid, regex in self._name_re.items() if regex.search(folded)]

    def other_product_words(self, folded: str) -> list[str]:
        """Product words (product_words in concepts.yaml) in the folded question that
        belong to no product of the catalog ("do you sell phone cases?")."""
        return list(self._other_re.findall(folded))

    def without_names(self, folded: str) -> str:
        """Folded text with every product's name words taken out."""
        return " ".join(self._any_name_re.sub(" ", folded).split())

    def candidates(self, folded: str, spec: frozenset[str], gen: frozenset[str]) -> set[int]:
        """Entry ids the FTS5 index finds for a question (any shared token or concept)."""
        terms = {*tokens(folded), *(f"c{c}" for c in (*spec, *gen))}
        if not terms:
            return set()
        query = " OR ".join('"' + t.replace('"', "") + '"' for t in terms)
        rows = self._db.execute("SELECT rowid FROM entries WHERE entries MATCH ?", (query,))
        return {int(r[0]) for r in rows}

    def score(self, entry: Entry, folded: str, spec: frozenset[str],
              gen: frozenset[str]) -> _Scored:
        """How well `entry` answers the folded question (module doc)."""
        trig = [t for t in entry.triggers if contains_phrase(folded, t)]
        q_spec = spec | {f"t:{t}" for t in trig if f"t:{t}" in entry.specific}
        bonus = FAQ_BONUS if entry.kind in ("faq", "general") else 0.0
        if entry.kind == "general":
            return _Scored(entry, (1.0 if trig else 0.0), f"trigger {trig[:1]}")
        if q_spec:
            shared = q_spec & entry.specific
            if not shared:
                return _Scored(entry, 0.0, "about something else")
            return _Scored(entry, 0.85 + 0.05 * len(shared) + (0.05 if trig else 0) + bonus,
                           f"concept {sorted(shared)}")
        if gen & entry.generic or trig:
            if entry.specific:
                return _Scored(entry, 0.5, "entry is about more than the question")
            return _Scored(entry, 0.85 + (0.05 if trig else 0) + bonus,
                           f"concept {sorted(gen & entry.generic)}")
        return _Scored(entry, 0.0, "no shared concept")

    def answer(self, question: str, *, current: str | None = None,
               lang: str | None = None) -> Answer | None:
        """The answer to chat `question`, or None when unsure (module doc). `current`:
        the id of the product on screen; `lang`: the asker's language."""
        folded = fold(question)
        lang = lang or detect_lang(question)
        named = self.mentioned(folded)
        about = self.without_names(folded)  # "保温杯" names the bottle; it asks nothing
        spec, gen = concepts_of(about)
        cand = self.candidates(about, spec, gen)
        scored = [self.score(self.entries[i], about, spec, gen) for i in sorted(cand)]
        scored = [s for s in scored if s.score >= self.threshold]
        if not scored:
            return None
        general_hits = [s for s in scored if s.entry.product_id is None]
        if not named and self.other_product_words(folded):
            return None  # it names a kind of product the catalog does not have
        if named:
            pids = named
        elif current in self._by_id and any(s.entry.product_id == current for s in scored):
            pids = [current] if current else []
        else:
            pids = list(dict.fromkeys(s.entry.product_id for s in scored
                                      if s.entry.product_id is not None))
        best: list[_Scored] = []
        for pid in pids:
            mine = sorted((s for s in scored if s.entry.product_id == pid),
                          key=lambda s: -s.score)
            if not mine:
                continue
            if len(mine) > 1 and mine[1].score == mine[0].score \
                    and mine[1].entry.texts != mine[0].entry.texts:
                continue  # two different answers equally likely: do not guess
            best.append(mine[0])
        if not best:
            if general_hits and not named:
                g = max(general_hits, key=lambda s: s.score)
                text, tlang = g.entry.text(lang)
                return Answer(((None, text, tlang),), g.score, f"general: {g.why}",
                              (g.entry.id,))
            return None
        if len(best) > MAX_COMBINED:
            names = ", ".join(self._by_id[str(s.entry.product_id)].name for s in best)
            return Answer(((None, fixed_line("clarify", lang, products=names), lang),),
                          min(s.score for s in best), "several products could be meant")
        parts = []
        for s in best:
            text, tlang = s.entry.text(lang)
            owner = s.entry.product_id
            if len(best) > 1 and owner is not None:
                name = self._by_id[owner].name
                if fold(name) not in fold(text):
                    text = f"{name}: {text}"
            parts.append((owner, text, tlang))
        why = "; ".join(f"{s.entry.product_id}/{s.entry.kind} {s.why}" for s in best)
        return Answer(tuple(parts), min(s.score for s in best), why,
                      tuple(s.entry.id for s in best))


def _loose(word: str) -> str:
    """A name word that also matches its plural ('tint' -> 'tint*')."""
    if word.endswith("*") or has_han(word) or len(word) < 4:
        return word
    return word + "*"


def _tag(own: str) -> str:
    return "t" + re.sub(r"[^0-9a-z\u4e00-\u9fff]", "", own.removeprefix("t:"))


def _render(template: str, fields: dict[str, str]) -> str | None:
    """The catalog answer with its fields filled; None when a field it uses is empty."""
    names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    if any(not fields.get(n) for n in names):
        return None
    return template.format(**fields)
