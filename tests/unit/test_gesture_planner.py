"""The speech-to-gesture planner: strokes on the triggering words, every rule kept, the
avatar's renderable set and the density respected."""

# ruff: noqa: RUF001 - Chinese punctuation in the test sentences

from __future__ import annotations

import itertools

import pytest

from livetwin.events import GestureCue, WordTiming
from livetwin.gesture.library import default_library
from livetwin.gesture.planner import GesturePlanner, Plan, PlannedCue, check_plan, stroke_error
from livetwin.gesture.timing import estimate_words, syllables

LIB = default_library()


def _cue(plan: Plan, gesture: str) -> GestureCue:
    found = [c for c in plan.gesture_cues if c.gesture == gesture]
    assert found, f"no {gesture} in {plan.gesture_cues}"
    return found[0]


def _word(plan: Plan, text: str) -> WordTiming:
    return next(w for w in plan.words if w.word.lower() == text.lower())


@pytest.mark.parametrize(("text", "lang", "word"), [
    ("Please hit follow so you never miss a drop.", "en", "follow"),
    ("Vergesst nicht: folgt mir für mehr Angebote.", "de", "folgt"),
])
def test_a_follow_request_points_up_on_the_follow_word(text: str, lang: str, word: str) -> None:
    plan = GesturePlanner().plan(text, lang=lang)
    ups = [c for c in plan.cues if c.gesture.direction == "up" and c.reason == "required"]
    assert len(ups) == 1
    cue = ups[0].cue
    assert cue.word.lower() == word
    assert stroke_error(cue, _word(plan, word)) == 0.0
    assert cue.start < cue.stroke < cue.end
    assert check_plan(plan) == []


def test_chinese_follow_and_cart_land_on_their_characters() -> None:
    plan = GesturePlanner().plan("宝宝们点个关注，下方小黄车一号链接马上拍。", lang="zh")
    up = next(c for c in plan.cues if c.gesture.direction == "up")
    down = next(c for c in plan.cues if c.gesture.direction == "down")
    assert up.cue.word == "关注" and down.cue.word == "小黄车"
    assert plan.words[up.word_index].word == "关"
    assert stroke_error(up.cue, plan.words[up.word_index]) == 0.0
    assert up.cue.end <= down.cue.start  # two hand gestures never overlap
    assert check_plan(plan) == []


def test_given_word_timings_are_used_as_they_are() -> None:
    words = [WordTiming("Add", 0.0, 0.3), WordTiming("it", 0.3, 0.4),
             WordTiming("to", 0.4, 0.5), WordTiming("your", 0.5, 0.7),
             WordTiming("cart", 2.0, 2.4)]
    plan = GesturePlanner().plan("Add it to your cart", words=words)
    assert plan.timings == "given"
    down = next(c.cue for c in plan.cues if c.gesture.direction == "down")
    assert down.word == "cart" and 2.0 <= down.stroke <= 2.4


def test_clap_never_with_follow_or_cart() -> None:
    planner = GesturePlanner(density=1.0)
    alone = planner.plan("Congratulations to our winner tonight!")
    assert "clap" in [c.gesture for c in alone.gesture_cues]  # the rule is what removes it
    for text in ("Congratulations to our winner, and follow us for the next draw!",
                 "Congratulations, the deal is in your cart now!"):
        plan = planner.plan(text)
        assert not {"clap", "clap_small"} & {c.gesture for c in plan.gesture_cues}
        assert check_plan(plan) == []


def test_shh_only_in_a_pause() -> None:
    plan = GesturePlanner(density=1.0).plan("I will tell you a secret about this serum.")
    shh = _cue(plan, "shh")
    assert all(shh.start >= w.end or shh.end <= w.start for w in plan.words)
    assert shh.start >= plan.words[-1].end  # no pause inside the sentence is long enough
    assert check_plan(plan) == []


