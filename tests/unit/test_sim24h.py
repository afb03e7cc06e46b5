"""24 simulated hours of the whole show on a fake clock (issue 11): the show director
(`ShowRunner` over `Director`, the demo shop's approved scripts from a real SQLite
store), the chat pipeline and the daemon's chat log and transcript (`Daemon`), wired as
`livetwin serve` wires them, with the demo audience (runtime/demo.py) in front.

Only the twin is simulated (`SimLive`): a line sounds for its length at a speaking
rate, GAP_S after the one before, in LiveTwin's order (source rank, then priority),
and LineStarted/LineEnded go to the subscribers as LiveTwin sends them. The clock jumps
from event to event, so the day takes seconds. The chat worker's loop and the runner's
poll run inline on the same clock.

The day: four six-hour demo shows, each opening to an empty room for half an hour,
then the demo audience's curve (a few viewers, a few dozen, a spike to hundreds, the
fall), chatting at one event every CHAT_EVERY_S seconds on average.

Asserted: every bounded structure stays within its bound (decision log, operator
queue, reply queue, rate-limit and duplicate maps, the runner's id map, the director's
issued-line and no-repeat memories, the chat log and transcript in memory, the twin's
queue), the rotation covers every product in every hour, the strategy tier follows the
viewer count, chat answers keep coming every hour, and nothing raised."""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from livetwin.chat.flow import MAX_KEYS
from livetwin.chat.pipeline import ChatPipeline
from livetwin.chat.registry import ChatService, settings_from_config
from livetwin.config import ChatConfig, Config, ShowConfig
from livetwin.events import ChatKind, Product, Utterance, UtteranceSource
from livetwin.runtime.demo import Audience, AudienceStep, _set_viewers, prepare_store
from livetwin.runtime.live import GAP_S, MAX_PENDING, SOURCE_RANK
from livetwin.runtime.live_events import LineEnded, LineStarted, LiveEvent, LiveState, QueueFull
from livetwin.runtime.transcript import MAX_ENTRIES
from livetwin.server.app import Daemon
from livetwin.server.auth import Token
from livetwin.show.runner import MAX_MAP, POLL_S, open_show
from livetwin.store import open_store

if TYPE_CHECKING:
    from livetwin.runtime.live import LiveTwin

DAY_S = 24 * 3600
SHOW_S = 6 * 3600
EMPTY_S = 1800  # each show opens to an empty room
CHAT_EVERY_S = 20.0  # one chat event per this on average (the pipeline costs ~0.5 ms each)
RATE_CPS = {"en": 14.0, "de": 13.0, "zh": 4.5}  # characters a second, as show.simulate


