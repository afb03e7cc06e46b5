"""Audience-size strategy: viewer counts -> a tier profile (pacing, segment mix, how
greetings and thanks are addressed). Tiers, hysteresis and the spike rule live in YAML
(the shipped `scripts_templates/strategy.yaml` or `show.strategy`).

A tier applies from its `min_viewers` up. Moving up is immediate once the tier has been
held `min_dwell_s`; moving down needs the count below (1 - hysteresis) x the current
tier's `min_viewers` as well, so a count hovering at a border does not flap. A spike
(count >= factor x the lowest count of the last `window_s` seconds, and at least
`min_jump` more viewers) switches to the spike profile at once, for `hold_s` seconds.
Time is passed in (`now`), never read, so a simulated day runs in a second."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from livetwin.errors import ConfigError
from livetwin.resources import data_dir
from livetwin.show.templates import SCRIPT_KINDS

PITCH_KINDS = (*SCRIPT_KINDS, "spike_welcome")


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Profile(_M):
    """How the show behaves in one tier."""

    name: str
    min_viewers: int = Field(0, ge=0)
    pause_s: float = Field(ge=0, le=60)
    pitch: list[Literal["opener", "feature", "price", "urgency", "follow", "cart",
                        "qa_bridge", "spike_welcome"]] = Field(min_length=1)
    fillers_per_pitch: int = Field(0, ge=0, le=10)
    greet: Literal["name", "room", "none"] = "name"
    greet_interval_s: float = Field(0, ge=0)
    thanks: Literal["name", "room"] = "name"


class SpikeRule(_M):
    window_s: float = Field(60, gt=0)
    factor: float = Field(3.0, gt=1)
    min_jump: int = Field(30, ge=1)
    hold_s: float = Field(120, ge=0)


class StrategyConfig(_M):
    """The whole strategy file."""

    hysteresis: float = Field(0.2, ge=0, lt=1)
    min_dwell_s: float = Field(30, ge=0)
    spike: SpikeRule = SpikeRule()
    tiers: list[Profile] = Field(min_length=1)
    spike_profile: Profile

    @model_validator(mode="after")
    def _ordered(self) -> StrategyConfig:
        mins = [t.min_viewers for t in self.tiers]
        if mins != sorted(set(mins)) or mins[0] != 0:
            raise ValueError("tiers must start at min_viewers 0 and rise strictly")
        return self


def load_strategy(path: Path | None = None) -> StrategyConfig:
    """The strategy YAML at `path` (None: the shipped one)."""
    path = path or data_dir("scripts_templates") / "strategy.yaml"
    try:
        return StrategyConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ConfigError(f"cannot read strategy {path}: {exc.strerror}.") from None
    except yaml.YAMLError:
        raise ConfigError(f"{path}: not valid YAML; fix the syntax.") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: '{key}': {err['msg']}.") from None


class Strategy:
    """The current profile for the viewer counts seen so far (module doc)."""

    def __init__(self, cfg: StrategyConfig) -> None:
        self.cfg = cfg
        self._tier = 0
        self._since = float("-inf")
        self._spike_until = float("-inf")
        self._recent: deque[tuple[float, int]] = deque()
        self.count = 0

    @property
    def tier(self) -> Profile:
        return self.cfg.tiers[self._tier]

    def profile(self, now: float) -> Profile:
        """The spike profile while a spike holds, else the tier's."""
        return self.cfg.spike_profile if now < self._spike_until else self.tier

    def in_spike(self, now: float) -> bool:
        return now < self._spike_until

    def update(self, count: int, now: float) -> bool:
        """Take a viewer count; True when it starts a spike."""
        self.count = count
        rule = self.cfg.spike
        while len(self._recent) > 1 and self._recent[1][0] <= now - rule.window_s:
            self._recent.popleft()  # keep the last count from before the window
        low = min((c for _, c in self._recent), default=count)
        self._recent.append((now, count))
        spike = (count >= rule.factor * max(low, 1) and count - low >= rule.min_jump
                 and not self.in_spike(now))
        if spike:
            self._spike_until = now + rule.hold_s
        self._move_tier(count, now, force=spike)
        return spike

    def _move_tier(self, count: int, now: float, *, force: bool) -> None:
        tiers = self.cfg.tiers
        target = max(i for i, t in enumerate(tiers) if t.min_viewers <= count)
        if target == self._tier or (not force and now - self._since < self.cfg.min_dwell_s):
            return
        if target < self._tier and count >= tiers[self._tier].min_viewers * (
                1 - self.cfg.hysteresis):
            return
        self._tier, self._since = target, now
