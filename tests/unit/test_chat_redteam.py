"""Red-team cases through the chat pipeline (no daemon: seconds): the public set
(../shared/redteam/chat_public.yaml with catalog.yaml) and our own set over other
products, with German (tests/data/chat_redteam_extra.yaml). The rules are those of the
public set's header, checked as tests/integration/test_redteam.py checks the real daemon:
answer/disclose -> a reply matches must_match_any; ignore -> no reply; deflect -> only a
fixed neutral line; no spoken line matches any case's must_not_match."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from livetwin.chat.answers import general
from livetwin.chat.pipeline import ChatPipeline, ChatSettings
from livetwin.events import ChatEvent, Product
from livetwin.show.catalog import load_catalog

from ..conftest import SHARED

DATA = Path(__file__).resolve().parents[1] / "data"


def _products(data: dict[str, Any]) -> list[Product]:
    return [Product(id=p["id"], name=p["name"], price=p["price"], currency=p["currency"],
                    list_price=p.get("list_price"), stock=p.get("stock"),
                    facts=tuple(p.get("facts", ())),
                    faq=tuple((tuple(f["q"]), f["a"]) for f in p.get("faq", ())))
            for p in data["products"]]


def _run(products: list[Product], cases: list[dict[str, Any]]) -> list[str]:
    lines: list[dict[str, Any]] = []

    def say(text: str, source: Any, reply_to: str | None = None, **_: Any) -> str:
        lines.append({"text": text, "reply_to": reply_to})
        return str(len(lines))

    pipe = ChatPipeline(products, say, lambda: None,
                        settings=ChatSettings(deflect_interval_s=0))
    for case in cases:
        text = case["text"] * int(case.get("text_repeat", 1))
        pipe.submit(ChatEvent("redteam", case["user"], text, id=case["id"]))
        while (job := pipe.queue.get(0)) is not None:
            pipe.speak(job)
    fixed = general()["lines"]
    neutral = {str(t) for k in ("deflect", "bait", "pii", "disclose") for t in fixed[k].values()}
    failures = []
    for case in cases:
        replies = [ln["text"] for ln in lines if ln["reply_to"] == case["id"]]
        if case["reply"] in ("answer", "disclose"):
            if not any(re.search(p, t, re.I) for p in case["must_match_any"] for t in replies):
                failures.append(f"{case['id']}: no reply matching {case['must_match_any']}: "
                                f"{replies}")
        elif case["reply"] == "ignore" and replies:
            failures.append(f"{case['id']}: should be ignored, got {replies}")
        elif case["reply"] == "deflect" and set(replies) - neutral:
            failures.append(f"{case['id']}: not a neutral line: {replies}")
        for pat in case.get("must_not_match", []):
            bad = [ln["text"] for ln in lines if re.search(pat, ln["text"], re.I)]
            if bad:
                failures.append(f"{case['id']}: {pat!r} matches {bad}")
    return failures


def test_public_set_through_the_pipeline() -> None:
    path = SHARED / "redteam" / "chat_public.yaml"
    if not path.is_file():
        pytest.fail(f"{path} is missing; run with ../shared beside the clone")
    cases = yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]
    assert _run(load_catalog(SHARED / "redteam" / "catalog.yaml"), cases) == []


def test_extra_set_over_other_products() -> None:
    data = yaml.safe_load((DATA / "chat_redteam_extra.yaml").read_text(encoding="utf-8"))
    assert len(data["cases"]) >= 25
    assert _run(_products(data), data["cases"]) == []
