"""The speech-to-gesture planner: from an utterance's words (with timings), its intents
and the avatar's renderable gestures, the `GestureCue`s to play, each stroke landing on
the word that triggered it.

How a plan is made (all of it a few hundred microseconds for a sales sentence):

1. Triggers. Every library phrase of the utterance's language is looked up in the words:
   English and German by whole lower-cased tokens, Chinese as a substring of the joined
   characters. A match anchors its gesture on the match's first word. The intents of the
   matched gestures, with the utterance's own, are the utterance's intents.
2. Required gestures. Every mention of following (up) or of the cart/link (down), and a
   declared follow/cart intent without a trigger word, gets a gesture pointing that way:
   a recorded deictic clip if the avatar has one that fits the rules; otherwise the best
   renderable head/face gesture toward it (a glance up) together with the on-screen
   arrow cue (library category "cue"). Mentions closer than MERGE_S share one gesture.
   Density does not apply to these.
3. Optional gestures. The other matches, highest library weight first, while the density
   budget lasts: density * speech seconds / OPTIONAL_EVERY_S of them, rounded up.
4. Rules, for every placement: the avatar can render it; none of the utterance's intents
   is in its `not_with_intents` (no clap with follow/cart); nothing in the plan excludes
   it or is excluded by it; at most `max_per_utterance`; `min_gap_s` to the same
   gesture; no overlap (and CHANNEL_GAP_S) with a gesture on a shared body part, where
   both hands count as one part, so two hand gestures never overlap; a gesture that may
   not run while speaking goes into the first pause long enough after its word.

Timing: the stroke aims STROKE_AIM_S into the word (the stroke of a co-speech gesture
lands on or just before the stressed syllable); the gesture's nominal duration is tried,
then its minimum; a gesture that would start before the utterance is moved later (the
only stroke error a valid plan can have), except at the very start, where the
preparation shrinks (down to MIN_PREP_S) so the stroke still lands on the first words.
`check_plan` re-checks a finished plan against every rule independently; tests use it,
and it is cheap enough to assert at run time."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from livetwin.events import GestureCue, WordTiming
from livetwin.gesture.library import REQUIRED_INTENTS, Gesture, Library, default_library
from livetwin.gesture.timing import estimate_words

STROKE_AIM_S = 0.06
MIN_PREP_S = 0.12  # at the utterance start the preparation may shrink to this (not less)
# Leading words of a trigger phrase that are not where the stroke belongs ("hit follow",
# "add to cart", "the link"): the stroke goes on the first word after them.
LEAD_WORDS = frozenset({"the", "a", "an", "to", "hit", "click", "tap", "press", "add", "in",
                        "on", "at", "my", "your", "den", "die", "das", "der", "im",
                        "auf", "zum", "zur", "klickt", "tippt", "drückt"})
CHANNEL_GAP_S = 0.15  # between two gestures on one body part (a rest position between)
MERGE_S = 1.5  # repeated follow/cart mentions within this share one gesture
OPTIONAL_EVERY_S = 2.0  # density 1.0: one optional gesture per 2 s of speech
DEFAULT_DENSITY = 0.5
TAIL_S = 1.0  # a gesture may run on this far after the last word (the pause after it)
SILENCE_MARGIN_S = 0.05  # a silent gesture keeps this far from the words around it
_PUNCT = "\"'()[]{}«»„“”‘’.,;:!?…、，；：。！？-—–"  # noqa: RUF001 - CJK punctuation
_CLASS = {"follow": "follow", "cart": "cart", "link": "cart"}  # mentions that merge


@dataclass(frozen=True, slots=True)
class PlannedCue:
    """A cue with why it was chosen: `trigger` the phrase (or intent) it answers,
    `reason` "trigger" | "required" | "fallback" (a cue or stand-in for a missing clip),
    `word_index` the word its stroke aims at (-1: none)."""

    cue: GestureCue
    gesture: Gesture
    trigger: str
    reason: str
    word_index: int

    def as_json(self) -> dict[str, Any]:
        c = self.cue
        return {"gesture": c.gesture, "start": c.start, "stroke": c.stroke, "end": c.end,
                "word": c.word, "category": self.gesture.category,
                "direction": self.gesture.direction, "trigger": self.trigger,
                "reason": self.reason}


@dataclass(frozen=True)
class Plan:
    """The planner's answer for one utterance."""

    cues: tuple[PlannedCue, ...]
    words: tuple[WordTiming, ...]
    intents: frozenset[str]
    timings: str  # "given" | "estimated"
    lang: str

    @property
    def gesture_cues(self) -> tuple[GestureCue, ...]:
        return tuple(p.cue for p in self.cues)


