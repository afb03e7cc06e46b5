"""End to end in real OBS Studio: `livetwin serve` (the embedded demo avatar) streams to
OBS headless; OBS loads obs_plugin/livetwin_obs.py, which creates the Media Source and
connects to the daemon's WebSocket. Checked from outside through obs-websocket: the
source is in the scene, shows the twin's face, its audio meters rise when the twin
speaks a line sent with POST /api/say (glass-to-glass latency measured), the captions
text source shows the line, a hotkey skips the line, scene changes reach the daemon, and
OBS shuts down cleanly with script_unload.

Needs OBS Studio and Xvfb: installed with apt-get when root (CI); elsewhere the tests
skip when OBS cannot be installed. Never skipped in CI."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from .obs_harness import CLOSE_NOTICED_S, ObsInstance, ensure_obs, free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LIVETWIN = Path(sys.executable).with_name("livetwin")
TOKEN = "e2e-token-" + "x" * 16
SOURCE = "livetwin avatar"
CAPTIONS = "livetwin captions"
NOW_SELLING = "livetwin now selling"
CHAT = "livetwin chat"
CATALOG = """products:
  - id: tea
    name: Green Tea Sampler
    price: 12.5
    currency: EUR
    facts: [six teas from three gardens]
  - id: mug
    name: Stoneware Mug
    price: 18
    currency: EUR
    facts: [holds 350 ml]
"""
SIZE = (640, 360)
CHECK_DIR = Path("/tmp/obs_check")
LINE = "Hello everyone, welcome to the show. Today I have something special for you."
LATENCY_LINES = ("Thanks for joining!", "Great question.", "Here it comes.", "Hello there!",
                 "Let me show you.")
LONG_LINE = ("This is a very long line that goes on and on, so that there is plenty of time "
             "to skip it before it ends: one, two, three, four, five, six, seven, eight, "
             "nine, ten, eleven, twelve, thirteen, fourteen, fifteen, sixteen, seventeen.")


@pytest.fixture(scope="module")
def obs_installed() -> None:
    reason = ensure_obs()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the OBS end-to-end test: {reason}")
        pytest.skip(reason)


class Daemon:
    """`livetwin serve` in a subprocess, plus a WebSocket observer of its events."""

    def __init__(self, home: Path, obs_udp_port: int) -> None:
        self.home = home
        cfg = home / "livetwin.yaml"
        cfg.write_text(
            "render:\n"
            f"  size: \"{SIZE[0]}x{SIZE[1]}\"\n"
            "  fps: 25\n"
            "output:\n"
            f"  obs_url: \"udp://127.0.0.1:{obs_udp_port}?pkt_size=1316\"\n")
        catalog = home / "catalog.yaml"
        catalog.write_text(CATALOG)
        env = dict(os.environ, LIVETWIN_HOME=str(home / "home"), LIVETWIN_TOKEN=TOKEN)
        self.proc = subprocess.Popen(
            [str(LIVETWIN), "serve", "--config", str(cfg), "--avatar", "demo", "--catalog",
             str(catalog), "--port", "0"],
            cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        self.url = ""
        ready = threading.Event()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                m = re.search(r"listening on (http://\S+)", line)
                if m:
                    self.url = m.group(1)
                    ready.set()
            ready.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        self._ws_stop = threading.Event()
        self.http: httpx.Client | None = None
        if not ready.wait(120) or not self.url:
            self.stop()
            raise RuntimeError("livetwin serve did not start:\n" + "".join(self.output))
        self.http = httpx.Client(base_url=self.url, timeout=10,
                                 headers={"Authorization": f"Bearer {TOKEN}"})
        self.events: list[tuple[float, dict[str, Any]]] = []
        self._ws_thread = threading.Thread(target=self._observe, daemon=True)
        self._ws_thread.start()
        self.wait_event(lambda m: m["type"] == "hello", 20)

    def _observe(self) -> None:
        from websockets.sync.client import connect

        ws_url = self.url.replace("http://", "ws://") + "/ws"
        with connect(ws_url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            while not self._ws_stop.is_set():
                try:
                    text = ws.recv(timeout=0.2)
                except TimeoutError:
                    continue
                except Exception:
                    return
                self.events.append((time.time(), json.loads(text)))

    def wait_event(self, pred: Any, timeout: float, after: float = 0.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, msg in list(self.events):
                if t >= after and pred(msg):
                    return msg
            time.sleep(0.05)
        raise AssertionError(f"no matching daemon event in {timeout:.0f} s; got "
                             f"{[m for _, m in self.events][-15:]}")

    def say(self, text: str) -> tuple[float, str]:
        t0 = time.time()
        r = self.http.post("/api/say", json={"text": text})
        assert r.status_code == 202, r.text
        return t0, str(r.json()["id"])

    def health(self) -> dict[str, Any]:
        return dict(self.http.get("/api/health").json())

    def wait_quiet(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.health()["live"].get("speaking") is not None:
            assert time.monotonic() < deadline, "the twin never stopped speaking"
            time.sleep(0.2)

    def stop(self) -> int:
        self._ws_stop.set()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        # Close what the test process holds (the output pipe, the HTTP client), so nothing
        # is left for the garbage collector to warn about in a later test.
        self._pump.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.http is not None:
            self.http.close()
        return int(self.proc.returncode)


class Meters:
    """InputVolumeMeters of one OBS input: (receive time, peak level 0..1) pairs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.samples: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def on_input_volume_meters(self, data: Any) -> None:
        now = time.time()
        for item in data.inputs:
            if item.get("inputName") == self.name:
                levels = item.get("inputLevelsMul") or []
                peak = max((max(ch[0], ch[1]) for ch in levels if len(ch) >= 2), default=0.0)
                with self.lock:
                    self.samples.append((now, float(peak)))

    def since(self, t: float) -> list[tuple[float, float]]:
        with self.lock:
            return [s for s in self.samples if s[0] >= t]

    def first_above(self, level: float, after: float, timeout: float) -> float:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for t, v in self.since(after):
                if v > level:
                    return t
            time.sleep(0.02)
        got = max((v for _, v in self.since(after)), default=None)
        raise AssertionError(f"{self.name} meters never rose above {level:.4f} in "
                             f"{timeout:.0f} s (max {got})")


