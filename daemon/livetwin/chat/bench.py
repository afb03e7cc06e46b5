"""Chat figures measured against a running `livetwin serve` (tests/benchmarks/
test_chat_bench.py starts one): comment-to-speech latency and a chat flood.

latency: one FAQ question at a time through `POST /api/chat`; the time from just before
the POST to the moment its answer starts sounding in the output (the `at` of the
`line_start` event on `WS /ws`, which the transcript's `at` also is); the next question
waits for the answer's `line_end`, so no answer queues behind another.

flood: `rate` messages per second for `seconds` through `WS /ws/chat` (batches, as a
bridge would send them) from thousands of users: chatter, greetings, duplicates, abuse;
every `buyer_every_s` a purchase question through `POST /api/chat`. Sampled each second:
the daemon's measured fps (`GET /api/health`) and its resident memory (/proc). Reported:
fps min/median, RSS at the start, middle and end, how many purchase questions were
answered (waiting up to ANSWER_WAIT_S after the flood for the last ones) and how fast.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

CHATTER = ("nice stream", "love it", "hello from berlin", "lol", "wow", "first time here",
           "666", "哈哈哈", "主播好", "so cute", "where are you from", "cool", "❤️❤️❤️",
           "spam spam spam", "you suck", "hi", "Hallo", "👍")
ANSWER_WAIT_S = 30.0  # after the flood, how long the last purchase questions may wait


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, linearly interpolated."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _ws(url: str, token: str) -> Any:
    from websockets.sync.client import connect

    return connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                   open_timeout=10, max_size=None)


def latency(base: str, token: str, questions: Sequence[str], *,
            limit_s: float = 20.0) -> dict[str, Any]:
    """Comment-to-speech latency of FAQ questions, one at a time (module doc)."""
    auth = {"Authorization": f"Bearer {token}"}
    lat: list[float] = []
    missed: list[str] = []
    with httpx.Client(base_url=base, headers=auth, timeout=10) as http, \
            _ws("ws" + base.removeprefix("http") + "/ws", token) as ws:
        for i, q in enumerate(questions):
            t0 = time.time()
            r = http.post("/api/chat", json={"platform": "bench", "user": f"viewer{i}",
                                             "text": q})
            r.raise_for_status()
            cid = r.json()["id"]
            line_id, deadline = None, time.monotonic() + limit_s
            while time.monotonic() < deadline:
                try:
                    msg = json.loads(ws.recv(max(0.01, deadline - time.monotonic())))
                except TimeoutError:
                    break
                if msg.get("type") == "line_start" and msg.get("reply_to") == cid:
                    lat.append(float(msg["at"]) - t0)
                    line_id = msg["id"]
                elif msg.get("type") == "line_end" and msg.get("id") == line_id:
                    break
            if line_id is None:
                missed.append(q)
    return {"questions": len(questions), "answered": len(lat), "missed": missed,
            "p50_ms": round(1000 * percentile(lat, 0.5), 1),
            "p95_ms": round(1000 * percentile(lat, 0.95), 1),
            "max_ms": round(1000 * max(lat), 1) if lat else None,
            "mean_ms": round(1000 * statistics.fmean(lat), 1) if lat else None}


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def flood(base: str, token: str, pid: int, *, rate: int = 1000, seconds: float = 60.0,
          batch: int = 100, buyer_every_s: float = 5.0,
          buyer_questions: Sequence[str] = ("how much is the bottle?",)) -> dict[str, Any]:
    """A chat flood against the daemon (module doc)."""
    auth = {"Authorization": f"Bearer {token}"}
    stop = threading.Event()
    sent = [0]
    samples: list[tuple[float, float, float]] = []  # (t, fps, rss)

    def flooder() -> None:
        with _ws("ws" + base.removeprefix("http") + "/ws/chat", token) as ws:
            k, t_start = 0, time.monotonic()
            while not stop.is_set():
                items = [{"platform": "flood", "user": f"f{(k + j) % 5000}",
                          "text": f"{CHATTER[(k + j) % len(CHATTER)]} {(k + j) // 7}"}
                         for j in range(batch)]
                ws.send(json.dumps(items))
                ws.recv(10)  # one "batch" reply per list
                k += batch
                sent[0] = k
                ahead = k / rate - (time.monotonic() - t_start)
                if ahead > 0:
                    time.sleep(ahead)

    buyers: dict[str, float] = {}
    with httpx.Client(base_url=base, headers=auth, timeout=10) as http:
        first_line = _last_line(http)
        rss0 = rss_mb(pid)
        thread = threading.Thread(target=flooder, daemon=True)
        t0 = time.monotonic()
        thread.start()
        next_buyer, n = t0 + 1.0, 0
        while time.monotonic() - t0 < seconds:
            now = time.monotonic()
            if now >= next_buyer:
                q = buyer_questions[n % len(buyer_questions)]
                r = http.post("/api/chat", json={"platform": "bench", "user": f"buyer{n}",
                                                 "text": f"{q} ({n})"})
                buyers[r.json()["id"]] = time.time()
                n += 1
                next_buyer += buyer_every_s
            health = http.get("/api/health").json()
            samples.append((now - t0, float(health["fps"]), rss_mb(pid)))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
        stop.set()
        thread.join(15)
        flood_s = time.monotonic() - t0
        # The last answers may wait behind a show line: poll until every purchase
        # question has its answer or ANSWER_WAIT_S passed (their waits are reported).
        deadline = time.monotonic() + ANSWER_WAIT_S
        while True:
            lines = http.get("/api/transcript", params={"since": first_line}).json()
            replied = {ln["reply_to"] for ln in lines}
            if set(buyers) <= replied or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    answered = {ln["reply_to"]: ln["at"] for ln in lines if ln["reply_to"] in buyers}
    waits = [answered[c] - buyers[c] for c in answered]
    fps = [s[1] for s in samples[2:]]  # the fps window needs a moment to fill
    rss = [s[2] for s in samples]
    return {"messages": sent[0], "seconds": round(flood_s, 1),
            "rate_per_s": round(sent[0] / flood_s, 1),
            "fps_min": min(fps) if fps else None,
            "fps_median": statistics.median(fps) if fps else None,
            "rss_mb_start": round(rss0, 1), "rss_mb_mid": round(rss[len(rss) // 2], 1),
            "rss_mb_end": round(rss[-1], 1), "rss_mb_max": round(max(rss), 1),
            "purchase_questions": len(buyers), "purchase_answered": len(answered),
            "purchase_wait_p50_s": round(percentile(waits, 0.5), 2) if waits else None,
            "purchase_wait_max_s": round(max(waits), 2) if waits else None,
            "lines_spoken": len(lines)}


def _last_line(http: httpx.Client) -> str | None:
    lines = http.get("/api/transcript").json()
    return str(lines[-1]["id"]) if lines else None