@dataclass(frozen=True, slots=True)
class _Match:
    gesture: Gesture
    word: int
    last_word: int
    phrase: str
    label: str  # the cue's `word`: the stroke word (Chinese: the trigger from its key on)


@dataclass
class _Draft:
    placed: list[PlannedCue] = field(default_factory=list)


def _tokens(text: str) -> list[str]:
    return [t for t in (p.strip(_PUNCT) for p in text.lower().split()) if t]


class GesturePlanner:
    """Plans gesture cues for utterances (module doc). `available`: the gesture ids the
    avatar can render (recorded clips plus procedural ones); None: the whole library."""

    def __init__(self, library: Library | None = None, *,
                 available: Collection[str] | None = None, density: float = DEFAULT_DENSITY,
                 allow_cues: bool = True, tail_s: float = TAIL_S) -> None:
        if not 0.0 <= density <= 1.0:
            raise ValueError(f"density {density} is outside 0..1")
        self.library = library or default_library()
        self.available = (frozenset(g.id for g in self.library) if available is None
                          else frozenset(available) & {g.id for g in self.library})
        self.density = density
        self.allow_cues = allow_cues
        self.tail_s = tail_s
        # en/de: first token -> [(phrase tokens, phrase, gesture, key)];
        # zh: [(phrase, key, gesture)]; key: where in the phrase the stroke goes
        self._index: dict[str, dict[str, list[tuple[tuple[str, ...], str, Gesture, int]]]] = {}
        self._zh: list[tuple[str, int, Gesture]] = []
        for g in self.library:
            related = [q for o in self.library if set(o.intents) & set(g.intents)
                       for q in o.triggers.get("zh", ())] + list(g.triggers["zh"])
            for p in g.triggers["zh"]:
                self._zh.append((p, _zh_key(p, related), g))
            for lang in ("en", "de"):
                rel = [tuple(_tokens(q)) for o in self.library
                       if set(o.intents) & set(g.intents) for q in o.triggers.get(lang, ())]
                for p in g.triggers[lang]:
                    toks = tuple(_tokens(p))
                    if toks:
                        self._index.setdefault(lang, {}).setdefault(toks[0], []).append(
                            (toks, p, g, _key(toks, rel)))

    # ------------------------------------------------------------ public

    def plan(self, text: str, *, lang: str = "en", words: Sequence[WordTiming] | None = None,
             intents: Iterable[str] = ()) -> Plan:
        """The cues for `text` (already normalised for speech when `words` come from a
        TTS); without `words` they are estimated (gesture.timing)."""
        timings = "given" if words else "estimated"
        ws = tuple(words) if words else estimate_words(text, lang)
        if not ws:
            return Plan((), ws, frozenset(intents), timings, lang)
        matches = self._matches(ws, lang)
        all_intents = frozenset(intents) | {i for m in matches for i in m.gesture.intents}
        draft = _Draft()
        limit = ws[-1].end + self.tail_s
        self._required(ws, matches, frozenset(intents), all_intents, draft, limit)
        self._optional(ws, matches, all_intents, draft, limit)
        cues = tuple(sorted(draft.placed, key=lambda p: (p.cue.start, p.cue.gesture)))
        return Plan(cues, ws, all_intents, timings, lang)

    # ------------------------------------------------------------ triggers

    def _matches(self, ws: Sequence[WordTiming], lang: str) -> list[_Match]:
        out: list[_Match] = []
        if lang == "zh":
            joined, owner = "", []
            for i, w in enumerate(ws):
                joined += w.word.lower()
                owner += [i] * len(w.word)
            for phrase, key, g in self._zh:
                at = joined.find(phrase)
                while at >= 0:
                    out.append(_Match(g, owner[at + key], owner[at + len(phrase) - 1],
                                      phrase, phrase[key:]))
                    at = joined.find(phrase, at + 1)
            return out
        index = self._index.get(lang, {})
        toks: list[str] = []
        owner = []
        for i, w in enumerate(ws):
            for t in _tokens(w.word):
                toks.append(t)
                owner.append(i)
        for k, t in enumerate(toks):
            for ptoks, phrase, g, key in index.get(t, ()):
                if tuple(toks[k:k + len(ptoks)]) == ptoks:
                    at = owner[k + key]
                    out.append(_Match(g, at, owner[k + len(ptoks) - 1], phrase, ws[at].word))
        return out

    # ------------------------------------------------------------ the two passes

    def _required(self, ws: Sequence[WordTiming], matches: list[_Match],
                  declared: frozenset[str], intents: frozenset[str], draft: _Draft,
                  limit: float) -> None:
        anchors: list[tuple[int, str, str, str]] = []  # (word, intent, phrase, label)
        for m in matches:
            for intent in m.gesture.intents:
                if intent in _CLASS and m.gesture.direction == REQUIRED_INTENTS[intent]:
                    anchors.append((m.word, intent, m.phrase, m.label))
                    break
        for intent in sorted(declared & set(_CLASS)):
            if not any(_CLASS[a[1]] == _CLASS[intent] for a in anchors):
                w = _content_word(ws)
                anchors.append((w, intent, f"intent:{intent}", ws[w].word))
        weight = {(m.word, c): m.gesture.weight for m in sorted(
            matches, key=lambda m: m.gesture.weight) for c in {_CLASS.get(i) for i in
                                                                m.gesture.intents} if c}
        for cls in ("follow", "cart"):
            mine = sorted({a for a in anchors if _CLASS[a[1]] == cls})
            # Mentions within MERGE_S of the cluster's first share one gesture: on the
            # mention of the best-weighted gesture (小黄车 over 左下角), earliest on a tie.
            while mine:
                t0 = ws[mine[0][0]].start
                cluster = [a for a in mine if ws[a[0]].start - t0 < MERGE_S]
                mine = mine[len(cluster):]
                word, intent, phrase, label = min(
                    cluster, key=lambda a: (-weight.get((a[0], cls), 0.0), a[0]))
                self._answer(ws, _Match(self.library.gestures[0], word, word, phrase, label),
                             intent, matches, intents, draft, limit)

    def _answer(self, ws: Sequence[WordTiming], at: _Match, intent: str,
                matches: list[_Match], intents: frozenset[str], draft: _Draft,
                limit: float) -> bool:
        """Place a gesture toward `intent`'s direction at `at` (its gesture unused)."""
        direction = REQUIRED_INTENTS[intent]
        here = {m.gesture.id for m in matches if m.word == at.word}
        pool = [g for g in self.library.by_intent(intent)
                if g.direction == direction and g.id in self.available]
        pool.sort(key=lambda g: (g.category != "deictic", g.id not in here, -g.weight))
        stand_in: PlannedCue | None = None
        for g in pool:
            if g.category == "cue":
                continue
            placed = self._place(g, ws, at, "required", intents, draft, limit)
            if placed and g.category == "deictic":
                draft.placed.append(placed)
                return True
            if placed and stand_in is None:
                stand_in = placed
        if stand_in is not None:
            draft.placed.append(_with_reason(stand_in, "fallback"))
        if self.allow_cues:
            for g in pool:
                if g.category != "cue":
                    continue
                placed = self._place(g, ws, at, "fallback", intents, draft, limit)
                if placed:
                    draft.placed.append(placed)
                    return True
        return stand_in is not None

    def _optional(self, ws: Sequence[WordTiming], matches: list[_Match],
                  intents: frozenset[str], draft: _Draft, limit: float) -> None:
        speech_s = ws[-1].end - ws[0].start
        budget = math.ceil(self.density * speech_s / OPTIONAL_EVERY_S - 1e-9)
        if budget <= 0:
            return
        seen: set[tuple[str, int]] = set()
        ranked = sorted(matches, key=lambda m: (-m.gesture.weight, m.word, m.gesture.id))
        for m in ranked:
            g = m.gesture
            if (g.id, m.word) in seen or set(g.intents) & set(_CLASS):
                continue
            seen.add((g.id, m.word))
            if g.category == "cue" or g.id not in self.available:
                continue
            placed = self._place(g, ws, m, "trigger", intents, draft, limit)
            if placed:
                draft.placed.append(placed)
                budget -= 1
                if budget == 0:
                    return

    # ------------------------------------------------------------ placement and rules

    def _place(self, g: Gesture, ws: Sequence[WordTiming], at: _Match, reason: str,
               intents: frozenset[str], draft: _Draft, limit: float) -> PlannedCue | None:
        """`g` with its stroke on `at.word`, or None where no window keeps the rules."""
        if g.rules.not_with_intents & intents:
            return None
        for start, stroke, end in _windows(g, ws, at.word, limit):
            if _fits(g, start, end, draft.placed):
                cue = GestureCue(g.id, round(start, 3), round(stroke, 3), round(end, 3),
                                 at.label)
                return PlannedCue(cue, g, at.phrase, reason, at.word)
        return None