@pytest.fixture(scope="module")
def stack(obs_installed: None, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Daemon, ObsInstance, Meters]]:
    import obsws_python as obsws

    t0 = time.monotonic()
    udp = free_port(socket.SOCK_DGRAM)
    daemon = Daemon(tmp_path_factory.mktemp("serve"), udp)
    obs = ObsInstance(tmp_path_factory.mktemp("obs"), {
        "daemon_url": daemon.url, "token": TOKEN,
        "stream_url": f"udp://127.0.0.1:{udp}?overrun_nonfatal=1&fifo_size=50000",
        "caption_delay_ms": 0, "chat_source": CHAT, "chat_lines": 3,
    }, width=SIZE[0], height=SIZE[1], fps=15)
    meters = Meters(SOURCE)
    try:
        obs.start()
        obs.events(obsws.Subs.INPUTVOLUMEMETERS, [meters.on_input_volume_meters])
        obs.wait_log("livetwin: daemon connected to", 30)
        # OBS has joined the stream once the source has a frame (a Media Source that
        # joins while the machine is busy keeps a larger delay: see the latency test)
        obs.screenshot(SOURCE, timeout=30)
        time.sleep(2)
        print(f"\nstack up in {time.monotonic() - t0:.1f} s")
        yield daemon, obs, meters
    finally:
        obs.stop()
        assert daemon.stop() == 0, "".join(daemon.output)