class SimLive:
    """LiveTwin on a simulated clock (module doc): `say`, `backlog`, `subscribe`,
    `state`, `set_product`; `advance(now)` ends and starts lines."""

    def __init__(self, products: Sequence[Product], clock: Callable[[], float]) -> None:
        self.products = list(products)
        self.clock = clock
        self.state = LiveState()
        self._waiting: list[tuple[int, int, int, Utterance]] = []
        self._seq = itertools.count(1)
        self._subs: list[Callable[[LiveEvent], None]] = []
        self.sounding: tuple[Utterance, float] | None = None  # (line, end time)
        self.free_at = 0.0
        self.most_waiting = 0

    def say(
        self,
        text: str,
        source: UtteranceSource | str = UtteranceSource.OPERATOR,
        reply_to: str | None = None,
        product_id: str | None = None,
        lang: str | None = None,
        *,
        intents: Sequence[str] = (),
        priority: int = 0,
    ) -> str:
        if len(self._waiting) >= MAX_PENDING:
            raise QueueFull(f"{MAX_PENDING} lines already wait to be spoken")
        seq = next(self._seq)
        utt = Utterance(
            text,
            UtteranceSource(source),
            product_id,
            reply_to,
            priority,
            tuple(intents),
            lang or "en",
            str(seq),
        )
        heapq.heappush(self._waiting, (SOURCE_RANK[utt.source], -priority, seq, utt))
        self.most_waiting = max(self.most_waiting, len(self._waiting))
        return utt.id

    def backlog(self) -> int:
        return len(self._waiting)

    def subscribe(self, fn: Callable[[LiveEvent], None]) -> Callable[[], None]:
        self._subs.append(fn)
        return lambda: self._subs.remove(fn)

    def set_product(self, product_id: str | None) -> None:
        product = next((p for p in self.products if p.id == product_id), None)
        self.state = dataclasses.replace(self.state, product=product)

    def advance(self, now: float) -> None:
        if self.sounding is not None and now >= self.sounding[1]:
            utt, end = self.sounding
            self.sounding, self.free_at = None, end + GAP_S
            self._emit(LineEnded(utt.id, False, 0))
        if self.sounding is None and self._waiting and now >= self.free_at:
            utt = heapq.heappop(self._waiting)[3]
            rate = RATE_CPS.get(utt.lang, 14.0)
            self.sounding = (utt, now + max(0.8, len(utt.text) / rate))
            self._emit(LineStarted(utt, 1.7e9 + now, 0))

    def next_change(self) -> float:
        if self.sounding is not None:
            return self.sounding[1]
        return self.free_at if self._waiting else float("inf")

    def _emit(self, event: LiveEvent) -> None:
        for fn in list(self._subs):
            fn(event)


def day_plan(t: int, shows: Sequence[Audience]) -> AudienceStep:
    """Second `t` of the day: four demo shows, each after half an hour of empty room."""
    k, s = divmod(t, SHOW_S)
    if s < EMPTY_S:
        return AudienceStep(0, ())
    return shows[k].plan(s - EMPTY_S)


TIERS = {"empty": 0, "small": 1, "growing": 20, "crowd": 200}  # shipped strategy.yaml


def expected_tiers(counts: Sequence[int]) -> set[str]:
    """The tiers the shipped strategy may be in after `counts` (a count a second): the
    tier of the counts when they all fall in one, or the tier above it while they stay
    within its hysteresis (20 %); empty when they span tiers."""
    names = list(TIERS)
    own = {max(i for i, n in enumerate(names) if TIERS[n] <= c) for c in counts}
    if len(own) != 1:
        return set()
    i = own.pop()
    ok = {names[i]}
    if i + 1 < len(names) and min(counts) >= 0.8 * TIERS[names[i + 1]]:
        ok.add(names[i + 1])
    return ok


@dataclasses.dataclass
class Day:
    """What a simulated day left behind."""

    daemon: Daemon
    live: SimLive
    sizes: list[dict[str, int]]  # the bounded structures, once an hour
    hours: list[Counter[str]]  # per hour: lines by source, products pitched, answers
    tiers: list[tuple[int, str, set[str]]]  # (count, profile, tiers the last 2 min allow)
    warnings: list[str]
    elapsed_s: float


def sizes_of(d: Daemon, live: SimLive) -> dict[str, int]:
    assert d.chat is not None and d.show is not None
    p, r = d.chat.pipeline, d.show
    director = r.director
    return {
        "decisions": len(p.decisions),
        "unanswered": len(p.unanswered),
        "reply_queue": len(p.queue),
        "user_buckets": len(p._users),
        "greeted": len(p._greeted),
        "dupes": len(p._dupes),
        "recent_chat": len(p._recent_chat),
        "runner_ids": len(r._ids),
        "director_said": len(director._said),
        "director_issued": len(director._issued),
        "director_unstarted": len(getattr(director, "_unstarted", ())),
        "director_interrupts": len(director._interrupts),
        "director_plan": len(director._plan),
        "chat_log": len(d.chats.recent(10 * MAX_ENTRIES)),
        "transcript": len(d.transcript.since()),
        "twin_waiting": live.backlog(),
    }


