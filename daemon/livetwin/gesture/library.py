"""The gesture library: `gestures/library/*.yaml` (one file per category) checked against
`gestures/schema.json`, then cross-checked as a whole.

The schema says what one entry may hold; what it cannot say is checked here: ids unique
across files, every `excludes` naming a gesture that exists, `min_s <= max_s`, each file's
entries of the file's category, and a fallback on-screen cue for every intent the planner
must always answer (follow, cart), so a clip-less avatar still points somewhere.

A `Gesture` is a small frozen dataclass; `Library` holds them in file order and answers the
planner's questions (by id, by intent, trigger phrases per language). Loading the shipped
library parses about 125 entries once and is cached (`default_library`)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from livetwin.errors import InputError
from livetwin.resources import data_dir

LANGS = ("en", "zh", "de")
HANDS = frozenset({"left_hand", "right_hand"})
# Intents the planner must answer in every utterance that carries them (module doc).
REQUIRED_INTENTS = {"follow": "up", "cart": "down", "link": "down"}


@dataclass(frozen=True, slots=True)
class Timing:
    """Duration range (s), where the stroke falls (fraction of the duration), and whether
    the gesture may run while the twin speaks."""

    min_s: float
    max_s: float
    stroke: float
    while_speaking: bool

    @property
    def nominal_s(self) -> float:
        return (self.min_s + self.max_s) / 2


@dataclass(frozen=True, slots=True)
class Rules:
    """Spacing, repetition and co-occurrence limits of one gesture."""

    min_gap_s: float
    max_per_utterance: int
    not_with_intents: frozenset[str] = frozenset()
    excludes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Gesture:
    """One library entry (see gestures/schema.json for the meaning of each field)."""

    id: str
    name: str
    category: str
    description: str
    intents: tuple[str, ...]
    triggers: dict[str, tuple[str, ...]]
    timing: Timing
    body: tuple[str, ...]
    rules: Rules
    weight: float
    record: str
    direction: str | None = None
    procedural: str | None = None

    @property
    def channels(self) -> frozenset[str]:
        """Body parts as exclusive channels: both hands count as one ("hands"), so two
        hand gestures never overlap."""
        return frozenset("hands" if b in HANDS else b for b in self.body)

    @property
    def uses_hands(self) -> bool:
        return bool(HANDS & set(self.body))

    def summary(self) -> dict[str, Any]:
        """The public JSON form (`livetwin gestures list --json`, ARCHITECTURE §7)."""
        return {
            "id": self.id, "name": self.name, "category": self.category,
            "intents": list(self.intents), "direction": self.direction,
            "description": self.description, "body": list(self.body),
            "triggers": {k: list(v) for k, v in self.triggers.items()},
            "timing": {"min_s": self.timing.min_s, "max_s": self.timing.max_s,
                       "stroke": self.timing.stroke,
                       "while_speaking": self.timing.while_speaking},
            "rules": {"min_gap_s": self.rules.min_gap_s,
                      "max_per_utterance": self.rules.max_per_utterance,
                      "not_with_intents": sorted(self.rules.not_with_intents),
                      "excludes": sorted(self.rules.excludes)},
            "procedural": self.procedural, "record": self.record,
        }


class Library:
    """The gestures in file order, with lookups by id and intent."""

    def __init__(self, gestures: Iterable[Gesture]) -> None:
        self.gestures = tuple(gestures)
        self._by_id = {g.id: g for g in self.gestures}

    def __len__(self) -> int:
        return len(self.gestures)

    def __iter__(self) -> Iterator[Gesture]:
        return iter(self.gestures)

    def __contains__(self, gesture_id: object) -> bool:
        return gesture_id in self._by_id

    def __getitem__(self, gesture_id: str) -> Gesture:
        return self._by_id[gesture_id]

    def by_intent(self, intent: str) -> list[Gesture]:
        """Gestures that carry `intent`, highest weight first."""
        return sorted((g for g in self.gestures if intent in g.intents),
                      key=lambda g: -g.weight)

    def procedural_ids(self) -> frozenset[str]:
        """Gestures the renderer can show without a recorded clip."""
        return frozenset(g.id for g in self.gestures if g.procedural)


def schema(directory: Path | None = None) -> dict[str, Any]:
    """The library's JSON schema."""
    path = (directory or data_dir("gestures")) / "schema.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _entry(raw: dict[str, Any]) -> Gesture:
    t, r = raw["timing"], raw["rules"]
    return Gesture(
        id=raw["id"], name=raw["name"], category=raw["category"],
        description=" ".join(raw["description"].split()),
        intents=tuple(raw["intents"]),
        triggers={lang: tuple(p.lower() for p in raw["triggers"][lang]) for lang in LANGS},
        timing=Timing(float(t["min_s"]), float(t["max_s"]), float(t["stroke"]),
                      bool(t["while_speaking"])),
        body=tuple(raw["body"]),
        rules=Rules(float(r["min_gap_s"]), int(r["max_per_utterance"]),
                    frozenset(r.get("not_with_intents", ())), frozenset(r.get("excludes", ()))),
        weight=float(raw["weight"]), record=raw["record"],
        direction=raw.get("direction"), procedural=raw.get("procedural"),
    )