def _zh_key(phrase: str, related: Iterable[str]) -> int:
    """Where in a Chinese trigger the stroke goes: at the last shorter trigger of a
    gesture with a shared intent inside it (记得关注 -> 关注), else at its start."""
    inner = [phrase.find(q) for q in related if q != phrase and q in phrase]
    return max(inner, default=0)


def _key(toks: tuple[str, ...], related: Iterable[tuple[str, ...]]) -> int:
    """Where in an en/de trigger the stroke goes: at the last shorter trigger of a
    gesture with a shared intent inside it ("don't forget to follow" -> "follow"), else at
    its first word that is not a LEAD_WORD ("the link" -> "link")."""
    inner = [k for q in related if q and len(q) < len(toks)
             for k in range(len(toks) - len(q) + 1) if toks[k:k + len(q)] == q]
    if inner:
        return max(inner)
    return next((j for j, t in enumerate(toks) if t not in LEAD_WORDS), 0)


def _with_reason(p: PlannedCue, reason: str) -> PlannedCue:
    return PlannedCue(p.cue, p.gesture, p.trigger, reason, p.word_index)


def _content_word(ws: Sequence[WordTiming]) -> int:
    """Where a declared intent without a trigger word lands: the first word of three or
    more letters (a content word, roughly), else the first."""
    for i, w in enumerate(ws):
        if len(w.word) >= 3 or any("\u3400" <= ch <= "\u9fff" for ch in w.word):
            return i
    return 0