def test_script_creates_the_avatar_source(stack: tuple[Daemon, ObsInstance, Meters]) -> None:
    _, obs, _ = stack
    deadline = time.monotonic() + 10
    while True:  # the script adds its sources from a timer shortly after loading
        items = obs.request("GetSceneItemList", {"sceneName": "Scene"})["sceneItems"]
        by_name = {i["sourceName"]: i for i in items}
        if {SOURCE, CAPTIONS} <= set(by_name) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert by_name[SOURCE]["inputKind"] == "ffmpeg_source"
    tr = by_name[SOURCE]["sceneItemTransform"]
    assert (tr["boundsType"], tr["boundsWidth"], tr["boundsHeight"]) == (
        "OBS_BOUNDS_SCALE_INNER", SIZE[0], SIZE[1])
    settings = obs.request("GetInputSettings", {"inputName": SOURCE})["inputSettings"]
    assert settings["input"].startswith("udp://127.0.0.1:")
    assert settings["is_local_file"] is False and settings["buffering_mb"] == 0
    assert "nobuffer" in settings["ffmpeg_options"]
    assert CAPTIONS in by_name
    hotkeys = obs.request("GetHotkeyList")["hotkeys"]
    assert {"livetwin.skip_line", "livetwin.toggle_pause", "livetwin.next_product",
            "livetwin.call_to_follow", "livetwin.point_to_cart"} <= set(hotkeys)


def test_obs_shows_the_twins_face(stack: tuple[Daemon, ObsInstance, Meters]) -> None:
    import mediapipe as mp

    _, obs, _ = stack
    deadline = time.monotonic() + 30
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
        while True:
            frame = obs.screenshot(SOURCE, timeout=30)
            found = mesh.process(np.ascontiguousarray(frame)).multi_face_landmarks
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    # For a person to look at (seams, label, scaling): OBS's own picture of the source.
    CHECK_DIR.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(CHECK_DIR / "obs_source.png")
    assert frame.shape == (SIZE[1], SIZE[0], 3)
    assert frame.std() > 10, "the screenshot is flat: no picture from the stream"
    assert found, "face mesh finds no face in OBS's picture of the twin"


def test_speech_reaches_obs_meters_and_captions(
        stack: tuple[Daemon, ObsInstance, Meters]) -> None:
    daemon, obs, meters = stack
    daemon.wait_quiet()
    t_idle = time.time()
    time.sleep(1.5)
    idle = max((v for _, v in meters.since(t_idle)), default=0.0)
    assert len(meters.since(t_idle)) >= 10, "no InputVolumeMeters events for the source"
    threshold = max(0.02, idle * 4)
    t_post, line_id = daemon.say(LINE)
    t_rise = meters.first_above(threshold, t_post, timeout=15)
    latency = t_rise - t_post
    start = daemon.wait_event(lambda m: m["type"] == "line_start" and str(m["id"]) == line_id,
                              5)
    sounding = start["at"] - t_post
    print(f"\nglass-to-glass: POST /api/say -> OBS meters {latency:.2f} s "
          f"(line sounding in the daemon's output after {sounding:.2f} s; "
          f"stream + OBS: {t_rise - start['at']:.2f} s; idle {idle:.4f}, "
          f"threshold {threshold:.3f})")
    # a loose bound: the figure itself is reported by test_glass_to_glass_latency
    assert latency < 3.0
    # the captions text source shows the line while it is spoken, then clears
    deadline = time.monotonic() + 5
    while obs.request("GetInputSettings", {"inputName": CAPTIONS})["inputSettings"].get(
            "text") != LINE:
        assert time.monotonic() < deadline, "the captions never showed the line"
        time.sleep(0.1)
    # the line is wider than the canvas in one row: the script's text source wraps it
    item = next(i for i in obs.request("GetSceneItemList", {"sceneName": "Scene"})[
        "sceneItems"] if i["sourceName"] == CAPTIONS)
    box = obs.request("GetSceneItemTransform", {"sceneName": "Scene", "sceneItemId":
                                                item["sceneItemId"]})["sceneItemTransform"]
    canvas_w = obs.request("GetVideoSettings")["baseWidth"]
    assert 0 < box["positionX"] + box["width"] <= canvas_w, (box, canvas_w)
    end = daemon.wait_event(lambda m: m["type"] == "line_end" and str(m["id"]) == line_id, 30)
    assert end["skipped"] is False
    deadline = time.monotonic() + 5
    while obs.request("GetInputSettings", {"inputName": CAPTIONS})["inputSettings"].get("text"):
        assert time.monotonic() < deadline, "the captions were not cleared after the line"
        time.sleep(0.1)


