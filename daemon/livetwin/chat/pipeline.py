"""The live-chat stage: ChatEvent in, approved lines out through `say(...)`.

    submit(event)      (API thread, cheap)  per-user rate limit -> duplicate collapse ->
                       inbound gate -> what to do -> a reply job on the bounded queue
    worker thread      most urgent job -> outbound gate (`check_line`) -> say(...)

Only catalog answers and the fixed lines of general.yaml are ever spoken; the one slot
filled from chat is a cleaned user name. Every decision is logged (`logging`, logger
`livetwin.chat`) with its reason and kept in a bounded in-memory log (`decisions`).
Questions the answer database cannot answer go to the operator queue (`unanswered`),
never to a guess. The worker keeps at most `ahead` of its lines waiting in the twin, so
the queue's priorities (purchase questions first) still decide what is said next and a
flood can only delay lines, never the picture.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from livetwin.chat.answers import AnswerDB, fixed_line, general
from livetwin.chat.flow import Deduper, KeyedBuckets, ReplyQueue, TokenBucket
from livetwin.chat.gate import Category, Grounding, check_line, classify, looks_like_question
from livetwin.chat.names import clean_name
from livetwin.chat.text import detect_lang, fold
from livetwin.events import ChatEvent, ChatKind, Product, UtteranceSource

log = logging.getLogger("livetwin.chat")
Say = Callable[..., str]

PRIORITY = {"disclose": 3, "purchase": 2, "answer": 1, "deflect": 0, "thanks": -1,
            "greeting": -1, "join": -2}


@dataclass(frozen=True)
class ChatSettings:
    """Flow-control knobs (config `chat:`)."""

    threshold: float = 0.75
    user_interval_s: float = 4.0  # one message per user per this, after a burst
    user_burst: int = 3
    dedupe_window_s: float = 20.0
    max_age_s: float = 45.0  # a reply not started by then is dropped
    queue_size: int = 64
    deflect_interval_s: float = 8.0  # at most one neutral line per this
    greeting_interval_s: float = 5.0  # at most one greeting/thanks per this
    greet_again_s: float = 600.0  # a user is greeted once per this
    ahead: int = 2  # chat lines waiting in the twin at most


@dataclass(frozen=True)
class Decision:
    """What the pipeline did with one chat event, and why."""

    chat_id: str
    action: str  # answer | disclose | deflect | greet | thanks | ignore | operator
    reason: str
    category: str = ""
    at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, object]:
        return {"chat_id": self.chat_id, "action": self.action, "reason": self.reason,
                "category": self.category, "at": self.at}


@dataclass(frozen=True)
class _Job:
    chat_id: str
    kind: str
    parts: tuple[tuple[str | None, str, str], ...]  # (product id, text, lang)
    priority: int = 0


class ChatPipeline:
    """The chat stage (module doc). `say` is `LiveTwin.say`; `current_product` gives the
    product on screen; `backlog` the number of lines waiting in the twin."""

    def __init__(self, products: Sequence[Product], say: Say,
                 current_product: Callable[[], Product | None] = lambda: None, *,
                 settings: ChatSettings = ChatSettings(),
                 backlog: Callable[[], int] = lambda: 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.say, self.clock = settings, say, clock
        self.current_product, self.backlog = current_product, backlog
        self.set_products(products)
        # joins, follows and gifts handed to the show director instead (it greets by name
        # or the room as its audience strategy says); None: thanked here
        self.social: Callable[[ChatKind, str | None], None] | None = None
        s = settings
        self._users = KeyedBuckets(1.0 / s.user_interval_s, s.user_burst)
        self._greeted = KeyedBuckets(1.0 / s.greet_again_s, 1)
        self._deflect = TokenBucket.every(s.deflect_interval_s)
        self._greet = TokenBucket.every(s.greeting_interval_s, 2)
        self._dupes = Deduper(s.dedupe_window_s)
        self.queue: ReplyQueue[_Job] = ReplyQueue(s.queue_size, clock)
        self.decisions: deque[Decision] = deque(maxlen=2000)
        self.unanswered: deque[dict[str, object]] = deque(maxlen=200)
        self._recent_chat: deque[str] = deque(maxlen=50)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.spoken = 0

    # ---------------------------------------------------------------- inbound

    def submit(self, event: ChatEvent) -> Decision:
        """Decide what to do with `event` (module doc); the decision is logged."""
        with self._lock:
            decision, job, priority = self._decide(event)
        if job is not None:
            job = dataclasses.replace(job, priority=priority)
        if job is not None and not self.queue.put(job, priority=priority,
                                                  max_age_s=self.settings.max_age_s):
            decision = Decision(event.id, "ignore", "reply queue full of more urgent replies",
                                decision.category)
        self._record(decision)
        return decision

    def set_products(self, products: Sequence[Product]) -> None:
        """(Re)build the answer database and the grounding of spoken replies from the
        catalog (at start, and when the dashboard changes a product)."""
        answers = AnswerDB(products, threshold=self.settings.threshold)
        fixed = [str(t) for line in general()["lines"].values() for t in line.values()]
        fixed += [str(t) for e in general().get("entries", []) for t in e["a"].values()]
        own: dict[str | None, list[str]] = {}
        for e in answers.entries:
            own.setdefault(e.product_id, []).extend(e.texts.values())
        every = [t for texts in own.values() for t in texts]
        grounding: dict[str | None, Grounding] = {
            None: Grounding.build(products, fixed + every)}
        for p in products:
            grounding[p.id] = Grounding.build([p], fixed + own.get(p.id, []))
        self.answers, self._grounding = answers, grounding  # swapped whole

    def _decide(self, e: ChatEvent) -> tuple[Decision, _Job | None, int]:
        now = self.clock()
        user_key = f"{e.platform}:{e.user}"
        if e.kind in (ChatKind.JOIN, ChatKind.FOLLOW, ChatKind.GIFT, ChatKind.LIKE):
            return self._social(e, user_key, now)
        if not self._users.take(user_key, now):
            return Decision(e.id, "ignore", "user rate limit", "flood"), None, 0
        key = fold(e.text)[:200]
        earlier = self._dupes.seen(key, now, e.id)
        if earlier is not None:
            return Decision(e.id, "ignore", f"duplicate of {earlier}", "flood"), None, 0
        verdict = classify(e.text)
        cat, lang = verdict.category, detect_lang(e.text)
        self._recent_chat.append(e.text[:400])
        if cat in (Category.SPAM, Category.ABUSE, Category.EMPTY):
            return Decision(e.id, "ignore", verdict.reason, cat), None, 0
        if cat is Category.IDENTITY:
            job = _Job(e.id, "disclose", ((None, fixed_line("disclose", lang), lang),))
            return (Decision(e.id, "disclose", verdict.reason, cat), job,
                    PRIORITY["disclose"])
        if cat is Category.GREETING:
            return self._greeting(e, user_key, now, lang, verdict.reason)
        if cat is not Category.QUESTION:
            line = {"pii": "pii", "politics": "bait", "competitor": "bait"}.get(cat, "deflect")
            if not self._deflect.take(now):
                return (Decision(e.id, "deflect", f"{verdict.reason}; silent (neutral line "
                                 "said recently)", cat), None, 0)
            job = _Job(e.id, "deflect", ((None, fixed_line(line, lang), lang),))
            return Decision(e.id, "deflect", verdict.reason, cat), job, PRIORITY["deflect"]
        current = self.current_product()
        answer = self.answers.answer(e.text, current=current.id if current else None,
                                     lang=lang)
        if answer is None:
            if not looks_like_question(e.text):
                return Decision(e.id, "ignore", "a remark, not a question", cat), None, 0
            self.unanswered.append({"chat_id": e.id, "platform": e.platform, "user": e.user,
                                    "text": e.text[:400], "at": time.time()})
            return (Decision(e.id, "operator", "no confident answer; sent to the operator "
                             "queue", cat), None, 0)
        kind = "purchase" if verdict.purchase else "answer"
        job = _Job(e.id, "answer", answer.parts)
        return (Decision(e.id, "answer", f"{answer.reason} (score {answer.score:.2f})", cat),
                job, PRIORITY[kind])

    def _greeting(self, e: ChatEvent, user_key: str, now: float, lang: str,
                  why: str) -> tuple[Decision, _Job | None, int]:
        name = clean_name(e.user)
        if name is None:
            return Decision(e.id, "ignore", "greeting, but the user name cannot be read "
                            "aloud", "greeting"), None, 0
        if not self._greeted.take(user_key, now) or not self._greet.take(now):
            return Decision(e.id, "ignore", "greeting rate limit", "greeting"), None, 0
        job = _Job(e.id, "greeting", ((None, fixed_line("greeting", lang, name=name), lang),))
        return Decision(e.id, "greet", f"{why}; name read as {name!r}", "greeting"), job, \
            PRIORITY["greeting"]

    def _social(self, e: ChatEvent, user_key: str,
                now: float) -> tuple[Decision, _Job | None, int]:
        if e.kind is ChatKind.LIKE:
            return Decision(e.id, "ignore", "likes are not spoken", str(e.kind)), None, 0
        if self.social is not None:
            name = clean_name(e.user)
            self.social(e.kind, name)
            return (Decision(e.id, "show", f"{e.kind} by {name!r}: greeted or thanked by the "
                             "show, by name or to the room as the audience size asks",
                             str(e.kind)), None, 0)
        if e.kind is ChatKind.JOIN:
            return self._greeting(e, user_key, now, "en", "joined")
        name = clean_name(e.user)
        if name is None or not self._greet.take(now):
            return (Decision(e.id, "ignore", f"{e.kind}: name unreadable or thanks rate limit",
                             str(e.kind)), None, 0)
        key = "gift" if e.kind is ChatKind.GIFT else "follow"
        job = _Job(e.id, "thanks", ((None, fixed_line(key, "en", name=name), "en"),))
        return Decision(e.id, "thanks", f"{e.kind} by {name!r}", str(e.kind)), job, \
            PRIORITY["thanks"]

    def _record(self, d: Decision) -> None:
        self.decisions.append(d)
        log.info("chat %s: %s (%s) - %s", d.chat_id, d.action, d.category, d.reason)

    # ---------------------------------------------------------------- worker

    def start(self) -> None:
        """Start the worker thread that speaks queued replies."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="chat", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self.queue.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def _work(self) -> None:
        while not self._stop.is_set():
            while self.backlog() >= self.settings.ahead and not self._stop.is_set():
                time.sleep(0.02)
            job = self.queue.get(timeout=0.5)
            if job is not None:
                self.speak(job)

    def speak(self, job: _Job) -> list[str]:
        """Check every part of `job` and say those that pass; the line ids."""
        from livetwin.errors import InputError
        from livetwin.runtime.live_events import QueueFull

        ids = []
        source = UtteranceSource.GREETING if job.kind in ("greeting", "thanks") \
            else UtteranceSource.ANSWER
        chat = [*self._recent_chat]
        for pid, text, lang in job.parts:
            check = check_line(text, self._grounding.get(pid, self._grounding[None]),
                               chat=chat)
            if not check.ok:
                self._record(Decision(job.chat_id, "blocked", check.reason, "outbound"))
                continue
            try:
                ids.append(self.say(text, source, reply_to=job.chat_id, product_id=pid,
                                    lang=lang, intents=("answer",) if pid else (),
                                    priority=job.priority))
            except (QueueFull, InputError) as exc:
                self._record(Decision(job.chat_id, "dropped", str(exc), "outbound"))
        self.spoken += len(ids)
        return ids

    def stats(self) -> dict[str, int]:
        return {"queued": len(self.queue), "dropped": self.queue.dropped,
                "expired": self.queue.expired, "spoken": self.spoken,
                "unanswered": len(self.unanswered), "users": len(self._users)}
