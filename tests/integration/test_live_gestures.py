"""Gestures in the live daemon: a show line asking for a follow gets its pointing cue
(an on-screen arrow on the clip-less demo avatar) on its own frames, while the audio and
the frames outside the gesture stay as without gestures."""

from __future__ import annotations

import time

import numpy as np

from livetwin.config import Config
from livetwin.events import UtteranceSource
from livetwin.runtime.live import LiveTwin
from livetwin.runtime.live_open import open_live

LINE = "If you like the show, tap follow now so you never miss a deal."


def _run(density: float | None) -> tuple[LiveTwin, list[np.ndarray], np.ndarray]:
    cfg = Config.model_validate({"render": {"size": "640x360", "fps": 25},
                                 "gestures": {"enabled": density is not None,
                                              "density": density or 0.0}})
    live = open_live("demo", cfg)
    live.start()
    try:
        live.say(LINE, UtteranceSource.SCRIPT, intents=("follow",))
        deadline = time.monotonic() + 60
        while live.stats()["ready"] < 1:
            assert time.monotonic() < deadline, "the line was never synthesised"
            time.sleep(0.05)
        frames, audio = [], []
        for i in range(int(6 * live.fps)):
            f, a = live.tick(i)
            frames.append(f.copy())
            audio.append(a)
        return live, frames, np.concatenate(audio)
    finally:
        live.close()


def test_a_follow_line_points_to_the_follow_button_live() -> None:
    live, with_g, audio_g = _run(0.0)
    _, without, audio = _run(None)
    assert live.stats()["ready"] == 0  # the line was played
    np.testing.assert_array_equal(audio_g, audio)  # gestures never touch the sound
    diff = [float(np.abs(a.astype(np.int16) - b).mean()) for a, b in zip(with_g, without,
                                                                         strict=True)]
    changed = [i for i, d in enumerate(diff) if d > 0.05]
    assert changed, "no frame shows a gesture"
    # the cue lands while the line is spoken, not before it starts
    speaking = np.flatnonzero(np.abs(audio.reshape(len(with_g), -1)).max(axis=1) > 0)
    assert speaking[0] <= changed[0] <= speaking[-1]
    assert diff[0] == 0.0  # the idle frame before the line is untouched