def test_glass_to_glass_latency(stack: tuple[Daemon, ObsInstance, Meters]) -> None:
    """POST /api/say -> the source's audio meters in OBS, over LATENCY_LINES short lines
    (the issue's target: < 1.0 s). OBS's Media Source keeps the delay it joined the
    stream with, which the keyframe interval bounds (output.keyframe_s = 0.25 s; with
    1 s it was 0.9-1.3 s). Reported, and bounded loosely: the machine is shared."""
    daemon, _, meters = stack
    figures = []
    for text in LATENCY_LINES:
        daemon.wait_quiet()
        time.sleep(1.0)  # OBS plays the stream ~0.5 s behind the daemon: let it fall silent
        t_idle = time.time()
        time.sleep(1.0)
        idle = max((v for _, v in meters.since(t_idle)), default=0.0)
        t_post, line_id = daemon.say(text)
        t_rise = meters.first_above(max(0.02, idle * 4), t_post, timeout=15)
        start = daemon.wait_event(
            lambda m, i=line_id: m["type"] == "line_start" and str(m["id"]) == i, 5)
        figures.append((t_rise - t_post, start["at"] - t_post))
    total = sorted(f[0] for f in figures)
    print(f"\nglass-to-glass over {len(figures)} lines: median {total[len(total) // 2]:.2f} s, "
          f"max {total[-1]:.2f} s; each (total, in the daemon): "
          + ", ".join(f"{a:.2f}/{b:.2f}" for a, b in figures))
    assert total[-1] < 3.0


def test_skip_line_hotkey_ends_the_line(stack: tuple[Daemon, ObsInstance, Meters]) -> None:
    daemon, obs, meters = stack
    daemon.wait_quiet()
    t_post, line_id = daemon.say(LONG_LINE)
    t_rise = meters.first_above(0.02, t_post, timeout=15)
    time.sleep(1.0)
    t_skip = time.time()
    obs.request("TriggerHotkeyByName", {"hotkeyName": "livetwin.skip_line"})
    end = daemon.wait_event(lambda m: m["type"] == "line_end" and str(m["id"]) == line_id, 5)
    assert end["skipped"] is True
    transcript = daemon.http.get("/api/transcript").json()
    assert any(str(e["id"]) == line_id for e in transcript)
    # the audio in OBS falls silent soon after the skip (the line would run > 10 s)
    time.sleep(2.5)
    late = [v for t, v in meters.since(t_skip + 2.0)]
    assert late and max(late) < 0.02, f"still sounding after the skip: {max(late):.3f}"
    print(f"\nskip: line sounding in OBS {t_skip - t_rise:.1f} s, skipped by the hotkey")


def test_pause_hotkey_and_scene_changes_reach_the_daemon(
        stack: tuple[Daemon, ObsInstance, Meters]) -> None:
    daemon, obs, _ = stack

    def state_after(request: str, data: dict[str, str], key: str, value: bool,
                    timeout: float) -> None:
        t = time.time()
        obs.request(request, data)
        daemon.wait_event(lambda m: m["type"] == "state" and m[key] is value, timeout, after=t)

    pause = {"hotkeyName": "livetwin.toggle_pause"}
    state_after("TriggerHotkeyByName", pause, "paused", True, 5)
    state_after("TriggerHotkeyByName", pause, "paused", False, 5)
    # a program scene without the twin: the daemon hears it is off air, and back
    obs.request("CreateScene", {"sceneName": "Elsewhere"})
    state_after("SetCurrentProgramScene", {"sceneName": "Elsewhere"}, "on_air", False, 10)
    state_after("SetCurrentProgramScene", {"sceneName": "Scene"}, "on_air", True, 10)


def text_of(obs: ObsInstance, name: str) -> str:
    return str(obs.request("GetInputSettings", {"inputName": name})["inputSettings"].get(
        "text", ""))


