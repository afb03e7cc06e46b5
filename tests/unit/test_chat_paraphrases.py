"""Answer accuracy on the paraphrase set (tests/data/paraphrases.yaml: 120+ questions in
en/zh/de over the red-team catalog, a quarter of them with no answer in the catalog):
precision of FAQ matching must be at least 0.95 (a wrong answer is worse than none),
recall at least 0.85. An answer counts as right when it is about the expected product
and matches the expected text; any answer to a question the catalog cannot answer, or
to the wrong product, counts against precision."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from livetwin.chat.answers import AnswerDB
from livetwin.events import Product
from livetwin.show.catalog import load_catalog

from ..conftest import SHARED

DATA = Path(__file__).resolve().parents[1] / "data" / "paraphrases.yaml"


@dataclass
class Score:
    right: int = 0
    wrong: int = 0
    missed: int = 0
    held_back: int = 0  # correctly not answered
    errors: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.right / max(1, self.right + self.wrong)

    @property
    def recall(self) -> float:
        return self.right / max(1, self.right + self.missed)


def evaluate(products: list[Product], questions: list[dict]) -> Score:
    db = AnswerDB(products)
    score = Score()
    for x in questions:
        answer = db.answer(x["q"], current=x.get("current"))
        text = " ".join(p[1] for p in answer.parts) if answer else ""
        if x["expect"] is None:
            if answer is None:
                score.held_back += 1
            else:
                score.wrong += 1
                score.errors.append(f"answered {x['q']!r}: {text!r}")
        elif answer is None:
            score.missed += 1
            score.errors.append(f"missed {x['q']!r}")
        elif re.search(x["expect"], text, re.I) and all(p[0] == x["product"]
                                                        for p in answer.parts):
            score.right += 1
        else:
            score.wrong += 1
            score.errors.append(f"wrong answer to {x['q']!r}: {text!r}")
    return score


@pytest.fixture(scope="module")
def products() -> list[Product]:
    path = SHARED / "redteam" / "catalog.yaml"
    if not path.is_file():
        pytest.fail(f"{path} is missing; run with ../shared beside the clone")
    return load_catalog(path)


def test_paraphrase_set_is_big_and_balanced() -> None:
    questions = yaml.safe_load(DATA.read_text(encoding="utf-8"))["questions"]
    assert len(questions) >= 100
    langs = {"zh": 0, "de": 0, "en": 0}
    for x in questions:
        q = x["q"]
        lang = "zh" if re.search(r"[\u4e00-\u9fff]", q) else (
            "de" if re.search(r"[äöüß]|\b(ist|der|die|das|wie|was|gibt|welche)\b", q, re.I)
            else "en")
        langs[lang] += 1
    assert min(langs.values()) >= 25, langs
    assert sum(x["expect"] is None for x in questions) >= 25


def test_paraphrase_precision_and_recall(products: list[Product]) -> None:
    questions = yaml.safe_load(DATA.read_text(encoding="utf-8"))["questions"]
    score = evaluate(products, questions)
    print(f"\nparaphrases: {len(questions)} questions, right {score.right}, wrong "
          f"{score.wrong}, missed {score.missed}, held back {score.held_back}; precision "
          f"{score.precision:.3f}, recall {score.recall:.3f}")
    for e in score.errors:
        print("  ", e)
    assert score.precision >= 0.95, score.errors
    assert score.recall >= 0.85, score.errors