def _read(path: Path, validator: jsonschema.protocols.Validator) -> list[Gesture]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"gesture file {path} is not readable YAML ({exc}); fix or "
                         "remove it.") from None
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise InputError(f"gesture file {path}: {where}: {e.message}; see "
                         "gestures/schema.json.")
    out = []
    for raw in data["gestures"]:
        if raw["category"] != data["category"]:
            raise InputError(f"gesture file {path}: '{raw['id']}' is a {raw['category']} "
                             f"gesture in the {data['category']} file; move it.")
        out.append(_entry(raw))
    return out


def cross_check(gestures: list[Gesture]) -> list[str]:
    """Problems the schema cannot see (module doc); empty when the library is sound."""
    problems: list[str] = []
    seen: set[str] = set()
    for g in gestures:
        if g.id in seen:
            problems.append(f"gesture id '{g.id}' is defined twice")
        seen.add(g.id)
    for g in gestures:
        for other in sorted(g.rules.excludes - seen):
            problems.append(f"'{g.id}' excludes '{other}', which is not in the library")
        if g.id in g.rules.excludes:
            problems.append(f"'{g.id}' excludes itself")
        if g.timing.min_s > g.timing.max_s:
            problems.append(f"'{g.id}': timing min_s {g.timing.min_s} > max_s "
                            f"{g.timing.max_s}")
        if g.category == "cue" and (g.procedural is None or g.record != "never"):
            problems.append(f"'{g.id}': an on-screen cue needs a procedural renderer and "
                            "record: never")
        if set(g.intents) & g.rules.not_with_intents:
            problems.append(f"'{g.id}' is not allowed with an intent it carries itself")
    for intent, direction in REQUIRED_INTENTS.items():
        if not any(g.category == "cue" and intent in g.intents and g.direction == direction
                   for g in gestures):
            problems.append(f"no on-screen cue ({direction}) for the '{intent}' intent")
    return problems


def load_library(directory: Path | None = None) -> Library:
    """Read, validate and cross-check the library under `directory` (default: the
    shipped one); InputError naming the file and entry on the first problem."""
    root = directory or data_dir("gestures")
    validator = jsonschema.Draft202012Validator(schema(root))
    files = sorted((root / "library").glob("*.yaml"))
    if not files:
        raise InputError(f"no gesture files in {root / 'library'}; reinstall livetwin.")
    gestures = [g for path in files for g in _read(path, validator)]
    problems = cross_check(gestures)
    if problems:
        raise InputError(f"gesture library {root}: {problems[0]} (and {len(problems) - 1} "
                         "more problems)." if len(problems) > 1
                         else f"gesture library {root}: {problems[0]}.")
    return Library(gestures)


@functools.lru_cache(maxsize=1)
def default_library() -> Library:
    """The shipped library, loaded once."""
    return load_library()
