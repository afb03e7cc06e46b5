"""`LiveTwin`: the TickSource of docs/live.md. It owns the twin (frames), the queue of
lines to say and the show's small state (paused, on air, the product being sold).

    say(text) -> pending (priority queue) -> worker thread: normalise, TTS (fallbacks and
    timeout), mouth plan -> ready lines -> tick(i): the next ready line starts at tick i

`tick()` never waits on the worker: a slow or hanging TTS only delays when its line
starts. Events (line start/end, state, failures) are put on a queue inside `tick()` and
handed to subscribers by a dispatcher thread, so no subscriber runs on the tick thread.

Pause (operator `pause`, or OBS reporting that the twin is not in the program scene)
holds every line but operator lines: script, filler, greeting and answer lines wait in
the queue until the twin resumes and is on air again; the operator's own lines (`say`,
and the next_product / call_to_follow / point_to_cart buttons) still play, because the
operator asked for them. A line already sounding is never cut by a pause, only by
`skip_line`."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from livetwin.errors import InputError, LivetwinError
from livetwin.events import Product, SpeechAudio, Utterance, UtteranceSource
from livetwin.render.compositor import LOOKAHEAD
from livetwin.runtime.lines import PAUSE_S, LiveLine, Segment, segment, tick_start
from livetwin.runtime.live_events import (
    LineEnded,
    LineFailed,
    LineStarted,
    LiveEvent,
    LiveState,
    QueueFull,
    StateChanged,
    Subscriber,
)
from livetwin.runtime.operator_gestures import OperatorGestures
from livetwin.speech.base import TTSBackend, VoiceSettings

if TYPE_CHECKING:
    from livetwin.lipsync.person_onnx import PersonMouthModel
    from livetwin.lipsync.track import MouthRange
    from livetwin.render.canvas import Canvas, LabelPixels
    from livetwin.render.engine import TwinSource

log = logging.getLogger(__name__)
U8 = npt.NDArray[np.uint8]
I16 = npt.NDArray[np.int16]
F32 = npt.NDArray[np.float32]
SAMPLE_RATE = 48_000
GAP_S = 0.3  # silence between two lines
FADE_MS = 5.0  # audio fade-out when a line is skipped
MAX_PENDING = 64  # lines waiting for synthesis; more is refused (QueueFull)
MAX_LINE_CHARS = 2_000
TIMING_WINDOW = 2_000  # ticks kept for the tick-time and fps figures
# Lower sorts first: the operator's lines jump the queue, fillers go last.
SHOW_LINES = frozenset({UtteranceSource.SCRIPT, UtteranceSource.GREETING,
                        UtteranceSource.FILLER})  # the director's lines
ANSWERS_IN_A_ROW = 2  # chat answers that may start in a row while a show line waits
SOURCE_RANK = {UtteranceSource.OPERATOR: 0, UtteranceSource.ANSWER: 1,
               UtteranceSource.GREETING: 2, UtteranceSource.SCRIPT: 3,
               UtteranceSource.FILLER: 4}
NEXT_UP = {"en": "Next up: {name} for {price} {currency}.",
           "de": "Als Nächstes: {name} für {price} {currency}.",
           "zh": "接下来是{name}，只要{price} {currency}。"}  # noqa: RUF001


@dataclass
class _Playing:
    """The line sounding: segment `seg` started at tick `start`, or (start None) the
    line waits for segment `seg` and may go on at tick `earliest`."""

    line: LiveLine
    seg: int = 0
    start: int | None = None
    earliest: int = 0


@dataclass(frozen=True)
class LiveLines:
    """The fixed lines of the operator buttons (config `live:`)."""

    lang: str = "en"
    call_to_follow: str = "If you like what you see, hit follow so you don't miss the next deal!"
    point_to_cart: str = "The link is in the cart below: tap it to order while the price lasts."


def price_text(price: float) -> str:
    """99.0 -> '99', 12.5 -> '12.50'."""
    return f"{price:.0f}" if float(price).is_integer() else f"{price:.2f}"


class LiveTwin:
    """The TickSource of the live daemon (module doc). Call `start()` before ticking and
    `close()` at the end."""

    sample_rate = SAMPLE_RATE

    def __init__(self, twin: TwinSource, canvas: Canvas, tts: TTSBackend, *, fps: int,
                 mouth_range: MouthRange, model: PersonMouthModel | None = None,
                 products: Sequence[Product] = (), lines: LiveLines = LiveLines(),
                 avatar: str = "", wall: Callable[[], float] = time.time,
                 gesture_density: float | None = None,
                 voice: VoiceSettings | None = None) -> None:
        if SAMPLE_RATE % fps:
            raise ValueError(f"fps {fps} does not divide {SAMPLE_RATE}")
        self.twin = twin
        self.canvas = canvas
        self.size: tuple[int, int] = canvas.size
        self.fps = fps
        self.avatar = avatar
        self.products = list(products)
        self.lines = lines
        self._tts = tts
        self._voice = voice or VoiceSettings()  # pace and pitch of every line
        self._mouth = mouth_range
        self._model = model
        self._wall = wall
        self._gesture_density = gesture_density  # None: no gestures
        # how long before its media time a tick is pulled (set by the output): a line's
        # `at` is when it starts sounding, not when its first tick was made
        self.lead_s = 0.0
        self._closed = np.asarray(mouth_range.closed, np.float32)
        self._ids = itertools.count(1)
        self._seq = itertools.count()
        self._lock = threading.Lock()  # guards everything below; held only for bookkeeping
        self._pending: queue.PriorityQueue[tuple[int, int, int, Utterance | None]] = (
            queue.PriorityQueue())
        self._ready: list[LiveLine] = []  # sorted by key; each has a segment
        self._answers_in_row = 0  # chat answers started since the last show line
        self._synthesising: LiveLine | None = None
        self._playing: _Playing | None = None
        self._free_at = 0  # first tick a new line may start (GAP_S after the last one)
        self._skip = False
        self._state = LiveState()
        self._product_index = -1
        self._events: queue.SimpleQueue[LiveEvent | None] = queue.SimpleQueue()
        self._subscribers: list[Subscriber] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._label_next: LabelPixels | None = None  # shown from the next tick on
        self._operator = OperatorGestures(twin, fps)  # the operator's gesture
        self.tick_ms: deque[float] = deque(maxlen=TIMING_WINDOW)
        self._tick_at: deque[float] = deque(maxlen=TIMING_WINDOW)
        self.ticks = 0

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the synthesis worker and the event dispatcher."""
        for name, target in (("livetwin-tts", self._work), ("livetwin-events", self._dispatch)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def close(self, timeout: float = 1.0) -> None:
        """Stop the worker (cancelling a synthesis in progress) and the dispatcher."""
        self._closing = True
        self._pending.put((-1, -1, -1, None))
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(task.cancel)
        self._events.put(None)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    @property
    def tts(self) -> TTSBackend:
        """The voice (with its fallbacks), for the watchdog's health report."""
        return self._tts

    def dead_threads(self) -> list[str]:
        """Names of the worker/dispatcher threads that ended while the twin runs."""
        if self._closing:
            return []
        return [t.name for t in self._threads if not t.is_alive()]

    def revive(self) -> list[str]:
        """Start again the threads that ended (the watchdog's restart; the tick and the
        lines already queued are untouched); the names restarted."""
        targets = {"livetwin-tts": self._work, "livetwin-events": self._dispatch}
        revived = []
        for i, t in enumerate(self._threads):
            if not t.is_alive() and not self._closing and t.name in targets:
                with self._lock:
                    self._synthesising = None
                nt = threading.Thread(target=targets[t.name], name=t.name, daemon=True)
                nt.start()
                self._threads[i] = nt
                revived.append(t.name)
        return revived

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call `fn` (on the dispatcher thread) for every event; returns the unsubscriber."""
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._subscribers.remove(fn)

        return unsubscribe

    # -------------------------------------------------------------- lines

    def say(self, text: str, source: UtteranceSource | str = UtteranceSource.OPERATOR,
            reply_to: str | None = None, product_id: str | None = None,
            lang: str | None = None, *, intents: Sequence[str] = (),
            priority: int = 0) -> str:
        """Queue a line; returns its id. InputError when there is nothing to say,
        QueueFull when too many lines wait. `intents` (follow, cart, price, ...) travel
        with the line to the gesture planner; a higher `priority` goes first among
        lines of the same source."""
        from livetwin.speech.normalize import canonical_lang, normalize

        source = UtteranceSource(source)
        lang = canonical_lang(lang or self.lines.lang)
        if len(text) > MAX_LINE_CHARS:
            raise InputError(f"the line is longer than {MAX_LINE_CHARS} characters; split it.")
        if not normalize(text, lang):
            raise InputError("the line has nothing to say (empty once markup, emoji and "
                             "symbols are removed).")
        if self._pending.qsize() >= MAX_PENDING:
            raise QueueFull(f"{MAX_PENDING} lines already wait to be spoken; try again later.")
        line_id = str(next(self._ids))
        utt = Utterance(text=text, source=source, product_id=product_id, reply_to=reply_to,
                        priority=priority, intents=tuple(intents), lang=lang, id=line_id)
        self._pending.put((*self._key(utt), utt))
        return line_id

    def _key(self, utt: Utterance) -> tuple[int, int, int]:
        return (SOURCE_RANK[utt.source], -utt.priority, next(self._seq))

    def _work(self) -> None:
        """The synthesis worker: one line at a time, in priority order."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            while not self._closing:
                *key, utt = self._pending.get()
                if utt is None:
                    break
                line = LiveLine(utt, (key[0], key[1], key[2]))
                try:
                    loop.run_until_complete(self._synthesise(line))
                except asyncio.CancelledError:
                    if self._closing:
                        break
                    # the line was skipped: on to the next one
                except LivetwinError as exc:
                    self._fail(line, str(exc))
                except Exception as exc:  # a bug in one line must not end the show
                    log.exception("line %s failed", utt.id)
                    self._fail(line, f"internal error: {type(exc).__name__}: {exc}")
                finally:
                    with self._lock:
                        line.complete = True
                        self._synthesising = None
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.wait_for(self._tts.aclose(), 0.5))
            loop.close()

    async def _synthesise(self, line: LiveLine) -> None:
        """Sentence by sentence into `line.segments`; the line is ready to start with its
        first segment."""
        from livetwin.lipsync.track import plan_mouth
        from livetwin.speech.normalize import normalize

        utt = line.utterance
        spoken = normalize(utt.text, utt.lang)
        with self._lock:
            self._synthesising = line
        stream = self._tts.stream(spoken, lang=utt.lang, settings=self._voice)
        self._task = asyncio.current_task()
        try:
            async for item in stream:
                if not len(item.pcm):
                    continue
                seg = segment(item, self.fps, SAMPLE_RATE, self._closed,
                              lambda s: plan_mouth(s, self.fps, self._mouth, self._model))
                seg = replace(seg, gestures=self._plan_gestures(item, utt))
                with self._lock:
                    if line.cancelled:
                        return
                    line.segments.append(seg)
                    if len(line.segments) == 1:
                        self._ready.append(line)
                        self._ready.sort(key=lambda r: r.key)
        finally:
            self._task = None
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
        if not line.segments:
            raise InputError("the voice produced no audio for this line.")

    def _plan_gestures(self, item: SpeechAudio, utt: Utterance) -> Any:
        """The gestures of one sentence on its own frames (docs/gestures.md): planned from
        the voice's word timings and the line's intents; None without either, or when
        gestures are off. A failure here costs the gestures, never the line."""
        if self._gesture_density is None or not item.words:
            return None
        from livetwin.render.head_motion import plan_track

        try:
            return plan_track([(0.0, item.words)], utt.lang,
                              set(getattr(self.twin, "gestures", ())), self.fps,
                              density=self._gesture_density, intents=utt.intents)
        except Exception:
            log.exception("gesture planning failed for line %s", utt.id)
            return None

    def _fail(self, line: LiveLine, message: str) -> None:
        utt = line.utterance
        part = "partly " if line.segments else ""
        log.warning("line %s (%r) was %snot spoken: %s", utt.id, utt.text[:60], part, message)
        self._events.put(LineFailed(utt.id, f"{part}{message}" if part else message))

    # -------------------------------------------------------------- the tick

    def tick(self, index: int) -> tuple[U8, I16]:
        """Frame and audio of tick `index` (docs/live.md); never waits on synthesis."""
        t0 = time.perf_counter()
        a, b = tick_start(index, self.fps, SAMPLE_RATE), tick_start(index + 1, self.fps,
                                                                    SAMPLE_RATE)
        pcm = np.zeros(b - a, np.int16)
        target, speaking, upcoming, gestures = self._closed, False, None, None
        with self._lock:
            sounding, k, cut = self._advance(index)
        if sounding is not None:
            chunk = sounding.audio[k * len(pcm):(k + 1) * len(pcm)]
            pcm[:len(chunk)] = chunk
            if cut:
                pcm = _fade_out(pcm, round(FADE_MS * SAMPLE_RATE / 1000))
            else:
                target, speaking = sounding.targets[k], bool(sounding.speaking[k])
                upcoming = sounding.targets[k + 1:k + 1 + LOOKAHEAD]
                gestures = sounding.gestures
        manual, km = self._operator.at(index)
        if gestures is not None:
            gestures.before(k, self.twin)
        if manual is not None:
            manual.track.before(km, self.twin)
        rgb = self.twin.frame(target, speaking, upcoming)
        if gestures is not None:
            rgb = self._gesture_frame(gestures, k, rgb)
        if manual is not None:
            rgb = self._gesture_frame(manual.track, km, rgb)
        with self._lock:
            label, self._label_next = self._label_next, None
        if label is not None:  # swapped here: the tick thread is the one that composes
            self.canvas.use_label(label)
        frame = self.canvas.compose(rgb)
        self.ticks += 1
        self._tick_at.append(time.monotonic())
        self.tick_ms.append((time.perf_counter() - t0) * 1e3)
        return frame, pcm

    def _gesture_frame(self, gestures: Any, k: int, rgb: U8) -> U8:
        """Frame k of a segment with its head motion and arrows; the plain frame if the
        gesture renderer fails (the picture must keep coming)."""
        from livetwin.render.head_motion import twin_face

        try:
            out, _ = gestures.after(k, rgb, twin_face(self.twin))
            return np.asarray(out)
        except Exception:
            log.exception("gesture rendering failed; the frame goes out without it")
            return rgb

    def _advance(self, index: int) -> tuple[Segment | None, int, bool]:
        """Start, continue, cut or end lines at tick `index`: (the segment sounding, its
        frame, cut now?)."""
        p = self._playing
        skip, self._skip = self._skip, False
        if p is not None and skip:
            self._end(p, index, skipped=True)
            if p.start is None:
                return None, 0, True
            return p.line.segments[p.seg], index - p.start, True
        if p is None and index >= self._free_at:
            p = self._start_next(index)
        if p is None:
            return None, 0, False
        if p.start is not None and index - p.start >= p.line.segments[p.seg].frames:
            p.seg, p.start, p.earliest = p.seg + 1, None, index + round(PAUSE_S * self.fps)
        if p.start is None:
            if p.seg < len(p.line.segments):
                if index < p.earliest:
                    return None, 0, False
                p.start = index
            elif p.line.complete:
                self._end(p, index, skipped=False)
                return None, 0, False
            else:
                return None, 0, False  # the voice is slower than the speech: wait
        return p.line.segments[p.seg], index - p.start, False

    def _end(self, p: _Playing, index: int, *, skipped: bool) -> None:
        self._playing = None
        if skipped:
            p.line.cancelled = True
            if self._synthesising is p.line:  # stop waiting on the voice for the rest
                loop, task = self._loop, self._task
                if loop is not None and task is not None:
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(task.cancel)
        self._free_at = index + (1 if skipped else 0) + round(GAP_S * self.fps)
        self._events.put(LineEnded(p.line.utterance.id, skipped, index))

    def _start_next(self, index: int) -> _Playing | None:
        """The next ready line in key order, except that after ANSWERS_IN_A_ROW chat
        answers a waiting show line goes first (under steady chat the answers would
        otherwise crowd the pitch out for good)."""
        held = self._state.paused or not self._state.on_air
        order = [i for i, line in enumerate(self._ready)
                 if not held or line.utterance.source is UtteranceSource.OPERATOR]
        if not order:
            return None
        pick = order[0]
        if (self._answers_in_row >= ANSWERS_IN_A_ROW
                and self._ready[pick].utterance.source is UtteranceSource.ANSWER):
            pick = next((i for i in order if self._ready[i].utterance.source in SHOW_LINES),
                        pick)
        line = self._ready.pop(pick)
        source = line.utterance.source
        if source is UtteranceSource.ANSWER:
            self._answers_in_row += 1
        elif source in SHOW_LINES:
            self._answers_in_row = 0
        self._playing = _Playing(line, 0, None, index)
        self._events.put(LineStarted(line.utterance, self._wall() + self.lead_s, index))
        return self._playing

    # -------------------------------------------------------------- the operator's gestures

    def gesture_names(self) -> list[str]:
        """The library gestures this avatar can show (OperatorGestures.names)."""
        return self._operator.names()

    def play_gesture(self, name: str) -> float:
        """Show gesture `name` now, speaking or not (it replaces one the operator asked
        for before and still shows); its duration in seconds. InputError for a name
        this avatar cannot show."""
        return self._operator.play(name)

    # -------------------------------------------------------------- the AI label

    @property
    def label(self) -> str | None:
        """The AI-disclosure label text shown (or about to be, at the next tick)."""
        nxt = self._label_next
        return nxt.text if nxt is not None else self.canvas.label

    def set_label(self, text: str) -> str:
        """Show `text` as the AI-disclosure label from the next frame on (the label
        cannot be turned off here); the text shown. InputError when it is empty or
        does not fit the canvas."""
        try:
            label = self.canvas.render_label(text)
        except ValueError as exc:
            raise InputError(f"{exc}.") from None
        with self._lock:
            self._label_next = label
        return label.text

    # -------------------------------------------------------------- controls

    @property
    def state(self) -> LiveState:
        return self._state

    def _set_state(self, **changes: object) -> None:
        with self._lock:
            new = replace(self._state, **changes)  # type: ignore[arg-type]
            if new == self._state:
                return
            self._state = new
        self._events.put(StateChanged(new))

    def pause(self) -> None:
        """Hold every line but the operator's (module doc)."""
        self._set_state(paused=True)

    def resume(self) -> None:
        self._set_state(paused=False)

    def toggle_pause(self) -> None:
        self._set_state(paused=not self._state.paused)

    def skip_line(self) -> bool:
        """Cut the line sounding now at the next tick (audio faded out); False if none."""
        with self._lock:
            self._skip = self._playing is not None
            return self._skip

    def next_product(self) -> str:
        """Move to the next catalog product and announce it; the line's id."""
        if not self.products:
            raise InputError("the catalog is empty; start `livetwin serve --catalog FILE`.")
        with self._lock:
            self._product_index = (self._product_index + 1) % len(self.products)
            product = self.products[self._product_index]
        self._set_state(product=product)
        template = NEXT_UP.get(self.lines.lang, NEXT_UP["en"])
        text = template.format(name=product.name, price=price_text(product.price),
                               currency=product.currency)
        return self.say(text, UtteranceSource.OPERATOR, product_id=product.id)

    def set_product(self, product_id: str | None) -> None:
        """The product being sold now (the show director's choice): reported to clients
        (OBS's "now selling" lower third) and used by chat to resolve "how much?"."""
        product = next((p for p in self.products if p.id == product_id), None)
        if product is not None:
            with self._lock:
                self._product_index = self.products.index(product)
        self._set_state(product=product)

    def call_to_follow(self) -> str:
        return self.say(self.lines.call_to_follow, UtteranceSource.OPERATOR)

    def point_to_cart(self) -> str:
        product = self._state.product
        return self.say(self.lines.point_to_cart, UtteranceSource.OPERATOR,
                        product_id=product.id if product else None)

    def obs_event(self, event: str, *, twin_on_air: bool | None = None) -> None:
        """What OBS reported (docs/live.md): the twin pauses its pitch while not on air."""
        if event == "scene_changed" and twin_on_air is not None:
            self._set_state(on_air=twin_on_air)
        elif event in ("streaming_started", "streaming_stopped"):
            self._set_state(streaming=event == "streaming_started")
        elif event in ("recording_started", "recording_stopped"):
            self._set_state(recording=event == "recording_started")

    def set_chat_target(self, platform: str, channel: str) -> None:
        """Where chat should come from (stored and reported; the connector comes later)."""
        self._set_state(chat_target=None if platform == "none" else (platform, channel))

    def backlog(self) -> int:
        """Lines accepted but not yet sounding (waiting, synthesising or ready)."""
        with self._lock:
            return self._pending.qsize() + len(self._ready) + (self._synthesising is not None)

    # -------------------------------------------------------------- figures

    def stats(self) -> dict[str, float | int | str | None]:
        """Ticks, measured fps, tick time p50/p99/max (ms) and the queue lengths."""
        at, ms = list(self._tick_at), np.asarray(self.tick_ms)
        fps = (len(at) - 1) / (at[-1] - at[0]) if len(at) > 1 and at[-1] > at[0] else 0.0
        with self._lock:
            ready, current, synth = len(self._ready), self._playing, self._synthesising
        return {"ticks": self.ticks, "fps": round(fps, 2),
                "tick_ms_p50": float(np.percentile(ms, 50)) if len(ms) else 0.0,
                "tick_ms_p99": float(np.percentile(ms, 99)) if len(ms) else 0.0,
                "tick_ms_max": float(ms.max()) if len(ms) else 0.0,
                "pending": self._pending.qsize(), "ready": ready,
                "synthesising": synth.utterance.id if synth else None,
                "gesture": self._operator.current,
                "speaking": current.line.utterance.id if current else None}

    def _dispatch(self) -> None:
        while True:
            ev = self._events.get()
            if ev is None:
                return
            with self._lock:
                subs = list(self._subscribers)
            for fn in subs:
                try:
                    fn(ev)
                except Exception:
                    log.exception("event subscriber failed")


def _fade_out(pcm: I16, n: int) -> I16:
    """`pcm` faded linearly to zero over its first `n` samples, silent after."""
    out = np.zeros_like(pcm)
    m = min(n, len(pcm))
    out[:m] = (pcm[:m].astype(np.float32) * np.linspace(1.0, 0.0, m, dtype=np.float32)
               ).astype(np.int16)
    return out
