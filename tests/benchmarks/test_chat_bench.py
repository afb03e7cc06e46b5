"""Chat figures from a real `livetwin serve` (espeak voice, demo avatar): comment-to-speech
latency of FAQ questions (en/zh/de), then a 1,000 msg/s chat flood. The issue's figures
(100 questions, 60 s) come from `LIVETWIN_BENCH_CHAT_N=100 LIVETWIN_BENCH_FLOOD_S=60`;
the default suite runs 15 questions and 10 s to stay short. The figures are printed and written to
$LIVETWIN_BENCH_OUT (default: the test's tmp dir) as chat_bench.json; the asserts are
the issue's targets with head-room for a loaded CI machine."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import yaml

from livetwin.chat import bench

from ..integration.test_serve import TOKEN, serve

pytestmark = pytest.mark.slow
CATALOG = {"products": [
    {"id": "tint", "name": "Velvet Lip Tint", "price": 99, "currency": "CNY", "stock": 500,
     "faq": [{"q": ["how much", "price", "多少钱", "价格", "preis", "kostet"],
              "a": "{price} yuan."},
             {"q": ["colors", "shades", "颜色", "色号", "farben"], "a": "Six shades."},
             {"q": ["ship", "delivery", "发货", "versand"], "a": "Within two days."}]},
    {"id": "bottle", "name": "Kelvin Steel Bottle", "price": 129, "currency": "CNY",
     "faq": [{"q": ["how much", "price", "多少钱"], "a": "{price} yuan."},
             {"q": ["hot", "保温", "heiß"], "a": "Hot for twelve hours."}]},
]}
QUESTIONS = [
    "how much is the lip tint?", "口红多少钱", "was kostet der Lippenstift?",
    "what colors does the tint come in", "口红有什么颜色", "welche Farben hat das Lip Tint",
    "do you ship the lip tint fast?", "口红什么时候发货", "wie schnell ist der Versand?",
    "how much is the bottle", "保温杯多少钱", "does the bottle keep tea hot?",
    "保温杯保温吗", "hält die Flasche Tee heiß?", "price of the steel bottle?"]


def test_chat_latency_and_flood(tmp_path: Path,
                                tmp_path_factory: pytest.TempPathFactory) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(CATALOG, allow_unicode=True), encoding="utf-8")
    config = {"output": {"obs_url": "", "preview_fps": 0},
              "chat": {"dedupe_window_s": 0}}
    gen = serve(tmp_path_factory.mktemp("chat_bench_home"), tmp_path, config,
                "--catalog", str(catalog))
    srv = next(gen)
    try:
        n = int(os.environ.get("LIVETWIN_BENCH_CHAT_N", "15"))
        questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(n)]
        lat = bench.latency(srv.url, TOKEN, questions)
        seconds = float(os.environ.get("LIVETWIN_BENCH_FLOOD_S", "10"))
        flood = bench.flood(srv.url, TOKEN, srv.proc.pid, seconds=seconds,
                            buyer_questions=QUESTIONS[:3] + QUESTIONS[9:11])
    finally:
        srv.stop(signal.SIGTERM)
        gen.close()
    figures = {"latency": lat, "flood": flood}
    out = Path(os.environ.get("LIVETWIN_BENCH_OUT", tmp_path))
    (out / "chat_bench.json").write_text(json.dumps(figures, indent=2, ensure_ascii=False))
    print("\n" + json.dumps(figures, indent=2, ensure_ascii=False))
    assert lat["answered"] == n, lat["missed"]
    assert lat["p50_ms"] < 1000
    assert flood["rate_per_s"] > 500
    assert flood["fps_min"] is not None and flood["fps_min"] >= 20  # 25 fps nominal
    assert flood["rss_mb_end"] - flood["rss_mb_start"] < 150
    assert flood["purchase_answered"] >= 0.7 * flood["purchase_questions"]
