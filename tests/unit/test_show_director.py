"""The show director on a simulated clock. The 24-hour show: only approved material,
no line repeated within the window, no dead air over the limit, every product pitched
in proportion to its weight; plus the behaviours it is built from (drafts never air,
answer priority, operator lines first, pause, greeting by name)."""

from __future__ import annotations

import itertools
import random
import time

import pytest

from livetwin.events import ChatKind, Product, UtteranceSource
from livetwin.show.director import Director, DirectorSettings, ShowItem
from livetwin.show.scripts import generate, sentences
from livetwin.show.simulate import Script, simulate, summarise
from livetwin.show.strategy import Strategy, load_strategy
from livetwin.show.templates import LIVE_KINDS, Templates, load_templates
from livetwin.store.db import ScriptRecord

PRODUCTS = [
    Product("lip-tint", "Aurora Velvet Lip Tint", 99.0, "CNY", list_price=159.0, stock=500,
            facts=("six shades, from nude to berry", "3.5 grams per tube",
                   "stays on for about eight hours", "vegan formula, no animal testing")),
    Product("steel-bottle", "Kelvin Steel Bottle", 129.0, "CNY", stock=80,
            facts=("keeps drinks cold for 24 hours and hot for 12 hours",
                   "316 stainless steel", "the lid is dishwasher safe")),
    Product("mug", "Stone Mug", 39.0, "CNY",
            facts=("hand glazed", "holds 350 ml", "microwave safe")),
]
DRAFT_ONLY = Product("secret", "Prototype Gadget", 5.0, "CNY", facts=("not ready",))
WEIGHTS = {"lip-tint": 3.0, "steel-bottle": 2.0, "mug": 1.0}
NAMES = ["Anna", "Ben", "Chen", "Dora", "Emil"]


def approved(t: Templates, products: list[Product] = PRODUCTS) -> list[ShowItem]:
    return [ShowItem(p, WEIGHTS.get(p.id, 1.0), ScriptRecord(
        i, p.id, t.lang, 1, "approved", "template", generate(p, t).lines))
        for i, p in enumerate(products)]


def director(t: Templates, items: list[ShowItem], settings: DirectorSettings,
             seed: int = 1) -> Director:
    return Director(items, t, Strategy(load_strategy()), settings, random.Random(seed))


def allowed_lines(t: Templates, items: list[ShowItem], answers: set[str],
                  operator: set[str]) -> set[str]:
    """Every sentence the show may say: approved script sentences, the answers and
    operator lines it was handed, and the run-time template lines."""
    ok = set(answers) | set(operator)
    for it in items:
        if it.script is not None and it.script.status == "approved":
            ok |= {s for ln in it.script.lines for s in sentences(ln.text)}
            ok |= set(t.live_lines("filler_product", name=it.product.name))
    for kind in LIVE_KINDS:
        if kind == "filler_product":
            continue
        for name in NAMES:
            ok |= set(t.live_lines(kind, user=name))
    return ok


def day_script() -> tuple[Script, list[tuple[float, float]]]:
    """A day: quiet night, a growing morning, a crowded evening with a spike, chat
    (joins, gifts, follows, questions), two off-air breaks and operator lines."""
    rng = random.Random(7)
    viewers: list[tuple[float, int]] = []
    for minute in range(24 * 60):
        hour = minute / 60
        base = 0 if hour < 6 else 5 if hour < 10 else 50 if hour < 18 else 2000
        viewers.append((minute * 60.0, max(0, int(base * rng.uniform(0.8, 1.2)))))
    viewers.append((19.5 * 3600, 9000))  # a spike
    chat, answers = [], []
    for _ in range(3000):
        at = rng.uniform(0, 86_400)
        chat.append((at, rng.choice([ChatKind.JOIN, ChatKind.JOIN, ChatKind.GIFT,
                                     ChatKind.FOLLOW]), rng.choice([*NAMES, None])))
    for k in range(400):
        at = rng.uniform(0, 86_400)
        answers.append((at, f"Answer number {k}.", k % 3 == 0, f"c{k}"))
    operator = [(h * 3600.0 + 17, f"Operator note at hour {h}.") for h in range(0, 24, 3)]
    off_air = [(3 * 3600.0, 3 * 3600.0 + 600), (15 * 3600.0, 15 * 3600.0 + 1200)]
    air = [(a, False) for a, _ in off_air] + [(b, True) for _, b in off_air]
    return Script(viewers=viewers, chat=sorted(chat, key=lambda c: c[0]),
                  answers=sorted(answers), operator=operator, air=air), off_air