def wait_text(obs: ObsInstance, name: str, pred: Any, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while not pred(text := text_of(obs, name)):
        assert time.monotonic() < deadline, f"{name!r} shows {text!r}"
        time.sleep(0.1)
    return text


def test_deleted_avatar_source_comes_back(stack: tuple[Daemon, ObsInstance, Meters]) -> None:
    daemon, obs, _ = stack

    def avatar_item_ids() -> list[int]:
        items = obs.request("GetSceneItemList", {"sceneName": "Scene"})["sceneItems"]
        return [i["sceneItemId"] for i in items if i["sourceName"] == SOURCE]

    (old,) = avatar_item_ids()
    t = time.time()
    obs.request("RemoveInput", {"inputName": SOURCE})
    deadline = time.monotonic() + 10
    while True:  # a new scene item (new id) for a new source of the same name
        ids = avatar_item_ids()
        if ids and old not in ids:
            break
        assert time.monotonic() < deadline, f"the avatar source was not re-created: {ids}"
        time.sleep(0.1)
    assert len(ids) == 1, ids
    print(f"\navatar source re-created {time.time() - t:.1f} s after it was deleted")
    deadline = time.monotonic() + 20
    while obs.screenshot(SOURCE, timeout=20).std() < 10:  # and it plays the stream again
        assert time.monotonic() < deadline, "the re-created source shows no picture"
        time.sleep(0.3)
    print(f"re-created source plays {time.time() - t:.1f} s after the deletion")
    # the daemon may have heard "off air" for the moment the source was gone: it ends on air
    states = [m for at, m in daemon.events if at >= t and m["type"] == "state"]
    assert not states or states[-1]["on_air"] is True, states
    time.sleep(2.5)  # and it stays one source (no duplicates from later checks)
    assert len(avatar_item_ids()) == 1
    inputs = [i["inputName"] for i in obs.request("GetInputList")["inputs"]]
    assert inputs.count(SOURCE) == 1, inputs


def test_next_product_hotkey_and_chat_overlay(
        stack: tuple[Daemon, ObsInstance, Meters]) -> None:
    daemon, obs, _ = stack
    t = time.time()
    obs.request("TriggerHotkeyByName", {"hotkeyName": "livetwin.next_product"})
    state = daemon.wait_event(lambda m: m["type"] == "state" and m.get("product"), 5, after=t)
    product = state["product"]
    price = f"{product['price']:.2f}".removesuffix(".00")
    expected = f"Now selling: {product['name']} - {price} {product['currency']}"
    wait_text(obs, NOW_SELLING, lambda text: text == expected)
    # chat reaching the daemon shows in the chat overlay (the last chat_lines lines)
    for i in range(4):
        r = daemon.http.post("/api/chat", json={"platform": "twitch", "user": f"viewer{i}",
                                                "text": f"message {i}"})
        assert r.status_code == 202, r.text
    text = wait_text(obs, CHAT, lambda text: "viewer3: message 3" in text)
    assert "viewer0" not in text and len(text.splitlines()) == 3, text


def test_obs_shuts_down_cleanly(stack: tuple[Daemon, ObsInstance, Meters],
                                capsys: pytest.CaptureFixture[str]) -> None:
    _, obs, _ = stack
    t0 = time.monotonic()
    code = obs.stop()
    took = time.monotonic() - t0
    log = obs.log_text()
    # a window close, as a user quits (obs_harness module doc); SIGINT only after OBS
    # ignored that, which one CI run saw
    assert obs.closed_by in ("window", "window (ignored), then SIGINT"), obs.closed_by
    if obs.closed_by != "window":
        with capsys.disabled():  # shown in a passing run too
            print(f"\nNOTE: OBS ignored the window close; top-level windows then: "
                  f"{obs.windows_at_sigint}")
    assert code == 0, log[-3000:] + "\n" + (obs.crash_report() if code < 0 else "")
    assert "livetwin: script_unload: stopped cleanly" in log, log[-3000:]
    assert took < 15 + (0 if obs.closed_by == "window" else CLOSE_NOTICED_S)
    print(f"\nOBS closed in {took:.1f} s, exit code 0")
