"""The show director: a pure state machine that decides what the twin says next, forever.

It is driven from outside with the time passed in (no threads, no sleeping, no clock of
its own), so a simulated day runs in seconds:

    next_line(now) -> Cue | None        ask for the next line (None: not yet / nothing)
    on_line_started(now, id) / on_line_ended(now, id)   what the output did (id None:
                                        a line that did not come from the director)
    on_viewers(count, now), on_air(bool, now), on_chat(kind, name, now)
    queue_answer(...), queue_operator(...)

What it says, in order of precedence at every sentence boundary: the operator's lines,
answers to purchase questions, answers to other questions, greetings and thanks, then
the show itself: product pitches (the segment kinds of the current strategy profile,
products rotated by smooth weighted round-robin so each gets airtime in proportion to
its weight) with filler lines between them as the profile asks. Script content comes
one sentence per Cue, so answers slot in between sentences.

Guarantees (tested over a simulated 24 hours):
- only approved material: lines of each product's approved script version (re-checked
  against the current catalog record, so a price change retires stale lines), answers
  and operator lines it was handed, and the run-time template lines (fillers,
  greetings, thanks), which carry no product claim by construction (show.templates);
- a product without an approved script is never pitched; with no approved script at
  all the show only greets and answers (no fillers into an empty show);
- no director line is repeated within `repeat_window_s` (answers and operator lines are
  replies, not repeats);
- the silence between lines stays under `max_gap_s`: the profile's pause is capped
  below it; when the product whose turn it is has no fresh lines a filler runs (and the
  product keeps its turn, so pitches stay in proportion to the weights), then any fresh
  approved line. Only a show with nothing fresh left at all (every filler and approved
  line said within the window) idles in silence, with a warning in the log."""

from __future__ import annotations

import itertools
import logging
import random
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from livetwin.events import ChatKind, Product, Utterance, UtteranceSource
from livetwin.show.claims import ClaimChecker
from livetwin.show.scripts import sentences
from livetwin.show.strategy import Profile, Strategy
from livetwin.show.templates import LIVE_INTENTS, Templates
from livetwin.store.db import ScriptLine, ScriptRecord

log = logging.getLogger(__name__)
PREFETCH_PAUSE_S = 0.5  # with a pause this short the next line is queued while one sounds
# After this many lines not the director's in a row (chat answers), its next line is
# queued while one still sounds, so the twin can let it in between two answers
# (runtime/live.py ANSWERS_IN_A_ROW, the same number): a steady stream of answers left
# no pause after which the pitch could go on (an hour at 4 chat events a second: 851
# answers against 39 pitch lines).
OTHERS_BEFORE_PITCH = 2
GAP_MARGIN_S = 1.5  # the pause stays this far under max_gap_s (TTS start-up, polling)
STALE_ISSUE_S = 60.0  # an issued line that never started is forgotten after this
GREETING_MAX_AGE_S = 45.0  # "welcome, Anna" later than this is no longer a greeting
MAX_GREETINGS = 3
# Greetings and thanks in a row before a waiting pitch line goes first: with follows and
# gifts by name coming every second, they took every turn (38 script lines in an hour of
# the busy demo, against 415 greetings and thanks).
SOCIAL_IN_A_ROW = 1
MIN_PITCH_KINDS = 3  # a pitch says at least this many of its segment kinds
PRIORITY = {"operator": 0, "purchase": 1, "question": 2, "greeting": 3}
STATE_VERSION = 1  # of `snapshot`'s record
MAX_SAID_KEPT = 2_000  # no-repeat entries kept across a restart (the most recent)


@dataclass(frozen=True)
class ShowItem:
    """A product, its airtime weight and its approved script version (None: not
    approved, so not pitched)."""

    product: Product
    weight: float = 1.0
    script: ScriptRecord | None = None


@dataclass(frozen=True)
class DirectorSettings:
    """The `show:` settings the director needs."""

    max_gap_s: float = 6.0
    repeat_window_s: float = 600.0
    lang: str = "en"


@dataclass(frozen=True)
class Cue:
    """A line to say now, with the segment kind it belongs to."""

    utterance: Utterance
    kind: str


