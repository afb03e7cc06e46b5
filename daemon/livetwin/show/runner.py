"""`ShowRunner`: connects a Director to the live twin (LiveTwin, or anything with its
`say`/`backlog`/`subscribe`/`state`).

A small thread polls every `poll_s`: when the twin's backlog is empty it asks the
director for the next line and queues it, so at most about one director line waits
while another sounds; chat answers and operator lines queued straight into the twin
therefore go before the next director sentence. The twin's events come back on its
dispatcher thread: LineStarted/LineEnded/LineFailed tell the director what sounded
(its own lines by id, others as "something sounded"), StateChanged tells it when the
twin is paused or off air. One lock serialises everything that touches the director,
so API threads may call `on_viewers`, `on_chat`, `queue_answer` and `reload` too."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from livetwin.errors import LivetwinError
from livetwin.events import ChatKind, UtteranceSource
from livetwin.runtime.live_events import (
    LineEnded,
    LineFailed,
    LineStarted,
    LiveEvent,
    LiveState,
    StateChanged,
)
from livetwin.show.director import Director, ShowItem

if TYPE_CHECKING:
    from livetwin.config import ShowConfig
    from livetwin.store.db import Store

log = logging.getLogger(__name__)
POLL_S = 0.2
STATE_KEY = "show"  # the director's record in the store's show_state table
MAX_MAP = 1_000


class LiveLike(Protocol):
    """What the runner needs of LiveTwin."""

    @property
    def state(self) -> LiveState: ...

    def say(self, text: str, source: UtteranceSource | str = ..., reply_to: str | None = ...,
            product_id: str | None = ..., lang: str | None = ..., *,
            intents: Sequence[str] = ..., priority: int = ...) -> str: ...

    def backlog(self) -> int: ...

    def subscribe(self, fn: Callable[[LiveEvent], None]) -> Callable[[], None]: ...


class ShowRunner:
    """Runs `director` on `live` (module doc)."""

    def __init__(self, director: Director, live: LiveLike, *,
                 clock: Callable[[], float] = time.monotonic, poll_s: float = POLL_S,
                 store: Store | None = None) -> None:
        self.director = director
        self.store = store  # where the show's position is kept (crash safety)
        self.saves = 0
        self.live = live
        self.clock = clock
        self.poll_s = poll_s
        self._lock = threading.RLock()
        self._ids: dict[str, str] = {}  # live line id -> director line id
        self._waiting: set[str] = set()  # queued in the twin, not yet sounding
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.queued = 0
        self._product: str | None = None

    def start(self) -> None:
        """Subscribe to the twin and start polling."""
        self._unsubscribe = self.live.subscribe(self.on_event)
        state = self.live.state
        with self._lock:
            self.director.on_air(state.on_air and not state.paused, self.clock())
        self._thread = threading.Thread(target=self._run, name="livetwin-show", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        """Whether the polling thread runs (for the watchdog; True before start)."""
        return self._thread is None or self._thread.is_alive() or self._stop.is_set()

    def revive(self) -> None:
        """Start the polling thread again after it died (the watchdog's restart); the
        director keeps its state."""
        if self.alive():
            return
        self._thread = threading.Thread(target=self._run, name="livetwin-show", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.step()
            except Exception:  # the show must go on; the next poll tries again
                log.exception("show step failed")

    def step(self) -> str | None:
        """One poll: queue the director's next line when none of its lines waits in the
        twin (chat answers may: the twin lets a show line through after two of them);
        the twin's line id, or None."""
        if self._waiting:
            return None
        with self._lock:
            now = self.clock()
            cue = self.director.next_line(now)
            if cue is None:
                return None
            u = cue.utterance
            product = self.director.current_product
            if product != self._product:  # the twin reports it (OBS lower third, chat)
                self._product = product
                set_product = getattr(self.live, "set_product", None)
                if set_product is not None:
                    set_product(product)
            try:
                live_id = self.live.say(u.text, u.source, reply_to=u.reply_to,
                                        product_id=u.product_id, lang=u.lang,
                                        intents=u.intents)
            except LivetwinError as exc:  # queue full, unsayable: the director moves on
                log.warning("show line %r not queued: %s", u.text[:60], exc)
                self.director.on_line_ended(now, u.id)
                return None
            self._ids[live_id] = u.id
            self._waiting.add(live_id)
            if len(self._ids) > MAX_MAP:
                self._ids.pop(next(iter(self._ids)))
            self.queued += 1
            return live_id

    def on_event(self, event: LiveEvent) -> None:
        """LiveTwin subscriber (its dispatcher thread)."""
        snapshot = None
        with self._lock:
            now = self.clock()
            if isinstance(event, LineStarted):
                self._waiting.discard(event.utterance.id)
                line_id = self._ids.get(event.utterance.id)
                self.director.on_line_started(now, line_id)
                if line_id is not None and self.store is not None:
                    snapshot = self.director.snapshot(now)
            elif isinstance(event, LineEnded | LineFailed):
                self._waiting.discard(event.id)
                self.director.on_line_ended(now, self._ids.pop(event.id, None))
            elif isinstance(event, StateChanged):
                self.director.on_air(event.state.on_air and not event.state.paused, now)
        if snapshot is not None:
            self.save(snapshot)

    def save(self, snapshot: dict[str, Any]) -> None:
        """Keep the director's position in the store (one transaction), so a restarted
        daemon goes on with the next line; a failing store costs only that."""
        if self.store is None:
            return
        try:
            self.store.save_state(STATE_KEY, snapshot)
            self.saves += 1
        except Exception:
            log.exception("could not keep the show's position in the store")

    def outlook(self, n: int = 5) -> dict[str, object]:
        """What the dashboard shows of the show (docs/dashboard.md): the audience tier
        and the profile in force (the spike's during a spike), the viewer count it
        last saw, the product being pitched and the next `n` lines."""
        with self._lock:
            d, now = self.director, self.clock()
            strategy = d.strategy
            return {"tier": strategy.tier.name, "min_viewers": strategy.tier.min_viewers,
                    "profile": strategy.profile(now).name, "spike": strategy.in_spike(now),
                    "viewers": strategy.count, "product_id": d.current_product,
                    "next": [{"text": t, "kind": k} for t, k in d.upcoming(n)]}

    # -------------------------------------------------------------- inputs

    def on_viewers(self, count: int) -> None:
        with self._lock:
            self.director.on_viewers(count, self.clock())

    def on_chat(self, kind: ChatKind, display_name: str | None) -> None:
        with self._lock:
            self.director.on_chat(kind, display_name, self.clock())

    def queue_answer(self, text: str, *, reply_to: str | None = None, purchase: bool = False,
                     product_id: str | None = None) -> None:
        with self._lock:
            self.director.queue_answer(text, self.clock(), reply_to=reply_to,
                                       purchase=purchase, product_id=product_id)

    def reload(self, items: Sequence[ShowItem]) -> None:
        """New catalog or approvals: the next pitch uses them."""
        with self._lock:
            self.director.set_items(items)


def show_items(store: Store, lang: str) -> list[ShowItem]:
    """The stored catalog with each product's on-air (newest approved) script in `lang`."""
    scripts = store.on_air(lang)
    return [ShowItem(i.product, i.weight, scripts.get(i.product.id)) for i in store.catalog()]


def open_show(live: LiveLike, store: Store, cfg: ShowConfig) -> ShowRunner:
    """A ShowRunner for `live` with the stored catalog and approved scripts, the
    templates and strategy of `cfg` (not started)."""
    from livetwin.show.director import DirectorSettings
    from livetwin.show.strategy import Strategy, load_strategy
    from livetwin.show.templates import load_templates

    templates = load_templates(cfg.lang, cfg.templates)
    director = Director(show_items(store, cfg.lang), templates,
                        Strategy(load_strategy(cfg.strategy)),
                        DirectorSettings(cfg.max_gap_s, cfg.repeat_window_s, cfg.lang))
    runner = ShowRunner(director, live, store=store)
    restore_show(runner, store)
    return runner


def restore_show(runner: ShowRunner, store: Store, wall: Callable[[], float] = time.time
                 ) -> bool:
    """Put the director back where the last daemon left it (its record in the store);
    False when there is none or it does not fit."""
    try:
        found = store.load_state(STATE_KEY)
    except Exception:
        log.exception("could not read the show's stored position; starting afresh")
        return False
    if found is None:
        return False
    state, written = found
    away = max(0.0, wall() - written)
    ok = runner.director.restore(state, runner.clock(), away)
    if ok:
        log.info("show: continuing where the last run stopped %.0f s ago (%d lines of the "
                 "pitch left)", away, len(state.get("plan", [])))
    return ok
