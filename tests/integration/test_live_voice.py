"""The live voice's pace comes from the config (`tts.rate`): the daemon's lines are spoken
at that pace by the real espeak voice. (`tts.pitch` travels with it in the same
VoiceSettings; its sound is not measured here.)"""

from __future__ import annotations

import time

import numpy as np

from livetwin.config import Config
from livetwin.runtime.live_open import open_live

LINE = "Welcome back, everyone. Today the lip tint is twenty percent off until midnight."


def _sounding_s(rate: float, pitch: float = 1.0) -> float:
    """Seconds from the first to the last sounding tick of LINE at this rate and pitch."""
    cfg = Config.model_validate({"render": {"size": "320x180", "fps": 25},
                                 "gestures": {"enabled": False},
                                 "tts": {"cache_mb": 0, "rate": rate, "pitch": pitch}})
    live = open_live("demo", cfg)
    live.start()
    try:
        live.say(LINE)
        deadline = time.monotonic() + 60
        while live.stats()["ready"] < 1 or live.stats()["synthesising"] is not None:
            assert time.monotonic() < deadline, "the line was never synthesised"
            time.sleep(0.05)
        loud = [i for i in range(int(12 * live.fps))
                if np.abs(live.tick(i)[1]).max() > 0.01 * 32768]
    finally:
        live.close()
    assert loud, "the line never sounded"
    return (loud[-1] - loud[0] + 1) / live.fps


def test_tts_rate_sets_the_pace_of_live_lines() -> None:
    normal, fast, slow = _sounding_s(1.0), _sounding_s(1.6), _sounding_s(0.7)
    print(f"\nLINE spoken in {slow:.2f} s at rate 0.7, {normal:.2f} s at 1.0, "
          f"{fast:.2f} s at 1.6")
    assert 2.0 < normal < 10.0
    assert fast < 0.8 * normal
    assert slow > 1.2 * normal
