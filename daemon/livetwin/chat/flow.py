"""Flow control of live chat: rate limits, duplicate collapsing and the reply queue.

Everything here is bounded, so a flood costs CPU for a moment but never memory: the
per-user buckets and the duplicate window are LRU maps of at most `MAX_KEYS` entries,
and the reply queue keeps at most `size` jobs, dropping the least urgent (then the
oldest) when full. Jobs older than their `max_age_s` are dropped when they come up:
answering a question from a minute ago is worse than not answering. Time is injected
(`clock`) so tests run a simulated minute in a millisecond.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

MAX_KEYS = 20_000
Clock = Callable[[], float]
T = TypeVar("T")


@dataclass
class TokenBucket:
    """`burst` events at once, then one every 1/`rate` seconds."""

    rate: float
    burst: float
    tokens: float = -1.0
    at: float = 0.0

    @classmethod
    def every(cls, interval_s: float, burst: float = 1) -> TokenBucket:
        """One event per `interval_s` after a burst; 0 = no limit."""
        return cls(math.inf if interval_s <= 0 else 1.0 / interval_s, burst)

    def take(self, now: float) -> bool:
        if self.rate == math.inf:
            return True
        if self.tokens < 0:
            self.tokens, self.at = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class KeyedBuckets:
    """One token bucket per key (user, message kind), LRU-bounded."""

    def __init__(self, rate: float, burst: float, max_keys: int = MAX_KEYS) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, now: float) -> bool:
        bucket = self._buckets.pop(key, None) or TokenBucket(self.rate, self.burst)
        self._buckets[key] = bucket
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)


class Deduper:
    """Says whether a key was seen within `window_s` (then the message is collapsed)."""

    def __init__(self, window_s: float, max_keys: int = MAX_KEYS) -> None:
        self.window_s, self.max_keys = window_s, max_keys
        self._seen: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def seen(self, key: str, now: float, ident: str) -> str | None:
        """The id of the earlier message with this key within the window, or None (and
        the key is remembered as `ident`)."""
        old = self._seen.get(key)
        if old is not None and now - old[0] <= self.window_s:
            return old[1]
        self._seen.pop(key, None)
        self._seen[key] = (now, ident)
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)
        return None

    def __len__(self) -> int:
        return len(self._seen)


@dataclass(order=True)
class _Item(Generic[T]):
    rank: tuple[int, int]  # (-priority, seq): lower pops first
    expires: float = field(compare=False)
    job: T = field(compare=False)


class ReplyQueue(Generic[T]):
    """A bounded, thread-safe priority queue of reply jobs with expiry (module doc)."""

    def __init__(self, size: int, clock: Clock = time.monotonic) -> None:
        self.size, self.clock = size, clock
        self._heap: list[_Item[T]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self.dropped = 0
        self.expired = 0
        self._closed = False

    def put(self, job: T, *, priority: int, max_age_s: float) -> bool:
        """Queue `job`; False when the queue is full of more urgent jobs."""
        item = _Item((-priority, next(self._seq)), self.clock() + max_age_s, job)
        with self._cond:
            if len(self._heap) >= self.size:
                worst = max(self._heap)
                if worst.rank[0] <= item.rank[0]:
                    self.dropped += 1
                    return False  # everything queued is at least as urgent
                self._heap.remove(worst)
                heapq.heapify(self._heap)
                self.dropped += 1
            heapq.heappush(self._heap, item)
            self._cond.notify()
        return True

    def get(self, timeout: float | None = None) -> T | None:
        """The most urgent job that has not expired; None on timeout or close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                now = self.clock()
                while self._heap:
                    item = heapq.heappop(self._heap)
                    if item.expires >= now:
                        return item.job
                    self.expired += 1
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
        return None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._heap)
