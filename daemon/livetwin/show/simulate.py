"""A show on a simulated clock: a Director driven by an event loop that stands in for
LiveTwin (a line sounds for its length at a speaking rate; the next one starts GAP_S
after it, operator and answer lines first). It jumps from event to event, so a
24-hour show takes seconds. Used by the tests and to preview a catalog's show
(`simulate(...)` then `summarise(...)`)."""

from __future__ import annotations

import functools
import heapq
import itertools
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from livetwin.events import ChatKind, UtteranceSource
from livetwin.show.director import Cue, Director

GAP_S = 0.3  # LiveTwin's silence between lines
RATE_CPS = {"en": 14.0, "de": 13.0, "zh": 4.5}  # characters per second of speech


@dataclass(frozen=True)
class Spoken:
    """A line as it sounded in the simulation."""

    start: float
    end: float
    text: str
    source: str
    kind: str
    product_id: str | None
    reply_to: str | None


@dataclass
class Script:
    """What happens to the simulated show: viewer counts, chat and air changes, each
    as (time, ...) entries."""

    viewers: Sequence[tuple[float, int]] = ()
    chat: Sequence[tuple[float, ChatKind, str | None]] = ()
    answers: Sequence[tuple[float, str, bool, str]] = ()  # (t, text, purchase, chat id)
    operator: Sequence[tuple[float, str]] = ()
    air: Sequence[tuple[float, bool]] = ()
    spoken: list[Spoken] = field(default_factory=list)


def simulate(director: Director, seconds: float, script: Script | None = None,
             poll_s: float = 0.25) -> list[Spoken]:
    """Run `director` for `seconds` of simulated time; the lines that sounded."""
    script = script or Script()
    rate = RATE_CPS.get(director.templates.lang, 14.0)
    events: list[tuple[float, int, Callable[[float], None]]] = []
    seq = 0

    def at(t: float, fn: Callable[[float], None]) -> None:
        nonlocal seq
        heapq.heappush(events, (t, seq, fn))
        seq += 1

    on_air = [True]

    def set_air(value: bool) -> Callable[[float], None]:
        def apply(now: float) -> None:
            on_air[0] = value
            director.on_air(value, now)
        return apply

    for t, count in script.viewers:
        at(t, functools.partial(_viewers, director, count))
    for t, kind, name in script.chat:
        at(t, functools.partial(_chat, director, kind, name))
    for t, text, purchase, cid in script.answers:
        at(t, functools.partial(_answer, director, text, purchase, cid))
    for t, text in script.operator:
        at(t, functools.partial(_operator, director, text))
    for t, value in script.air:
        at(t, set_air(value))

    out: list[Spoken] = []
    queue: deque[Cue] = deque()
    sounding: tuple[Cue, float, float] | None = None
    last_end = 0.0
    t = 0.0
    while t < seconds:
        while events and events[0][0] <= t:
            heapq.heappop(events)[2](t)
        if sounding is not None and t >= sounding[2]:
            last_end = sounding[2]
            director.on_line_ended(last_end, sounding[0].utterance.id)
            sounding = None
        cue = director.next_line(t)
        if cue is not None:
            queue.append(cue)
        if sounding is None and queue and t >= last_end + GAP_S:
            pick = _next_playable(queue, on_air[0])
            if pick is not None:
                u = pick.utterance
                end = t + max(0.8, len(u.text) / rate)
                sounding = (pick, t, end)
                out.append(Spoken(t, end, u.text, str(u.source), pick.kind, u.product_id,
                                  u.reply_to))
                director.on_line_started(t, u.id)
                cue = director.next_line(t)
                if cue is not None:
                    queue.append(cue)
        nxt = sounding[2] if sounding is not None else (
            max(t + poll_s, last_end + GAP_S) if queue else t + poll_s)
        if events:
            nxt = min(nxt, events[0][0])
        t = max(nxt, t + 1e-6)
    return out


def _viewers(director: Director, count: int, now: float) -> None:
    director.on_viewers(count, now)


def _chat(director: Director, kind: ChatKind, name: str | None, now: float) -> None:
    director.on_chat(kind, name, now)


def _answer(director: Director, text: str, purchase: bool, chat_id: str, now: float) -> None:
    director.queue_answer(text, now, reply_to=chat_id, purchase=purchase)


def _operator(director: Director, text: str, now: float) -> None:
    director.queue_operator(text, now)


def _next_playable(queue: deque[Cue], on_air: bool) -> Cue | None:
    """As LiveTwin: operator lines first, then answers, greetings, script, fillers;
    off air only operator lines play."""
    rank = {UtteranceSource.OPERATOR: 0, UtteranceSource.ANSWER: 1,
            UtteranceSource.GREETING: 2, UtteranceSource.SCRIPT: 3, UtteranceSource.FILLER: 4}
    best = None
    for c in queue:
        if not on_air and c.utterance.source is not UtteranceSource.OPERATOR:
            continue
        if best is None or rank[c.utterance.source] < rank[best.utterance.source]:
            best = c
    if best is not None:
        queue.remove(best)
    return best


@dataclass(frozen=True)
class Summary:
    """Figures of a simulated show."""

    lines: int
    max_gap_s: float
    repeats: int
    kind_share: dict[str, float]
    pitch_share: dict[str, float]


def summarise(spoken: Sequence[Spoken], repeat_window_s: float,
              off_air: Sequence[tuple[float, float]] = ()) -> Summary:
    """Lines, the longest on-air silence, repeats within the window, the share of
    each segment kind and each product's share of the pitches (opener lines)."""
    gaps = [b.start - a.end for a, b in itertools.pairwise(spoken)
            if not any(a.end < t1 and b.start > t0 for t0, t1 in off_air)]
    last: dict[str, float] = {}
    repeats = 0
    for s in spoken:
        if s.source in ("script", "filler", "greeting"):
            if s.text in last and s.start - last[s.text] < repeat_window_s:
                repeats += 1
            last[s.text] = s.start
    kinds = Counter(s.kind for s in spoken)
    pitches = Counter(s.product_id for s in spoken if s.source == "script" and s.product_id)
    n, p = max(1, len(spoken)), max(1, sum(pitches.values()))
    return Summary(len(spoken), max(gaps, default=0.0), repeats,
                   {k: v / n for k, v in sorted(kinds.items())},
                   {str(k): v / p for k, v in sorted(pitches.items())})