def test_nod_and_shake_exclude_each_other() -> None:
    plan = GesturePlanner(density=1.0).plan("Yes, exactly, and no, never ever pay more.")
    ids = {c.gesture for c in plan.gesture_cues}
    assert not ({"nod", "nod_small", "nod_double"} & ids and {"shake", "shake_small"} & ids)


def test_density_zero_keeps_only_the_required_gestures() -> None:
    text = ("Hello everyone, welcome back! This serum is really amazing, honestly the best, "
            "so follow me and grab it in the cart below.")
    counts = []
    for d in (0.0, 0.5, 1.0):
        plan = GesturePlanner(density=d).plan(text)
        counts.append(len(plan.cues))
        assert check_plan(plan) == []
        if d == 0.0:
            assert {c.reason for c in plan.cues} == {"required"}
            assert {c.gesture.direction for c in plan.cues} == {"up", "down"}
    assert counts[0] < counts[1] <= counts[2]


def test_a_declared_intent_without_a_trigger_word_still_gets_its_gesture() -> None:
    plan = GesturePlanner(density=0.0).plan("Do not miss what comes next.", intents=["follow"])
    assert [c.gesture.direction for c in plan.cues] == ["up"]


def test_a_clip_less_avatar_gets_only_what_it_can_render() -> None:
    available = {g.id for g in LIB if g.procedural}
    planner = GesturePlanner(available=available, density=1.0)
    plan = planner.plan("Hi! Yes, follow me and check the cart, it's really amazing.")
    assert {c.gesture for c in plan.gesture_cues} <= available
    assert "cue_follow_arrow" in {c.gesture for c in plan.gesture_cues}
    assert "cue_cart_arrow" in {c.gesture for c in plan.gesture_cues}
    assert check_plan(plan, available=available) == []
    nothing = GesturePlanner(available=set(), density=1.0).plan("Follow me!")
    assert nothing.cues == ()


def test_without_cues_a_clip_less_follow_falls_back_to_a_glance() -> None:
    available = {g.id for g in LIB if g.procedural and g.category != "cue"}
    plan = GesturePlanner(available=available, allow_cues=False).plan("Follow me now!")
    assert [c.gesture for c in plan.gesture_cues] == ["glance_up"]


def test_repeated_mentions_close_together_share_one_gesture() -> None:
    plan = GesturePlanner(density=0.0).plan("Follow, follow, follow!")
    assert len(plan.cues) == 1


def test_check_plan_catches_broken_plans() -> None:
    words = estimate_words("Follow me and add it to the cart now", "en")

    def pc(gid: str, a: float, s: float, b: float) -> PlannedCue:
        return PlannedCue(GestureCue(gid, a, s, b, "x"), LIB[gid], "x", "trigger", 0)

    bad = Plan((pc("point_up", 0.0, 0.4, 1.2), pc("thumbs_up", 1.0, 1.3, 1.9),
                pc("clap", 2.0, 2.3, 3.0), pc("shh", 0.2, 0.5, 1.3),
                pc("nod", 0.0, 0.2, 0.6), pc("shake", 1.0, 1.3, 1.8)),
               words, frozenset({"follow", "cart"}), "estimated", "en")
    problems = " | ".join(check_plan(bad, available={"point_up"}))
    for needle in ("hand gestures point_up and thumbs_up overlap", "clap: not allowed",
                   "shh: runs while speaking", "nod and shake exclude each other",
                   "thumbs_up: the avatar cannot render it"):
        assert needle in problems


def test_estimated_timings_follow_the_text() -> None:
    assert syllables("beautiful", "en") == 3 and syllables("Warenkorb", "de") == 3
    assert syllables("关", "zh") == 1
    words = estimate_words("Hello, world. 你好！", "zh")
    assert [w.word for w in words] == ["Hello", "world", "你", "好"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(words))
    assert words[1].start - words[0].end > 0.15  # the comma's pause


def test_an_empty_text_plans_nothing() -> None:
    assert GesturePlanner().plan("", lang="en").cues == ()


def test_density_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="density"):
        GesturePlanner(density=2.0)