def simulate_day(tmp: Path, seconds: int = DAY_S) -> Day:
    now = [0.0]

    def clock() -> float:
        return now[0]

    url = f"sqlite:///{tmp / 'demo.db'}"
    products = prepare_store(url, "en", Config())
    store = open_store(url)
    live = SimLive(products, clock)
    runner = open_show(live, store, ShowConfig())
    runner.clock = clock  # the runner's thread is not started: `step` is polled below
    # The runner keeps the director's position in the store at every line it starts
    # (crash safety; about 3 ms of SQLite each): 20,000 of them would be most of this
    # test's time and measure SQLite, not the show, so this day runs without.
    runner.store = None
    pipeline = ChatPipeline(
        products,
        live.say,
        lambda: live.state.product,
        settings=settings_from_config(ChatConfig()),
        backlog=live.backlog,
        clock=clock,
    )
    pipeline.queue.clock = clock
    pipeline.social = runner.on_chat
    daemon = Daemon(
        cast("LiveTwin", live),
        Token("sim-token-0123456789abcdef", "env"),
        products,
        chat=ChatService(pipeline),
        show=runner,
        store=store,
    )
    live.subscribe(daemon.on_event)
    live.subscribe(runner.on_event)
    runner.director.on_air(True, 0.0)
    shows = [Audience(SHOW_S - EMPTY_S, seed=7 + k, chat_rate=1 / CHAT_EVERY_S) for k in range(4)]

    sizes: list[dict[str, int]] = []
    hours: list[Counter[str]] = [Counter()]
    tiers: list[tuple[int, str, set[str]]] = []
    counts: list[int] = []

    def on_line(event: LiveEvent) -> None:
        if isinstance(event, LineStarted):
            u = event.utterance
            hour = hours[-1]
            hour[f"source:{u.source}"] += 1
            if u.source is UtteranceSource.SCRIPT and u.product_id:
                hour[f"product:{u.product_id}"] += 1
            if u.reply_to:
                hour["replies"] += 1

    live.subscribe(on_line)
    warnings: list[str] = []
    handler = _ListHandler(warnings)
    logging.getLogger("livetwin").addHandler(handler)
    t0 = time.perf_counter()
    try:
        second = 0
        while now[0] < seconds:
            if now[0] >= second:
                step = day_plan(second, shows)
                if not counts or step.viewers != counts[-1]:
                    _set_viewers(daemon, step.viewers)
                counts.append(step.viewers)
                for user, text, kind in step.events:
                    daemon.receive_chat("demo", user, text or kind.value, kind)
                if second % 60 == 0:
                    allowed = expected_tiers(counts[-120:]) if len(counts) > 120 else set()
                    tiers.append(
                        (step.viewers, runner.director.strategy.profile(now[0]).name, allowed)
                    )
                if second % 3600 == 0 and second:
                    sizes.append(sizes_of(daemon, live))
                    hours.append(Counter())
                second += 1
            live.advance(now[0])
            runner.step()
            while (
                live.backlog() < pipeline.settings.ahead
                and (job := pipeline.queue.get(timeout=0)) is not None
            ):
                pipeline.speak(job)
            live.advance(now[0])
            now[0] = max(now[0] + 1e-6, min(second, live.next_change(), now[0] + POLL_S * 2.5))
        sizes.append(sizes_of(daemon, live))
    finally:
        logging.getLogger("livetwin").removeHandler(handler)
        store.close()
    return Day(daemon, live, sizes, hours, tiers, warnings, time.perf_counter() - t0)


