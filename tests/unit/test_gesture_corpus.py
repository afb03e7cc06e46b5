"""The planner over the labelled sales corpus (tests/data/gesture_corpus.yaml, 200+
sentences in en/zh/de): every follow request gets an upward gesture (or its cue) on its
word, every cart/link mention a downward one, nothing is asked where the sentence makes
no such request, zero rule violations, and the stroke-to-word timing error (run with -s
to see the figures; target: within 100 ms)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from livetwin.events import WordTiming
from livetwin.gesture.library import default_library
from livetwin.gesture.planner import GesturePlanner, Plan, check_plan, stroke_error
from livetwin.speech.normalize import normalize

CORPUS = Path(__file__).resolve().parents[1] / "data" / "gesture_corpus.yaml"
LIB = default_library()
CLIPLESS = frozenset(g.id for g in LIB if g.procedural)
TARGET_S = 0.100


@dataclass(frozen=True)
class Sentence:
    lang: str
    text: str
    follow: str | None
    cart: str | None
    intents: tuple[str, ...]


def _corpus() -> list[Sentence]:
    raw = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))["sentences"]
    return [Sentence(s["lang"], s["text"], s["follow"], s["cart"], tuple(s.get("intents", ())))
            for s in raw]


SENTENCES = _corpus()


def _word_index(plan: Plan, label: str) -> list[int]:
    """The word(s) of `label` in the plan's words (zh: every character of the label)."""
    if plan.lang == "zh":
        joined, owner = "", []
        for i, w in enumerate(plan.words):
            joined += w.word
            owner += [i] * len(w.word)
        at = joined.find(label)
        assert at >= 0, f"label {label!r} not in {joined!r}"
        return owner[at:at + len(label)]
    hits = [i for i, w in enumerate(plan.words) if w.word.lower().strip(".,!?") == label]
    assert hits, f"label {label!r} not in {[w.word for w in plan.words]}"
    return hits[:1]


def _plan(planner: GesturePlanner, s: Sentence, espeak: bool = False) -> Plan:
    spoken = normalize(s.text, s.lang)
    words = _espeak_words(spoken, s.lang) if espeak else None
    return planner.plan(spoken, lang=s.lang, intents=s.intents, words=words)


def _espeak_words(text: str, lang: str) -> tuple[WordTiming, ...]:
    from livetwin.cli_gestures import _espeak_words as words

    return words(text, lang, "")


def test_the_corpus_is_big_and_labelled() -> None:
    langs = {lang: sum(s.lang == lang for s in SENTENCES) for lang in ("en", "zh", "de")}
    assert len(SENTENCES) >= 200 and min(langs.values()) >= 60, langs
    assert sum(s.follow is not None for s in SENTENCES) >= 60
    assert sum(s.cart is not None for s in SENTENCES) >= 60
    assert sum(s.follow is None and s.cart is None for s in SENTENCES) >= 60


@pytest.mark.parametrize(("clipless", "espeak"), [
    (False, False), (True, False), (False, True)],
    ids=["all-clips", "clip-less", "all-clips-espeak-timings"])
def test_follow_and_cart_requests_get_their_gesture_on_the_word(clipless: bool,
                                                                espeak: bool) -> None:
    planner = GesturePlanner(LIB, available=CLIPLESS if clipless else None)
    errors: dict[str, list[float]] = {"follow": [], "cart": [], "other": []}
    onsets: list[float] = []  # stroke - word start, every cue on a word
    answered = {"follow": 0, "cart": 0}
    violations: list[str] = []
    misses: list[str] = []
    deictic = 0
    for s in SENTENCES:
        plan = _plan(planner, s, espeak)
        violations += [f"{s.text}: {v}" for v in check_plan(plan, LIB, planner.available)]
        for kind, label, direction in (("follow", s.follow, "up"), ("cart", s.cart, "down")):
            required = [c for c in plan.cues if c.reason in ("required", "fallback")
                        and c.gesture.direction == direction]
            if label is None:
                if required:
                    misses.append(f"{s.text}: unasked {kind} gesture {required[0].cue}")
                continue
            idx = _word_index(plan, label)
            on_word = [c for c in required if c.word_index in idx]
            if not on_word:
                misses.append(f"{s.text}: no {direction} gesture on {label!r} "
                              f"({[c.cue for c in required]})")
                continue
            kinds = {c.gesture.category for c in on_word}
            if clipless:
                assert kinds & {"cue", "head"} and "deictic" not in kinds, s.text
            # With every clip, a hand point unless the hands are busy with the other
            # request's point (then a glance and the on-screen arrow, as without clips).
            deictic += "deictic" in kinds
            assert "deictic" in kinds or "cue" in kinds, s.text
            answered[kind] += 1
            errors[kind] += [stroke_error(c.cue, plan.words[c.word_index]) for c in on_word]
        errors["other"] += [stroke_error(c.cue, plan.words[c.word_index]) for c in plan.cues
                            if c.reason == "trigger" and c.gesture.timing.while_speaking]
        onsets += [c.cue.stroke - plan.words[c.word_index].start for c in plan.cues
                   if c.gesture.timing.while_speaking]
    assert not violations, violations[:5]
    assert not misses, misses[:5]
    label = ("clip-less" if clipless else "all clips") + (", espeak" if espeak else "")
    for kind, errs in errors.items():
        e = np.asarray(errs) * 1e3
        print(f"\n[{label}] stroke-to-word error, {kind} ({len(e)} cues): mean {e.mean():.1f} "
              f"ms, p95 {np.percentile(e, 95):.1f} ms, max {e.max():.1f} ms")
        assert np.percentile(e, 95) <= TARGET_S * 1e3
    n_follow = sum(s.follow is not None for s in SENTENCES)
    n_cart = sum(s.cart is not None for s in SENTENCES)
    o = np.asarray(onsets) * 1e3
    print(f"[{label}] stroke minus word onset: mean {o.mean():.1f} ms, p5 "
          f"{np.percentile(o, 5):.1f} ms, p95 {np.percentile(o, 95):.1f} ms")
    print(f"[{label}] follow requests answered {answered['follow']}/{n_follow}, cart "
          f"{answered['cart']}/{n_cart} ({deictic} by a hand point), rule violations "
          f"{len(violations)}")
    assert answered == {"follow": n_follow, "cart": n_cart}
    if not clipless:
        assert deictic >= 0.9 * (n_follow + n_cart)


def test_no_clap_where_follow_or_cart_is_asked() -> None:
    planner = GesturePlanner(LIB, density=1.0)
    claps = 0
    for s in SENTENCES:
        ids = {c.gesture for c in _plan(planner, s).gesture_cues}
        if s.follow or s.cart:
            assert not ids & {"clap", "clap_small", "dance_shoulders"}, s.text
        claps += "clap" in ids
    assert claps >= 1  # congratulations without a request still get their clap