def test_a_simulated_day() -> None:
    t = load_templates("en")
    items = approved(t)
    draft = generate(DRAFT_ONLY, t)
    items.append(ShowItem(DRAFT_ONLY, 5.0, ScriptRecord(9, DRAFT_ONLY.id, "en", 1, "draft",
                                                        "template", draft.lines)))
    settings = DirectorSettings(max_gap_s=6.0, repeat_window_s=600.0)
    d = director(t, items, settings)
    script, off_air = day_script()
    t0 = time.perf_counter()
    spoken = simulate(d, 86_400.0, script)
    elapsed = time.perf_counter() - t0
    m = summarise(spoken, settings.repeat_window_s, off_air)
    total = sum(WEIGHTS.values())
    pitches = sum(d.pitches.values())
    print(f"\n24 h simulated in {elapsed:.1f} s: {m.lines} lines, max gap {m.max_gap_s:.2f} s, "
          f"{m.repeats} repeats within {settings.repeat_window_s:.0f} s, {pitches} pitches")
    for pid, w in WEIGHTS.items():
        print(f"  {pid:13s} weight share {w / total:.3f}  pitch share "
              f"{d.pitches[pid] / pitches:.3f}  script-line share {m.pitch_share[pid]:.3f}")

    allowed = allowed_lines(t, [i for i in items if i.script and i.script.status == "approved"],
                            {a[1] for a in script.answers}, {o[1] for o in script.operator})
    outside = [s.text for s in spoken if s.text not in allowed]
    assert outside == []
    assert not any(s.product_id == DRAFT_ONLY.id or DRAFT_ONLY.name in s.text for s in spoken)
    assert m.repeats == 0
    assert m.max_gap_s <= settings.max_gap_s
    assert m.lines > 10_000
    assert d.pitches.keys() == WEIGHTS.keys()
    for pid, w in WEIGHTS.items():
        assert abs(d.pitches[pid] / pitches - w / total) < 0.02, pid
    # every answer and operator line was said, answers with their chat id
    said = {s.text: s for s in spoken}
    assert all(said[a[1]].reply_to == a[3] for a in script.answers)
    assert all(o[1] in said for o in script.operator)
    # nothing but operator lines while off air
    for s in spoken:
        if any(a <= s.start < b for a, b in off_air):
            assert s.source == "operator", s
    assert elapsed < 15


def test_without_approved_scripts_it_only_greets_and_answers() -> None:
    """ARCHITECTURE §7: without approved scripts the twin does not pitch, but still
    answers chat and greets; it does not chatter fillers into an empty show either."""
    t = load_templates("en")
    items = [ShowItem(p, 1.0, None) for p in PRODUCTS]
    d = director(t, items, DirectorSettings())
    spoken = simulate(d, 1800.0, Script(viewers=[(0, 5)],
                                        chat=[(100.0, ChatKind.JOIN, "Anna")],
                                        answers=[(200.0, "It is 99 yuan.", True, "c1")]))
    sources = {s.source for s in spoken}
    assert sources == {"greeting", "answer"}
    assert not any(p.name in s.text for p in PRODUCTS for s in spoken)
    assert "Anna" in next(s.text for s in spoken if s.source == "greeting")


def test_drafts_and_rejected_versions_never_air() -> None:
    t = load_templates("en")
    items = approved(t)
    lines = generate(PRODUCTS[2], t).lines
    items[2] = ShowItem(PRODUCTS[2], 1.0, ScriptRecord(5, "mug", "en", 2, "rejected",
                                                       "template", lines))
    d = director(t, items, DirectorSettings())
    spoken = simulate(d, 3600.0, Script(viewers=[(0, 50)]))
    assert not any(s.product_id == "mug" or "Stone Mug" in s.text for s in spoken)
    assert {s.product_id for s in spoken if s.source == "script"} == {"lip-tint",
                                                                      "steel-bottle"}


def test_answers_slot_in_at_sentence_boundaries_by_priority() -> None:
    t = load_templates("en")
    d = director(t, approved(t), DirectorSettings())
    first = d.next_line(0.0)
    assert first is not None and first.utterance.source is UtteranceSource.SCRIPT
    d.on_line_started(0.0, first.utterance.id)
    d.on_chat(ChatKind.JOIN, "Anna", 0.5)
    d.queue_answer("Shipping takes 48 hours.", 0.6, reply_to="c1")
    d.queue_answer("It is 99 yuan.", 0.7, reply_to="c2", purchase=True)
    d.queue_operator("Back in five minutes.", 0.8)
    d.on_line_ended(3.0, first.utterance.id)
    order = []
    for k in range(4):
        cue = d.next_line(3.0 + k)
        assert cue is not None
        d.on_line_started(3.0 + k, cue.utterance.id)
        d.on_line_ended(3.5 + k, cue.utterance.id)
        order.append((cue.utterance.source, cue.utterance.reply_to))
    assert order == [(UtteranceSource.OPERATOR, None), (UtteranceSource.ANSWER, "c2"),
                     (UtteranceSource.ANSWER, "c1"), (UtteranceSource.GREETING, None)]


