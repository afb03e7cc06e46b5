"""`livetwin bench --only gestures`: how long planning takes per utterance.

Plans a fixed set of sales lines (en/zh/de, 5-25 words) many times, with estimated word
timings (what `gestures plan` without a voice does: estimation + planning) and with given
timings (what the live pipeline does after TTS: planning only), against the whole library
and against a clip-less avatar. Reports p50/p99 in ms per utterance."""

# ruff: noqa: RUF001 - Chinese punctuation in the sample lines

from __future__ import annotations

import time
from typing import Any

import numpy as np

from livetwin.gesture.library import default_library
from livetwin.gesture.planner import GesturePlanner
from livetwin.gesture.timing import estimate_words

LINES = (
    ("en", "Hi everyone, welcome back! Hit follow so you never miss a deal."),
    ("en", "This serum is really amazing, honestly the best I have tried, and the link "
           "is right below for only nineteen dollars."),
    ("en", "Congratulations to our winner, enjoy your new headphones!"),
    ("en", "First, it is waterproof. Second, it lasts twelve hours. Third, it is vegan, so "
           "add it to your cart before the timer runs out."),
    ("zh", "宝宝们点个关注，下方小黄车一号链接，到手价九十九元！"),
    ("zh", "这款面霜特别好用，质地非常细腻，说实话我自己每天都在用。"),
    ("de", "Hallo zusammen! Folgt mir und schaut in den Warenkorb, nur heute super günstig."),
    ("de", "Ehrlich, ich benutze das selbst jeden Morgen, und der Link ist unten."),
)
ROUNDS = 200


def _ms(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3),
            "max_ms": round(float(a.max()), 3)}


def gesture_figures(rounds: int = ROUNDS) -> dict[str, Any]:
    """Planning time per utterance (module doc)."""
    lib = default_library()
    planners = {"all_clips": GesturePlanner(lib),
                "clip_less": GesturePlanner(lib, available=lib.procedural_ids())}
    given = [(lang, text, estimate_words(text, lang)) for lang, text in LINES]
    out: dict[str, Any] = {"library_size": len(lib), "utterances": len(LINES),
                           "rounds": rounds}
    cues = 0
    for name, planner in planners.items():
        est: list[float] = []
        giv: list[float] = []
        for _ in range(rounds):
            for lang, text, words in given:
                t0 = time.perf_counter()
                planner.plan(text, lang=lang)
                t1 = time.perf_counter()
                plan = planner.plan(text, lang=lang, words=words)
                t2 = time.perf_counter()
                est.append(t1 - t0)
                giv.append(t2 - t1)
                cues += len(plan.cues)
        out[name] = {"estimated_timings": _ms(est), "given_timings": _ms(giv)}
    out["cues_per_utterance"] = round(cues / (rounds * len(LINES) * len(planners)), 2)
    return out
