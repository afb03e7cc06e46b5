"""`livetwin serve --supervise` and crash safety with real processes: the supervisor
restarts a child that crashes (with growing waits) and not one that refused its input;
a real daemon killed with SIGKILL while it speaks (and writes the store) comes back by
itself, answers the API again, sends frames again, continues the show with the stored
next line, and its store is intact with every approval kept. The time from the kill to
the API answering and to the first new frame is printed as a figure."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from livetwin.events import Product
from livetwin.runtime.supervise import FIRST_DELAY_S, Supervisor, child_command, next_delay
from livetwin.show.catalog import CatalogItem
from livetwin.show.scripts import generate_draft
from livetwin.show.templates import load_templates
from livetwin.store import open_store

from ..fakes_output import free_tcp_port
from .test_serve import AUTH, TOKEN, quiet_output, serve_home

__all__ = ["serve_home"]  # the shared LIVETWIN_HOME fixture (the demo avatar built once)
T = TypeVar("T")
PRODUCTS = [
    Product(
        "lip-tint",
        "Aurora Velvet Lip Tint",
        99.0,
        "CNY",
        list_price=159.0,
        facts=(
            "six shades, from nude to berry",
            "3.5 grams per tube",
            "stays on for about eight hours",
        ),
    ),
    Product(
        "mug", "Stone Mug", 39.0, "CNY", facts=("hand glazed", "holds 350 ml", "microwave safe")
    ),
]


def wait_for(fn: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
        except (httpx.HTTPError, sqlite3.Error):
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


# ------------------------------------------------------------------ the supervisor


def test_backoff_grows_to_the_cap_and_resets_after_a_healthy_run() -> None:
    waits = [next_delay(None, 0.0)]
    for _ in range(10):
        waits.append(next_delay(waits[-1], 2.0))
    assert waits[0] == FIRST_DELAY_S and waits[1] == 2 * FIRST_DELAY_S
    assert waits[-1] == 30.0 and waits == sorted(waits)
    assert next_delay(30.0, 61.0) == FIRST_DELAY_S


def test_a_crashing_child_is_restarted_until_it_stops_cleanly(tmp_path: Path) -> None:
    """A real child process: exit 3, then killed by SIGKILL, then a clean exit."""
    runs = tmp_path / "runs"
    code = (
        "import os, pathlib, signal, sys\n"
        f"p = pathlib.Path({str(runs)!r})\n"
        "n = len(p.read_text()) if p.exists() else 0\n"
        "p.write_text('x' * (n + 1))\n"
        "if n == 0: sys.exit(3)\n"
        "if n == 1: os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    lines: list[str] = []
    sup = Supervisor([sys.executable, "-c", code], say=lines.append)
    t0 = time.monotonic()
    assert sup.run() == 0
    took = time.monotonic() - t0
    assert runs.read_text() == "xxx" and sup.restarts == 2
    assert "exited with code 3" in lines[0] and "restart 1 in 0.5 s" in lines[0]
    assert "exited with signal SIGKILL" in lines[1] and "restart 2 in 1.0 s" in lines[1]
    assert took >= 1.5  # the waits were kept
    assert "stopped cleanly" in lines[-1]


def test_a_loaded_spare_takes_over_without_the_wait(tmp_path: Path) -> None:
    """Real child processes: the first dies after a while; the spare, started beside
    it, is told "go" on its stdin and becomes the child (then stops cleanly)."""
    marks = tmp_path / "marks"
    child = (
        "import pathlib, time\n"
        f"p = pathlib.Path({str(marks)!r})\n"
        "time.sleep(0.5); p.write_text(p.read_text() + 'child-died ' if p.exists() else "
        "'child-died ')\n"
        "raise SystemExit(1)\n"
    )
    spare = (
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(marks)!r})\n"
        "line = sys.stdin.readline()\n"
        "p.write_text((p.read_text() if p.exists() else '') + 'spare:' + line.strip())\n"
    )
    lines: list[str] = []
    sup = Supervisor(
        [sys.executable, "-c", child],
        standby_command=[sys.executable, "-c", spare],
        standby_after_s=0.0,
        say=lines.append,
    )
    assert sup.run() == 0
    assert marks.read_text() == "child-died spare:go"
    assert sup.restarts == 1 and sup.takeovers == 1
    assert "exited with code 1" in lines[0] and "the spare takes over" in lines[0]


def test_sigterm_is_forwarded_and_the_supervisor_exits_0() -> None:
    """The supervisor's own SIGTERM handler (as from systemd or `kill`) stops the child,
    which exits cleanly; the supervisor then exits 0 and starts nothing else."""
    child = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        "print('up', flush=True); time.sleep(60)\n"
    )
    lines: list[str] = []
    sup = Supervisor([sys.executable, "-c", child], say=lines.append)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    t0 = time.monotonic()
    try:
        assert sup.run() == 0
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 10
    assert sup.restarts == 0 and lines == ["stopped (the child exited with code 0)"]


def test_an_input_error_is_not_restarted() -> None:
    lines: list[str] = []
    sup = Supervisor([sys.executable, "-c", "raise SystemExit(2)"], say=lines.append)
    assert sup.run() == 2 and sup.restarts == 0 and len(lines) == 1


@pytest.mark.slow
def test_serve_supervise_with_a_bad_port_exits_2_once(serve_home: Path, tmp_path: Path) -> None:
    """A bad argument is refused by the supervisor itself; a busy port by the child, and
    the supervisor gives up at once instead of starting it again."""
    env = {**os.environ, "LIVETWIN_HOME": str(serve_home)}
    bad = subprocess.run(
        [*child_command(["serve", "--supervise", "--port", "70000"])],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--port 70000" in bad.stderr
    assert "Traceback" not in bad.stderr and "restart" not in bad.stderr
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        cfg = tmp_path / "livetwin.yaml"
        cfg.write_text(yaml.safe_dump({"output": quiet_output(tmp_path)}), encoding="utf-8")
        port = str(busy.getsockname()[1])
        taken = subprocess.run(
            child_command(["serve", "--supervise", "--config", str(cfg), "--port", port]),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        busy.close()
    assert taken.returncode == 2, taken.stderr
    assert "is in use" in taken.stderr and "refused its input (exit 2)" in taken.stderr
    assert taken.stderr.count("is in use") == 1 and "restart 1" not in taken.stderr


# ------------------------------------------------------------------ a real daemon


def prepare_store(db: Path) -> int:
    """A catalog with one approved script and one draft; the draft's id."""
    store = open_store(f"sqlite:///{db}")
    store.import_catalog([CatalogItem(p) for p in PRODUCTS])
    t = load_templates("en")
    store.decide(generate_draft(store, "lip-tint", t).id, "approved")
    draft = generate_draft(store, "mug", t).id
    store.close()
    return draft