class _ListHandler(logging.Handler):
    def __init__(self, out: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        self.out.append(f"{record.levelname} {record.name}: {record.getMessage()}")


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    return simulate_day(tmp_path_factory.mktemp("sim24h"))


def test_a_simulated_day_keeps_every_structure_bounded(day: Day) -> None:
    chat = ChatConfig()
    bounds = {
        "decisions": 2000,
        "unanswered": 200,
        "reply_queue": chat.queue_size,
        "user_buckets": MAX_KEYS,
        "greeted": MAX_KEYS,
        "dupes": MAX_KEYS,
        "recent_chat": 50,
        "runner_ids": MAX_MAP + 1,
        "director_issued": 101,
        "director_unstarted": 101,
        "director_interrupts": 3,
        "chat_log": MAX_ENTRIES,
        "transcript": MAX_ENTRIES,
        "twin_waiting": MAX_PENDING,
    }
    last = day.sizes[-1]
    print(f"\n24 h simulated in {day.elapsed_s:.1f} s; sizes at the end: {last}")
    for name, bound in bounds.items():
        assert max(s[name] for s in day.sizes) <= bound, (name, [s[name] for s in day.sizes])
    # the no-repeat memory holds one entry per distinct line said: the demo shop's
    # script sentences, the fillers and the greetings by the demo names. It stops
    # growing once the show has said them all (it is never pruned: see the report).
    said = [s["director_said"] for s in day.sizes]
    assert said[-1] == said[11] or said[-1] < 1.2 * said[11], said
    assert day.live.most_waiting <= 4  # runner and chat keep the twin's queue short
    # the chat log and the transcript did fill up to their bounds over the day
    assert last["chat_log"] > 1000 and last["transcript"] == MAX_ENTRIES


def test_a_simulated_day_keeps_the_show_and_the_answers_going(day: Day) -> None:
    products = {p.id for p in day.live.products}
    per_hour = [
        (sum(v for k, v in h.items() if k.startswith("source:")), h["source:script"], h["replies"])
        for h in day.hours
    ]
    print(f"\nlines/hour (all, script, replies): {per_hour}")
    assert len(day.hours) == 24
    for hour, h in enumerate(day.hours):
        pitched = {k.split(":", 1)[1] for k in h if k.startswith("product:")}
        assert pitched == products, (hour, h)  # the rotation covers every product
        assert h["source:script"] > 300, (hour, h)  # the show itself keeps going
    # chat answers keep coming: every hour with an audience has replies
    for hour in range(24):
        if hour % 6 != 0:
            assert day.hours[hour]["replies"] > 0, (hour, day.hours[hour])
    assert day.warnings == []  # nothing logged at WARNING or above, nothing raised


def test_a_simulated_day_follows_the_viewer_count_with_the_strategy(day: Day) -> None:
    seen = {profile for _, profile, _ in day.tiers}
    print(f"\nprofiles seen: {Counter(p for _, p, _ in day.tiers)}")
    assert seen == {"empty", "small", "growing", "crowd", "spike"}
    checked = 0
    for count, profile, allowed in day.tiers:
        if allowed and profile != "spike":  # two minutes within one tier: that tier
            assert profile in allowed, (count, profile, allowed)
            checked += 1
    assert checked > 0.5 * len(day.tiers)


def test_the_no_repeat_memory_forgets_names_once_out_of_the_window(tmp_path: Path) -> None:
    from livetwin.show.director import Director, DirectorSettings
    from livetwin.show.runner import show_items
    from livetwin.show.simulate import Script, simulate
    from livetwin.show.strategy import Strategy, load_strategy
    from livetwin.show.templates import load_templates

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    prepare_store(url, "en", Config())
    store = open_store(url)
    try:
        items = show_items(store, "en")
    finally:
        store.close()
    settings = DirectorSettings(repeat_window_s=600.0)
    d = Director(items, load_templates("en"), Strategy(load_strategy()), settings)
    names = ("".join(p) for p in itertools.product("abcdefghij", repeat=4))
    joins = [(t * 10.0, ChatKind.JOIN, f"viewer {next(names)}") for t in range(1080)]
    simulate(d, 3 * 3600.0, Script(viewers=[(0.0, 5)], chat=joins))
    old = [t for t, at in d._said.items() if 3 * 3600.0 - at > 2 * settings.repeat_window_s]
    named = [t for t in old if "viewer " in t]
    print(
        f"\nno-repeat memory: {len(d._said)} lines, {len(named)} greetings by name "
        "older than twice the window"
    )
    assert named == []
