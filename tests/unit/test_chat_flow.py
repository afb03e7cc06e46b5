"""Flow control on a fake clock: token buckets, duplicate collapsing, and the bounded
priority queue with expiry (a flood never grows it)."""

from __future__ import annotations

from livetwin.chat.flow import Deduper, KeyedBuckets, ReplyQueue, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_burst_then_rate() -> None:
    b = TokenBucket.every(2.0, burst=3)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not b.take(1.9)
    assert b.take(2.0)
    assert TokenBucket.every(0).take(0.0) and TokenBucket.every(0).take(0.0)


def test_keyed_buckets_are_per_key_and_bounded() -> None:
    kb = KeyedBuckets(rate=0.1, burst=1, max_keys=100)
    assert kb.take("a", 0.0) and not kb.take("a", 0.1) and kb.take("b", 0.1)
    for i in range(10_000):
        kb.take(f"u{i}", 1.0)
    assert len(kb) == 100


def test_deduper_collapses_within_window() -> None:
    d = Deduper(window_s=10, max_keys=50)
    assert d.seen("how much", 0.0, "c1") is None
    assert d.seen("how much", 5.0, "c2") == "c1"
    assert d.seen("how much", 20.0, "c3") is None
    for i in range(1000):
        d.seen(f"k{i}", 21.0, f"c{i}")
    assert len(d) == 50


def test_queue_pops_most_urgent_first_and_drops_stale() -> None:
    clock = FakeClock()
    q: ReplyQueue[str] = ReplyQueue(size=10, clock=clock)
    q.put("greeting", priority=-1, max_age_s=30)
    q.put("answer", priority=1, max_age_s=30)
    q.put("purchase", priority=2, max_age_s=30)
    q.put("old", priority=5, max_age_s=1)
    clock.now = 2.0
    assert [q.get(0), q.get(0), q.get(0), q.get(0)] == ["purchase", "answer", "greeting", None]
    assert q.expired == 1


def test_full_queue_keeps_the_urgent_jobs() -> None:
    q: ReplyQueue[int] = ReplyQueue(size=5, clock=FakeClock())
    for i in range(1000):
        q.put(i, priority=0, max_age_s=30)
    assert len(q) == 5
    assert q.put(-1, priority=2, max_age_s=30)  # a purchase question still gets in
    assert len(q) == 5 and q.get(0) == -1
    assert q.dropped == 996