def test_a_busy_room_greets_between_pitch_lines_not_instead_of_them() -> None:
    t = load_templates("en")
    d = director(t, approved(t), DirectorSettings(repeat_window_s=60.0))
    sources = []
    now = 0.0
    for k in range(24):  # a follow or a gift by name every second, more than are said
        for j in range(3):
            d.on_chat(ChatKind.FOLLOW if j % 2 else ChatKind.GIFT, f"fan{k}_{j}", now)
        cue = d.next_line(now)
        while cue is None:  # the runner polls through the pitch's pause
            now += 0.25
            cue = d.next_line(now)
        d.on_line_started(now, cue.utterance.id)
        now += 3.0
        d.on_line_ended(now, cue.utterance.id)
        sources.append(cue.utterance.source)
    social = [s is UtteranceSource.GREETING for s in sources]
    assert 0.4 <= sum(social) / len(social) <= 0.6, sources  # thanks still said, half
    assert not any(a and b for a, b in itertools.pairwise(social)), sources


def test_a_steady_stream_of_chat_answers_lets_the_pitch_in_every_few_lines() -> None:
    """Chat answers go to the twin straight from the chat pipeline, back to back under a
    busy chat: the director queues its next line while one sounds once OTHERS_BEFORE_PITCH
    of them sounded in a row (there is never a pause to wait for)."""
    from livetwin.show.director import OTHERS_BEFORE_PITCH

    t = load_templates("en")
    d = director(t, approved(t), DirectorSettings(repeat_window_s=60.0))
    now, order = 0.0, []
    for _ in range(30):  # answers, one after another
        d.on_line_started(now, None)
        cue = d.next_line(now + 0.2)
        now += 3.0
        d.on_line_ended(now, None)
        order.append("answer")
        if cue is not None:  # the twin plays it after the answer that was sounding
            d.on_line_started(now, cue.utterance.id)
            now += 3.0
            d.on_line_ended(now, cue.utterance.id)
            order.append(cue.utterance.source.value)
    pitch = [s for s in order if s != "answer"]
    assert len(pitch) >= 30 // (OTHERS_BEFORE_PITCH + 1), order
    runs = [len(list(g)) for k, g in itertools.groupby(order) if k == "answer"]
    assert max(runs) <= OTHERS_BEFORE_PITCH + 1, order


def test_script_lines_come_one_sentence_at_a_time() -> None:
    t = load_templates("en")
    d = director(t, approved(t), DirectorSettings())
    spoken = simulate(d, 900.0, Script(viewers=[(0, 50)]))
    assert all(sentences(s.text) == [s.text] for s in spoken if s.source == "script")
    multi = {ln.text for it in approved(t) if it.script for ln in it.script.lines
             if len(sentences(ln.text)) > 1}
    assert multi, "the templates have two-sentence lines"
    assert not any(s.text in multi for s in spoken)


def test_off_air_holds_the_show_and_resumes_without_dead_air() -> None:
    t = load_templates("en")
    d = director(t, approved(t), DirectorSettings(max_gap_s=4.0))
    spoken = simulate(d, 1200.0, Script(viewers=[(0, 5)], air=[(300.0, False),
                                                                (600.0, True)]))
    assert not any(300.5 < s.start < 600.0 for s in spoken)
    after = [s for s in spoken if s.start >= 600.0]
    assert after and after[0].start < 600.0 + 4.0
    assert summarise(spoken, 600.0, [(300.0, 600.0)]).max_gap_s <= 4.0


def test_a_price_change_retires_approved_lines_that_no_longer_hold() -> None:
    t = load_templates("en")
    items = approved(t)
    cheaper = Product(**{**{f: getattr(PRODUCTS[0], f) for f in (
        "id", "name", "currency", "list_price", "stock", "facts")}, "price": 89.0})
    d = director(t, [ShowItem(cheaper, 1.0, items[0].script)], DirectorSettings())
    spoken = simulate(d, 1800.0, Script(viewers=[(0, 50)]))
    assert not any("99" in s.text or "60 yuan" in s.text for s in spoken)
    assert any(s.source == "script" for s in spoken)


@pytest.mark.parametrize("lang", ["zh", "de"])
def test_other_languages_keep_the_guarantees(lang: str) -> None:
    t = load_templates(lang)
    items = approved(t)
    d = director(t, items, DirectorSettings(max_gap_s=6.0, repeat_window_s=600.0))
    spoken = simulate(d, 3 * 3600.0, Script(viewers=[(0.0, 50), (3600.0, 2000),
                                                     (7200.0, 0)]))
    m = summarise(spoken, 600.0)
    assert m.repeats == 0 and m.max_gap_s <= 6.0
    assert {s.text for s in spoken} <= allowed_lines(t, items, set(), set())
    assert {s.source for s in spoken} == {"script", "filler", "greeting"}  # spike welcome