def _windows(g: Gesture, ws: Sequence[WordTiming], word: int, limit: float
             ) -> list[tuple[float, float, float]]:
    """Candidate (start, stroke, end) for `g` triggered at `word`, best first."""
    t = g.timing
    durations = dict.fromkeys((t.nominal_s, t.min_s))
    out: list[tuple[float, float, float]] = []
    if t.while_speaking:
        w = ws[word]
        aim = w.start + min(STROKE_AIM_S, (w.end - w.start) / 2)
        for d in durations:
            start, stroke = aim - t.stroke * d, aim
            if start < 0:  # at the utterance start: a shorter preparation (module doc)
                start, stroke = 0.0, max(aim, min(t.stroke * d, MIN_PREP_S))
            end = start + d
            if end > limit:
                start, end = max(0.0, limit - d), limit
                stroke = start + t.stroke * (end - start)
            if end - start >= t.min_s - 1e-9:
                out.append((start, stroke, end))
        return out
    # Not while speaking: the first pause after the word that is long enough.
    gaps = [(ws[i].end, ws[i + 1].start) for i in range(word, len(ws) - 1)]
    gaps.append((ws[-1].end, limit + SILENCE_MARGIN_S))
    for a, b in gaps:
        room = (b - SILENCE_MARGIN_S) - (a + SILENCE_MARGIN_S)
        if room >= t.min_s:
            d = min(t.nominal_s, room)
            start = a + SILENCE_MARGIN_S
            out.append((start, start + t.stroke * d, start + d))
            break
    return out


