"""The audience-size strategy: the same show at 0, 5, 50 and 2,000 viewers has
measurably different segment mixes (printed as a table with -s), a spike switches to
the spike pitch within one segment, and a count hovering at a border does not flap."""

from __future__ import annotations

import itertools
import random

import pytest

from livetwin.errors import ConfigError
from livetwin.events import ChatKind
from livetwin.show.director import Director, DirectorSettings
from livetwin.show.simulate import Script, simulate, summarise
from livetwin.show.strategy import Strategy, load_strategy
from livetwin.show.templates import load_templates

from .test_show_director import NAMES, approved

AUDIENCES = (0, 5, 50, 2000)
KINDS = ("opener", "feature", "price", "urgency", "cart", "follow", "qa_bridge", "filler",
         "greeting", "thanks")
HOUR = 3600.0


def run_at(viewers: int, seconds: float = HOUR) -> tuple[dict[str, float], list[str], int]:
    """Segment mix of an hour at `viewers`, with joins/gifts in proportion to the room;
    the greeting lines said; the number of lines."""
    t = load_templates("en")
    d = Director(approved(t), t, Strategy(load_strategy()), DirectorSettings(),
                 random.Random(3))
    rng = random.Random(5)
    joins_per_min = min(30, viewers // 4)
    chat = [(rng.uniform(0, seconds), ChatKind.JOIN if rng.random() < 0.8 else ChatKind.GIFT,
             rng.choice(NAMES)) for _ in range(int(joins_per_min * seconds / 60))]
    spoken = simulate(d, seconds, Script(viewers=[(0.0, viewers)], chat=sorted(
        chat, key=lambda c: c[0])))
    return summarise(spoken, 600.0).kind_share, [s.text for s in spoken
                                                 if s.kind == "greeting"], len(spoken)


def test_segment_mix_differs_by_audience_size() -> None:
    mixes = {v: run_at(v) for v in AUDIENCES}
    print("\nsegment mix (share of lines in one simulated hour)")
    print("kind        " + "".join(f"{v:>8d}" for v in AUDIENCES))
    for k in KINDS:
        print(f"{k:12s}" + "".join(f"{mixes[v][0].get(k, 0.0):8.3f}" for v in AUDIENCES))
    print("lines/hour  " + "".join(f"{mixes[v][2]:8d}" for v in AUDIENCES))
    by_name = {v: sum(any(n in g for n in NAMES) for g in mixes[v][1]) / max(1, len(mixes[v][1]))
               for v in AUDIENCES}
    print("greet by name" + "".join(f"{by_name[v]:7.2f} " for v in AUDIENCES))
    share = {v: mixes[v][0] for v in AUDIENCES}
    # every pair of audiences differs by at least 15 points of total variation
    for i, a in enumerate(AUDIENCES):
        for b in AUDIENCES[i + 1:]:
            tv = 0.5 * sum(abs(share[a].get(k, 0) - share[b].get(k, 0)) for k in KINDS)
            assert tv >= 0.15, (a, b, tv)
    # the empty room: no prices or pushing, many fillers; the crowd: selling
    assert share[0].get("price", 0) == 0 and share[0].get("cart", 0) == 0
    assert share[0]["filler"] > max(share[v].get("filler", 0) for v in (50, 2000))
    selling = {v: sum(share[v].get(k, 0) for k in ("price", "urgency", "cart"))
               for v in AUDIENCES}
    assert selling[2000] > selling[5] > selling[0]
    assert share[50].get("urgency", 0) > 0 and share[5].get("urgency", 0) == 0
    # small rooms greet people by name, the crowd greets the room
    names5, names2000 = mixes[5][1], mixes[2000][1]
    assert names5 and all(any(n in g for n in NAMES) for g in names5)
    assert names2000 and not any(n in g for n in NAMES for g in names2000)
    assert mixes[2000][2] > mixes[50][2] > mixes[5][2] > mixes[0][2]  # pace rises


def test_a_spike_triggers_the_spike_pitch_within_one_segment() -> None:
    t = load_templates("en")
    d = Director(approved(t), t, Strategy(load_strategy()), DirectorSettings(),
                 random.Random(2))
    spike_at = 1800.0
    spoken = simulate(d, 2400.0, Script(viewers=[(0.0, 40), (600.0, 45), (1200.0, 50),
                                                 (spike_at, 600)]))
    after = [s for s in spoken if s.start >= spike_at]
    welcome = load_templates("en").live_lines("spike_welcome")
    first_spike = next(i for i, s in enumerate(after) if s.text in welcome)
    assert first_spike <= 1, [s.text for s in after[:3]]  # at most the line already queued
    block = [s.kind for s in after[first_spike:first_spike + 4]]
    assert block[0] == "spike_welcome" and "price" in block and "cart" in block, block
    before = [s for s in spoken if s.start < spike_at]
    assert not any(s.text in welcome for s in before)


def test_hysteresis_keeps_the_tier_at_a_border() -> None:
    s = Strategy(load_strategy())
    tiers = []
    rng = random.Random(0)
    for k in range(600):  # ten minutes of counts hovering around 200 (growing | crowd)
        s.update(200 + rng.randint(-25, 25), float(k))
        tiers.append(s.tier.name)
    changes = sum(1 for a, b in itertools.pairwise(tiers) if a != b)
    assert changes <= 1, changes
    assert tiers[-1] == "crowd"
    s.update(150, 700.0)  # well below the border: it moves down
    assert s.tier.name == "growing"


def test_a_gradual_rise_is_not_a_spike() -> None:
    s = Strategy(load_strategy())
    # +2 viewers every 10 s (12 a minute) up to 2,400
    started = [s.update(count, 10.0 * t) for t, count in enumerate(range(0, 2400, 2))]
    assert not any(started) and s.tier.name == "crowd"


def test_bad_strategy_file_is_one_clear_error(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "strategy.yaml"
    path.write_text("tiers:\n  - {name: x, min_viewers: 5, pause_s: 1, pitch: [opener]}\n"
                    "spike_profile: {name: s, pause_s: 1, pitch: [price]}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="start at min_viewers 0"):
        load_strategy(path)
    path.write_text("tiers:\n  - {name: x, pause_s: 1, pitch: [dance]}\n"
                    "spike_profile: {name: s, pause_s: 1, pitch: [price]}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tiers\.0\.pitch\.0"):
        load_strategy(path)
