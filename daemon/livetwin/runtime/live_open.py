"""Building the `LiveTwin` that `livetwin serve` runs: the canvas settings of the config's
`render:` section and `open_live` (twin, canvas with the AI label, TTS with its
fallbacks, the bundle's mouth range and person model)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from livetwin.errors import InputError
from livetwin.events import Product
from livetwin.runtime.live import SAMPLE_RATE, LiveLines, LiveTwin

if TYPE_CHECKING:
    from livetwin.config import Config
    from livetwin.speech.base import TTSBackend


@dataclass(frozen=True)
class LiveSettings:
    """How the live output looks (config `render:` plus command-line choices)."""

    size: tuple[int, int] = (1280, 720)
    fps: int = 25
    label: str | None = "AI-generated host"
    label_position: str = "top-left"
    label_font: Path | None = None
    background: tuple[int, int, int] = (0, 0, 0)
    background_image: Path | None = None
    seed: int = 0


def settings_from_config(cfg: Config) -> LiveSettings:
    """The canvas settings of `cfg.render` (InputError for a bad size or colour)."""
    from livetwin.render.canvas import parse_colour
    from livetwin.render.say import parse_size

    rc = cfg.render
    try:
        background = parse_colour(rc.background)
    except ValueError as exc:
        raise InputError(f"render.background: {exc}.") from None
    if SAMPLE_RATE % rc.fps:
        raise InputError(f"render.fps {rc.fps}: choose a rate that divides 48000 (24, 25, 30, "
                         "50, 60, ...).")
    return LiveSettings(size=parse_size(rc.size), fps=rc.fps, label=rc.label_text(),
                        label_position=rc.label_position, label_font=rc.label_font,
                        background=background, background_image=rc.background_image)


def open_live(avatar: str, cfg: Config, products: Sequence[Product] = (), *,
              tts: TTSBackend | None = None, settings: LiveSettings | None = None,
              wall: Callable[[], float] = time.time) -> LiveTwin:
    """A LiveTwin of avatar bundle `avatar` (`demo`: the embedded demo) as `livetwin say`
    builds its pipeline: twin, canvas with the AI label, the configured TTS with its
    fallbacks, the bundle's mouth range and person model. Not started."""
    from livetwin.lipsync.person_onnx import PersonMouthModel
    from livetwin.lipsync.track import MouthRange
    from livetwin.render.canvas import Canvas
    from livetwin.render.engine import open_twin
    from livetwin.render.say import render_side, resolve_avatar
    from livetwin.speech.base import VoiceSettings
    from livetwin.speech.registry import from_config

    s = settings or settings_from_config(cfg)
    bundle_dir = resolve_avatar(avatar)
    twin = open_twin(bundle_dir, max_side=render_side(bundle_dir, s.size), fps=s.fps,
                     seed=s.seed)
    try:
        canvas = Canvas(twin.size, s.size, background=s.background,
                        background_image=s.background_image, label=s.label,
                        label_position=s.label_position, label_font=s.label_font)
    except ValueError as exc:
        raise InputError(f"{exc}.") from None
    voice_ref = bundle_dir / "voice_ref.wav"
    if tts is None:
        tts = from_config(cfg.tts, voice_ref=voice_ref if voice_ref.is_file() else None)
    model_path = bundle_dir / "person_model.onnx"
    model = PersonMouthModel.load(model_path) if model_path.is_file() else None
    lv = cfg.live
    if cfg.gestures.enabled:
        # Load (YAML + schema checks, ~0.2 s of Python) and warm the planner now: done by
        # the first line in the synthesis worker, it held the GIL and stalled the ticks.
        from livetwin.render.head_motion import plan_track
        from livetwin.speech.normalize import canonical_lang

        plan_track([], canonical_lang(lv.lang), set(), s.fps)
    return LiveTwin(twin, canvas, tts, fps=s.fps, mouth_range=MouthRange.from_bundle(bundle_dir),
                    model=model, products=products, avatar=avatar, wall=wall,
                    lines=LiveLines(lv.lang, lv.call_to_follow, lv.point_to_cart),
                    gesture_density=cfg.gestures.density if cfg.gestures.enabled else None,
                    voice=VoiceSettings(rate=cfg.tts.rate, pitch=cfg.tts.pitch))