@dataclass
class _Pending:
    text: str
    kind: str
    source: UtteranceSource
    intents: tuple[str, ...] = ()
    product_id: str | None = None
    reply_to: str | None = None
    queued_at: float = 0.0


@dataclass
class _Item:
    item: ShowItem
    lines: dict[str, list[ScriptLine]] = field(default_factory=dict)
    current: float = 0.0  # smooth weighted round-robin state


def _pending_json(p: _Pending, now: float) -> dict[str, Any]:
    return {"text": p.text, "kind": p.kind, "source": str(p.source),
            "intents": list(p.intents), "product_id": p.product_id,
            "reply_to": p.reply_to, "age": round(now - p.queued_at, 3)}


def _pending_from(d: dict[str, Any], now: float, away_s: float) -> _Pending | None:
    try:
        return _Pending(str(d["text"]), str(d["kind"]), UtteranceSource(d["source"]),
                        tuple(str(x) for x in d.get("intents", ())), d.get("product_id"),
                        d.get("reply_to"), now - float(d.get("age", 0.0)) - away_s)
    except (KeyError, ValueError, TypeError):
        return None


class Director:
    """What to say next (module doc)."""

    def __init__(self, items: Sequence[ShowItem], templates: Templates, strategy: Strategy,
                 settings: DirectorSettings = DirectorSettings(),
                 rng: random.Random | None = None) -> None:
        self.templates = templates
        self.strategy = strategy
        self.settings = settings
        self.rng = rng or random.Random(0)
        self._ids = itertools.count(1)
        self._items: list[_Item] = []
        self._plan: deque[_Pending] = deque()
        self._interrupts: list[tuple[int, int, _Pending]] = []
        self._seq = itertools.count()
        self._said: dict[str, float] = {}
        # greetings and thanks (they carry viewers' names, so new ones keep coming): in
        # the order said, forgotten once older than twice the repeat window
        self._named: dict[str, float] = {}
        self._issued: dict[str, str] = {}
        self.pitches: Counter[str] = Counter()
        self._air = True
        self._sounding: set[str | None] = set()
        self._others_in_row = 0  # lines not the director's started since its last one
        self._outstanding: tuple[str, float] | None = None
        self._last_end: float | None = None
        self._fillers_due = 0
        self._last_greet = float("-inf")
        self._social_run = 0  # greetings and thanks issued since the last pitch line
        self._last_thanks = float("-inf")
        self._warned_at = float("-inf")
        self.current_product: str | None = None
        self._unstarted: dict[str, _Pending] = {}  # script lines issued, not yet sounding
        self.set_items(items)

    # -------------------------------------------------------------- inputs

    def set_items(self, items: Sequence[ShowItem]) -> None:
        """The catalog and its approved scripts (again, after an approval)."""
        old = {i.item.product.id: i.current for i in self._items}
        self._items = []
        for it in items:
            entry = _Item(it, current=old.get(it.product.id, 0.0))
            script = it.script
            if script is not None and script.status == "approved" and (
                    script.lang == self.templates.lang):
                checker = ClaimChecker(it.product, self.templates)
                for ln in script.lines:
                    if checker.check(ln.text).ok:
                        entry.lines.setdefault(ln.kind, []).append(ln)
                    else:
                        log.warning("script %s line %r retired: the catalog record changed",
                                    script.id, ln.text)
            self._items.append(entry)
        # fillers: the generic ones and one set per product that may be pitched
        self._fillers: list[tuple[str, str, tuple[str, ...]]] = [
            (t, "filler", ()) for t in self.templates.live_lines("filler")]
        for i in self._pitchable():
            self._fillers += [(t, "filler", ("product",)) for t in self.templates.live_lines(
                "filler_product", name=i.item.product.name)]

    def on_viewers(self, count: int, now: float) -> None:
        """A viewer count; a spike switches to the spike pitch at the next sentence."""
        if self.strategy.update(count, now):
            self._plan.clear()
            self._fillers_due = 0
            self._plan_pitch(self.strategy.profile(now), now, spike=True)

    def on_air(self, on_air: bool, now: float) -> None:
        """Whether the twin is on air and not paused (OBS scene, operator pause)."""
        if on_air and not self._air:
            self._last_end = now
        if not on_air:
            self._plan.clear()
        self._air = on_air

    def on_chat(self, kind: ChatKind, display_name: str | None, now: float) -> None:
        """A join, gift or follow: a greeting or thanks, by name or to the room, as the
        profile says (`display_name` comes pre-cleaned from the chat package)."""
        prof = self.strategy.profile(now)
        if kind is ChatKind.JOIN:
            if prof.greet == "none" or now - self._last_greet < prof.greet_interval_s:
                return
            if prof.greet == "name" and display_name:
                texts = self.templates.live_lines("greeting_name", user=display_name)
            else:
                texts = self.templates.live_lines("greeting_room")
            if self._queue_fresh(texts, "greeting", now):
                self._last_greet = now
        elif kind in (ChatKind.GIFT, ChatKind.FOLLOW):
            if prof.thanks == "name" and display_name:
                which = "thanks_gift_name" if kind is ChatKind.GIFT else "thanks_follow_name"
                self._queue_fresh(self.templates.live_lines(which, user=display_name),
                                  "thanks", now)
            elif now - self._last_thanks >= prof.greet_interval_s and self._queue_fresh(
                    self.templates.live_lines("thanks_room"), "thanks", now):
                self._last_thanks = now

    def queue_answer(self, text: str, now: float, *, reply_to: str | None = None,
                     purchase: bool = False, product_id: str | None = None) -> None:
        """An answer to a chat message, said at the next sentence boundary (purchase
        questions before other questions)."""
        p = _Pending(text, "answer", UtteranceSource.ANSWER, ("answer",), product_id,
                     reply_to, now)
        self._push("purchase" if purchase else "question", p)

    def queue_operator(self, text: str, now: float) -> None:
        """An operator line, said next."""
        self._push("operator", _Pending(text, "operator", UtteranceSource.OPERATOR,
                                        queued_at=now))

    def on_line_started(self, now: float, line_id: str | None = None) -> None:
        if self._outstanding and self._outstanding[0] == line_id:
            self._outstanding = None
        self._unstarted.pop(line_id or "", None)
        text = self._issued.pop(line_id or "", None)
        if text is not None:  # the repeat window counts from when a line really started
            self._remember(text, now, named=text in self._named)
        self._others_in_row = 0 if line_id is not None else self._others_in_row + 1
        self._sounding.add(line_id)

    def on_line_ended(self, now: float, line_id: str | None = None) -> None:
        """A line ended (or failed or was skipped)."""
        if self._outstanding and self._outstanding[0] == line_id:
            self._outstanding = None
        self._unstarted.pop(line_id or "", None)
        self._sounding.discard(line_id)
        self._last_end = now

    # -------------------------------------------------------------- output

    def upcoming(self, n: int = 5) -> list[tuple[str, str]]:
        """The next lines as planned now, (text, segment kind), for the dashboard: the
        line issued but not yet sounding first (kind "issued"), then queued answers and
        greetings, then the pitch; the pitch after the planned one is not chosen yet,
        and a line may still be skipped as said too recently."""
        out = []
        issued = self._issued.get(self._outstanding[0]) if self._outstanding else None
        if issued is not None:
            out.append((issued, "issued"))
        queued = [p for _, _, p in self._interrupts] + list(self._plan)
        return (out + [(p.text, p.kind) for p in queued])[:n]


    def next_line(self, now: float) -> Cue | None:
        """The line to queue now, or None (module doc)."""
        if self._last_end is None:  # the show starts at once
            self._last_end = float("-inf")
        if self._outstanding is not None:
            if now - self._outstanding[1] < STALE_ISSUE_S:
                return None
            self._outstanding = None
        pending = None
        if (self._social_run >= SOCIAL_IN_A_ROW and self._social_next() and self._air
                and self._pitchable()):  # a busy room: the pitch between greetings
            if not self._may_continue(now):
                return None  # after the pitch's pause, not another greeting
            pending = self._take_show(now)
        if pending is None:
            pending = self._take_interrupt(now)
        if pending is None:
            if not self._air or not self._may_continue(now):
                return None
            pending = self._take_show(now)
        if pending is None:
            return None
        if pending.source is UtteranceSource.GREETING:
            self._social_run += 1
        elif pending.source in (UtteranceSource.SCRIPT, UtteranceSource.FILLER):
            self._social_run = 0
        return self._issue(pending, now)

    def _social_next(self) -> bool:
        """Whether the next interrupt is a greeting or thanks."""
        return bool(self._interrupts) and self._interrupts[0][0] == PRIORITY["greeting"]

    def _may_continue(self, now: float) -> bool:
        pause = min(self.strategy.profile(now).pause_s,
                    max(0.0, self.settings.max_gap_s - GAP_MARGIN_S))
        if self._sounding:
            return pause <= PREFETCH_PAUSE_S or self._others_in_row >= OTHERS_BEFORE_PITCH
        return self._last_end is None or now >= self._last_end + pause

    def _issue(self, p: _Pending, now: float) -> Cue:
        line_id = f"d{next(self._ids)}"
        if p.source in (UtteranceSource.SCRIPT, UtteranceSource.FILLER,
                        UtteranceSource.GREETING):
            self._remember(p.text, now, named=p.source is UtteranceSource.GREETING)
            self._issued[line_id] = p.text
            if len(self._issued) > 100:  # lines that failed before starting
                self._issued.pop(next(iter(self._issued)))
        self._outstanding = (line_id, now)
        if p.product_id and p.source is UtteranceSource.SCRIPT:
            self.current_product = p.product_id
            self._unstarted[line_id] = p
            if len(self._unstarted) > 100:
                self._unstarted.pop(next(iter(self._unstarted)))
        utt = Utterance(text=p.text, source=p.source, product_id=p.product_id,
                        reply_to=p.reply_to, intents=p.intents, lang=self.templates.lang,
                        id=line_id)
        return Cue(utt, p.kind)

    def _remember(self, text: str, now: float, *, named: bool) -> None:
        """Note `text` as said at `now` for the no-repeat rule. Script and filler lines
        are bounded by the catalog; lines with names are forgotten once older than twice
        the repeat window, else each new viewer's greeting would stay for good."""
        self._said[text] = now
        if not named:
            return
        self._named.pop(text, None)
        self._named[text] = now  # the newest last
        horizon = now - 2 * self.settings.repeat_window_s
        while self._named:
            oldest, at = next(iter(self._named.items()))
            if at >= horizon:
                break
            del self._named[oldest]
            if self._said.get(oldest) == at:
                del self._said[oldest]

    # -------------------------------------------------------------- crash safety

    def snapshot(self, now: float) -> dict[str, Any]:
        """The director's position as plain JSON (kept in the store on every line start,
        docs/reliability.md): the rest of the pitch in progress (lines issued but not yet
        sounding first), the rotation, the no-repeat memory (ages, not clock readings),
        and the operator lines and answers still waiting."""
        window = self.settings.repeat_window_s
        unstarted = {p.text for p in self._unstarted.values()}  # issued, never heard
        said = sorted((now - at, t) for t, at in self._said.items()
                      if now - at < window and t not in unstarted)
        waiting = [(rank, p) for rank, _, p in self._interrupts
                   if rank in (PRIORITY["operator"], PRIORITY["purchase"],
                               PRIORITY["question"])]
        return {"v": STATE_VERSION, "lang": self.templates.lang,
                "current_product": self.current_product,
                "rotation": {i.item.product.id: i.current for i in self._items},
                "plan": [_pending_json(p, now) for p in
                         [*self._unstarted.values(), *self._plan]],
                "fillers_due": self._fillers_due, "pitches": dict(self.pitches),
                "said": [[round(age, 3), t] for age, t in said[:MAX_SAID_KEPT]],
                "waiting": [[rank, _pending_json(p, now)] for rank, p in waiting]}

    def restore(self, state: dict[str, Any], now: float, away_s: float = 0.0) -> bool:
        """Continue from `snapshot` output taken `away_s` ago (the daemon was down in
        between): the pitch goes on with its next line, the rotation and the repeat
        window go on as before. Planned lines are kept only while they are still in an
        approved script (an approval may have changed while the daemon was down); False
        when the record does not fit (another language or format): a fresh start."""
        if state.get("v") != STATE_VERSION or state.get("lang") != self.templates.lang:
            return False
        try:
            rotation = {str(k): float(v) for k, v in state.get("rotation", {}).items()}
            for item in self._items:
                item.current = rotation.get(item.item.product.id, item.current)
            for age, text in state.get("said", []):
                self._said[str(text)] = now - float(age) - away_s
            approved = self._approved_sentences()
            self._plan = deque(p for d in state.get("plan", []) if (p := _pending_from(
                d, now, away_s)) is not None and (p.product_id, p.text) in approved)
            for rank, d in state.get("waiting", []):
                p = _pending_from(d, now, away_s)
                if p is not None and (rank == PRIORITY["operator"]
                                      or now - p.queued_at < GREETING_MAX_AGE_S):
                    self._push(next(k for k, v in PRIORITY.items() if v == rank), p)
            self._fillers_due = int(state.get("fillers_due", 0))
            self.pitches.update({str(k): int(v) for k, v in state.get("pitches", {}).items()})
            current = state.get("current_product")
            self.current_product = str(current) if current else None
        except (TypeError, ValueError, StopIteration, KeyError) as exc:
            log.warning("the stored show position is unusable (%s); starting afresh", exc)
            return False
        return True

    def _approved_sentences(self) -> set[tuple[str | None, str]]:
        out: set[tuple[str | None, str]] = set()
        for item in self._pitchable():
            for lines in item.lines.values():
                for ln in lines:
                    out.update((item.item.product.id, x) for x in sentences(ln.text))
        return out

    # -------------------------------------------------------------- choosing

    def _push(self, rank: str, p: _Pending) -> None:
        self._interrupts.append((PRIORITY[rank], next(self._seq), p))
        self._interrupts.sort(key=lambda e: (e[0], e[1]))

    def _take_interrupt(self, now: float) -> _Pending | None:
        while self._interrupts:
            rank, _, p = self._interrupts[0]
            if not self._air and rank != PRIORITY["operator"]:
                return None
            self._interrupts.pop(0)
            if rank == PRIORITY["greeting"] and (now - p.queued_at > GREETING_MAX_AGE_S
                                                 or self._recent(p.text, now)):
                continue
            return p
        return None

    def _take_show(self, now: float) -> _Pending | None:
        if not self._pitchable():  # nothing approved: answers and greetings only (§7)
            self._plan.clear()
            return None
        while self._plan:
            p = self._plan.popleft()
            if not self._recent(p.text, now):
                return p
        prof = self.strategy.profile(now)
        if self._fillers_due > 0 or not self._plan_pitch(prof, now):
            self._fillers_due = max(0, self._fillers_due - 1)
            return self._filler(now)
        self._fillers_due = prof.fillers_per_pitch
        return self._plan.popleft() if self._plan else self._filler(now)

    def _recent(self, text: str, now: float) -> bool:
        at = self._said.get(text)
        return at is not None and now - at < self.settings.repeat_window_s

    def _queue_fresh(self, texts: list[str], kind: str, now: float) -> bool:
        queued = {p.text for _, _, p in self._interrupts}
        fresh = [t for t in texts if not self._recent(t, now) and t not in queued]
        greetings = sum(1 for r, _, _ in self._interrupts if r == PRIORITY["greeting"])
        if not fresh or greetings >= MAX_GREETINGS:
            return False
        text = self.rng.choice(fresh)
        self._push("greeting", _Pending(text, kind, UtteranceSource.GREETING,
                                        LIVE_INTENTS["greeting_name" if kind == "greeting"
                                                     else "thanks_gift_name"],
                                        queued_at=now))
        return True

    def _pitchable(self) -> list[_Item]:
        return [i for i in self._items if i.lines]

    def _next_item(self) -> _Item | None:
        """The product whose turn it is by smooth weighted round-robin (not yet charged:
        `_charge` commits the turn once the pitch is planned). When its lines were all
        said too recently, a filler runs instead and it keeps its turn, so airtime stays
        in proportion to the weights."""
        items = self._pitchable()
        if not items:
            return None
        return max(items, key=lambda i: i.current + i.item.weight)

    def _charge(self, item: _Item) -> None:
        items = self._pitchable()
        for i in items:
            i.current += i.item.weight
        item.current -= sum(i.item.weight for i in items)

    def _plan_pitch(self, prof: Profile, now: float, *, spike: bool = False) -> bool:
        """Plan one pitch (the profile's segment kinds) of the next product, or of the
        current one in a spike; False when there is no fresh pitch line."""
        if spike:
            return self._plan_item(prof, self._spike_item(prof, now), now, spike=True)
        item = self._next_item()
        if item is None or not self._plan_item(prof, item, now):
            return False
        self._charge(item)
        return True

    def _spike_item(self, prof: Profile, now: float) -> _Item | None:
        """The product a spike pitches: the current one when it still has a fresh line of
        every script kind of the spike pitch (price, cart ...), else the heaviest product
        that has; else the current one with what it has left. Repeats stay forbidden."""
        items = sorted(self._pitchable(), key=lambda i: (
            i.item.product.id != self.current_product, -i.item.weight))
        kinds = [k for k in prof.pitch if k != "spike_welcome"]
        for item in items:
            if all(self._fresh_line(item, k, set(), now) is not None for k in kinds
                   if k in item.lines):
                return item
        return items[0] if items and items[0].item.product.id == self.current_product \
            else None

    def _plan_item(self, prof: Profile, item: _Item | None, now: float, *,
                   spike: bool = False) -> bool:
        used: set[str] = set()
        planned: list[_Pending] = []
        for kind in prof.pitch:
            if kind == "spike_welcome":
                texts = [t for t in self.templates.live_lines("spike_welcome")
                         if not self._recent(t, now)]
                if texts:
                    planned.append(_Pending(self.rng.choice(texts), kind,
                                            UtteranceSource.GREETING, ("greeting",)))
                continue
            if item is None:
                continue
            line = self._fresh_line(item, kind, used, now)
            if line is None:
                continue
            used.add(line.text)
            pid = item.item.product.id
            for s in sentences(line.text):
                planned.append(_Pending(s, kind, UtteranceSource.SCRIPT, line.intents, pid))
        kinds = {p.kind for p in planned if p.source is UtteranceSource.SCRIPT}
        if len(kinds) < min(MIN_PITCH_KINDS, len(prof.pitch)) and not spike:
            return False  # too little fresh material for a pitch: not this product now
        if item is not None and kinds:
            self.pitches[item.item.product.id] += 1
        self._plan.extend(planned)
        return bool(planned)

    def _fresh_line(self, item: _Item, kind: str, used: set[str], now: float
                    ) -> ScriptLine | None:
        candidates = [ln for ln in item.lines.get(kind, ())
                      if ln.text not in used and not any(
                          self._recent(s, now) for s in sentences(ln.text))]
        if not candidates:
            return None
        # least recently said first, ties broken at random: variety without repeats
        self.rng.shuffle(candidates)
        return min(candidates, key=lambda ln: max(
            (self._said.get(s, float("-inf")) for s in sentences(ln.text)),
            default=float("-inf")))

    def _filler(self, now: float) -> _Pending | None:
        fresh = [x for x in self._fillers if not self._recent(x[0], now)]
        if not fresh:
            return self._any_fresh(now)
        self.rng.shuffle(fresh)
        text, kind, intents = min(fresh, key=lambda x: self._said.get(x[0], float("-inf")))
        return _Pending(text, kind, UtteranceSource.FILLER, intents)

    def _any_fresh(self, now: float) -> _Pending | None:
        """Out of fillers: any fresh approved line of any product, rather than silence."""
        items = self._pitchable()
        self.rng.shuffle(items)
        for item in items:
            for kind in ("feature", "qa_bridge", "opener", "follow", "cart"):
                line = self._fresh_line(item, kind, set(), now)
                if line is None:
                    continue
                pid = item.item.product.id
                parts = [_Pending(x, kind, UtteranceSource.SCRIPT, line.intents, pid)
                         for x in sentences(line.text)]
                self._plan.extend(parts[1:])
                return parts[0]
        if now - self._warned_at > 3600:
            self._warned_at = now
            log.warning("no fresh line to say: the twin idles in silence until a line may "
                        "be said again (approve scripts, or add products and facts)")
        return None
