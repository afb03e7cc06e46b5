"""The public red-team set (../shared/redteam/chat_public.yaml over catalog.yaml) against a
real `livetwin serve`: every case is posted through `POST /api/chat`, every spoken line is
read back from `GET /api/transcript`, and each case's rule is checked:
answer/disclose -> a line replying to it matches one of `must_match_any`; ignore -> no
line replies to it; deflect -> whatever replies to it is one of the fixed neutral lines;
and no line spoken matches any case's `must_not_match`."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import httpx
import pytest
import yaml

from livetwin.chat.answers import general

from ..conftest import SHARED
from .test_serve import AUTH, serve

pytestmark = pytest.mark.slow
REDTEAM = SHARED / "redteam"
NEUTRAL = ("deflect", "bait", "pii", "disclose")
QUIET_S = 6.0  # no new line for this long after the last reply: the show is done


@pytest.fixture(scope="module")
def redteam() -> dict[str, object]:
    path = REDTEAM / "chat_public.yaml"
    if not path.is_file():
        pytest.fail(f"{path} is missing; run the tests with ../shared beside the clone "
                    "(or set LIVETWIN_SHARED)")
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def _neutral_lines() -> set[str]:
    lines = general()["lines"]
    return {str(t) for key in NEUTRAL for t in lines[key].values()}


def _wait_for_lines(http: httpx.Client, expect: set[str], deadline: float) -> list[dict]:
    """Transcript lines once every chat id in `expect` has a reply and nothing new was
    said for QUIET_S (or at `deadline`)."""
    lines: list[dict] = []
    last_change = time.monotonic()
    while time.monotonic() < deadline:
        now = http.get("/api/transcript", headers=AUTH).json()
        if len(now) != len(lines):
            lines, last_change = now, time.monotonic()
        replied = {line["reply_to"] for line in lines}
        if expect <= replied and time.monotonic() - last_change > QUIET_S:
            break
        time.sleep(0.5)
    return lines


def test_public_redteam_set(redteam: dict, tmp_path: Path,
                            tmp_path_factory: pytest.TempPathFactory) -> None:
    config = {"output": {"obs_url": "", "preview_fps": 0},
              # the checks read the transcript, and a real serve speaks every line in
              # real time: at twice the pace the show takes half as long
              "tts": {"rate": 2.0},
              # every neutral line is spoken (checked) and nothing expires while queued
              "chat": {"deflect_interval_s": 0, "max_age_s": 600, "queue_size": 100}}
    gen = serve(tmp_path_factory.mktemp("redteam_home"), tmp_path, config,
                "--catalog", str(REDTEAM / "catalog.yaml"))
    srv = next(gen)
    try:
        cases = redteam["cases"]
        ids: dict[str, str] = {}
        with httpx.Client(base_url=srv.url, timeout=10) as http:
            for case in cases:
                text = case["text"] * int(case.get("text_repeat", 1))
                r = http.post("/api/chat", headers=AUTH,
                              json={"platform": "redteam", "user": case["user"], "text": text})
                assert r.status_code == 202, (case["id"], r.text)
                ids[case["id"]] = r.json()["id"]
            expect = {ids[c["id"]] for c in cases if c["reply"] in ("answer", "disclose")}
            lines = _wait_for_lines(http, expect, time.monotonic() + 180)
            decisions = http.get("/api/chat/decisions", headers=AUTH).json()
    finally:
        srv.stop(signal.SIGTERM)
        gen.close()
    for line in lines:
        print(f"{line['reply_to']!s:>4} {line['source']:>8}  {line['text']}")

    why = {d["chat_id"]: f'{d["action"]}: {d["reason"]}' for d in decisions}
    neutral = _neutral_lines()
    failures = []
    for case in cases:
        cid = ids[case["id"]]
        replies = [line["text"] for line in lines if line["reply_to"] == cid]
        rule = case["reply"]
        if rule in ("answer", "disclose"):
            pats = [re.compile(p, re.IGNORECASE) for p in case["must_match_any"]]
            if not any(p.search(t) for t in replies for p in pats):
                failures.append(f"{case['id']}: no reply matching {case['must_match_any']}; "
                                f"replies {replies}; decision {why.get(cid)}")
        elif rule == "ignore" and replies:
            failures.append(f"{case['id']}: should be ignored, got {replies}")
        elif rule == "deflect" and any(t not in neutral for t in replies):
            failures.append(f"{case['id']}: a deflection must be a neutral line, got {replies}")
        for pat in case.get("must_not_match", []):
            bad = [line["text"] for line in lines if re.search(pat, line["text"], re.I)]
            if bad:
                failures.append(f"{case['id']}: spoken lines match {pat!r}: {bad}")
    assert not failures, "\n".join(failures)
    # the show did speak: every answer/disclose case plus neutral lines
    assert len(lines) >= sum(c["reply"] in ("answer", "disclose") for c in cases)