def stored_plan(db: Path) -> list[dict[str, Any]] | None:
    """The show position the daemon keeps (None before the first line)."""
    import json

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute("SELECT value FROM show_state WHERE key = 'show'").fetchone()
    if row is None:
        return None
    plan: list[dict[str, Any]] = json.loads(row[0])["plan"]
    return plan


@pytest.mark.slow
@pytest.mark.parametrize("spare", [True, False], ids=["spare", "cold"])
def test_supervised_daemon_survives_kill_9_and_continues_the_show(
    serve_home: Path, tmp_path: Path, spare: bool
) -> None:
    """With a spare (the default) it takes over; cold (--no-standby) a new child loads."""
    db = tmp_path / "show.db"
    draft = prepare_store(db)
    port = free_tcp_port()
    cfg = tmp_path / "livetwin.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "output": quiet_output(tmp_path),
                "store": {"url": f"sqlite:///{db}"},
                "show": {"max_gap_s": 3.0},
            }
        ),
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "LIVETWIN_HOME": str(serve_home),
        "LIVETWIN_TOKEN": TOKEN,
        "LIVETWIN_STANDBY_AFTER_S": "0",  # the spare loads beside the first child
    }
    args = ["serve", "--supervise", "--config", str(cfg), "--port", str(port)]
    log_path = tmp_path / "supervisor.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        child_command([*args, *([] if spare else ["--no-standby"])]),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, timeout=5)
    try:
        first = wait_for(lambda: http.get("/api/health").json(), 180, "the daemon answers")
        scripted = wait_for(
            lambda: [
                e
                for e in http.get("/api/transcript", headers=AUTH).json()
                if e["source"] == "script"
            ][1:],
            90,
            "two script lines spoken",
        )
        assert scripted
        if spare:
            wait_for(lambda: "standing by" in log_path.read_text(), 120, "the spare loaded")
        # an approval, then the kill at once, while the pitch goes on
        r = http.post(f"/api/scripts/{draft}/approve", headers=AUTH)
        assert r.status_code == 200 and r.json()["status"] == "approved"
        wait_for(lambda: stored_plan(db), 60, "a pitch in progress")
        os.kill(first["pid"], signal.SIGKILL)
        killed = time.monotonic()
        plan = stored_plan(db)
        assert plan, "the stored position is readable right after the kill"
        with sqlite3.connect(db, timeout=5) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

        again = wait_for(
            lambda: (h := http.get("/api/health").json())["pid"] != first["pid"] and h,
            120,
            "the restarted daemon answers",
        )
        api_s = time.monotonic() - killed
        wait_for(
            lambda: http.get("/api/health").json()["output"]["frames"] > 0,
            30,
            "frames from the restarted daemon",
        )
        frame_s = time.monotonic() - killed
        lines = wait_for(
            lambda: http.get("/api/transcript", headers=AUTH).json(),
            60,
            "a line from the restarted daemon",
        )
        line_s = time.monotonic() - killed
        how = "the spare took over" if spare else "cold restart after 0.5 s"
        print(
            f"\nkill -9 -> API answers {api_s:.2f} s, first new frame {frame_s:.2f} s, "
            f"first line {line_s:.2f} s ({how})"
        )
        assert again["status"] == "ok"
        assert lines[0]["text"] == plan[0]["text"], (lines[0], plan[:2])  # not from the top
        with sqlite3.connect(db, timeout=5) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            status = conn.execute("SELECT status FROM scripts WHERE id = ?", (draft,))
            assert status.fetchone() == ("approved",)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        http.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    text = log_path.read_text()
    assert "exited with signal SIGKILL" in text
    assert ("the spare takes over" if spare else "restart 1 in 0.5 s") in text
    assert "stopped (the child exited with code 0)" in text