def _fits(g: Gesture, start: float, end: float, placed: list[PlannedCue]) -> bool:
    same = 0
    for p in placed:
        o = p.gesture
        gap = max(start - p.cue.end, p.cue.start - end)
        if o.id == g.id:
            same += 1
            if same >= g.rules.max_per_utterance or gap < g.rules.min_gap_s:
                return False
        if g.id in o.rules.excludes or o.id in g.rules.excludes:
            return False
        if g.channels & o.channels and gap < CHANNEL_GAP_S:
            return False
    return True


# ------------------------------------------------------------------ independent check


def check_plan(plan: Plan, library: Library | None = None,
               available: Collection[str] | None = None) -> list[str]:
    """Every rule violation in `plan`, as sentences (empty: the plan keeps every rule).
    Written apart from the planner's own bookkeeping so it can catch the planner."""
    lib = library or default_library()
    out: list[str] = []
    cues = sorted(plan.gesture_cues, key=lambda c: c.start)
    speech = [(w.start, w.end) for w in plan.words]
    for c in cues:
        g = lib[c.gesture]
        if available is not None and c.gesture not in available:
            out.append(f"{c.gesture}: the avatar cannot render it")
        if not c.start <= c.stroke <= c.end:
            out.append(f"{c.gesture}: stroke {c.stroke} outside {c.start}-{c.end}")
        if c.start < 0:
            out.append(f"{c.gesture}: starts before the utterance")
        if c.end - c.start < g.timing.min_s - 1e-3 or c.end - c.start > g.timing.max_s + 1e-3:
            out.append(f"{c.gesture}: lasts {c.end - c.start:.2f} s, outside "
                       f"{g.timing.min_s}-{g.timing.max_s} s")
        if g.rules.not_with_intents & plan.intents:
            out.append(f"{c.gesture}: not allowed with intents "
                       f"{sorted(g.rules.not_with_intents & plan.intents)}")
        if not g.timing.while_speaking and any(a < c.end and c.start < b for a, b in speech):
            out.append(f"{c.gesture}: runs while speaking")
        n = sum(1 for x in cues if x.gesture == c.gesture)
        if n > g.rules.max_per_utterance:
            out.append(f"{c.gesture}: {n} times, at most {g.rules.max_per_utterance}")
    for i, a in enumerate(cues):
        ga = lib[a.gesture]
        for b in cues[i + 1:]:
            gb = lib[b.gesture]
            gap = max(b.start - a.end, a.start - b.end)
            if a.gesture == b.gesture and gap < ga.rules.min_gap_s - 1e-6:
                out.append(f"{a.gesture} repeats after {gap:.2f} s (min "
                           f"{ga.rules.min_gap_s} s)")
            if ga.uses_hands and gb.uses_hands and gap < 0:
                out.append(f"hand gestures {a.gesture} and {b.gesture} overlap")
            elif set(ga.body) & set(gb.body) and gap < 0:
                out.append(f"{a.gesture} and {b.gesture} overlap on "
                           f"{sorted(set(ga.body) & set(gb.body))}")
            if a.gesture in gb.rules.excludes or b.gesture in ga.rules.excludes:
                out.append(f"{a.gesture} and {b.gesture} exclude each other")
    return out


def stroke_error(cue: GestureCue, word: WordTiming) -> float:
    """Seconds from the stroke to the word (0 when the stroke lies inside the word)."""
    return max(0.0, word.start - cue.stroke, cue.stroke - word.end)

