"""The daemon's watchdog: state changes become health events (logged and kept), a dead
component is restarted (a sink's thread on a running output, the synthesis worker, a
chat connector's task) without stopping the output, the voice reports its fallback and
its recovery, the LLM probe, and `/api/health` carries it all."""

from __future__ import annotations

import asyncio
import http.server
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from livetwin.chat.registry import open_chat
from livetwin.config import ChatConfig, LLMConfig
from livetwin.output import LiveOutput, UdpTsSink
from livetwin.runtime import watchdog as wd
from livetwin.runtime.live_events import LineEnded, LineStarted
from livetwin.server.app import Daemon
from livetwin.server.auth import Token
from livetwin.speech.espeak import EspeakTTS
from livetwin.speech.fallback import FallbackTTS

from ..fakes_output import MarkerSource, free_tcp_port, free_udp_port
from ..fakes_tts import FakeTTS
from ..live_harness import ApiServer, Events, Ticker, make_live

TOKEN = "t0ken-for-the-tests-0123456789"


class ThreadKiller(BaseException):
    """Not an Exception: it ends the thread it is raised in (a bug no handler catches)."""


def until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


class Knob:
    """A component whose state the test sets (the watchdog's own logic under test)."""

    def __init__(self) -> None:
        self.check = wd.Check(wd.OK, "fine")
        self.restarted = 0

    def __call__(self) -> wd.Check:
        return self.check

    def restart(self) -> None:
        self.restarted += 1
        self.check = wd.Check(wd.OK, "fine again")


def test_state_changes_are_events_logged_and_kept(caplog: pytest.LogCaptureFixture) -> None:
    wall = [1000.0]
    dog = wd.Watchdog(wall=lambda: wall[0])
    voice = Knob()
    dog.add("voice", voice)
    dog.sample()
    assert dog.events() == []  # a healthy first look is no news
    voice.check = wd.Check(wd.DEGRADED, "primary failing")
    wall[0] = 1001.0
    with caplog.at_level(logging.WARNING, "livetwin.runtime.watchdog"):
        dog.sample()
        dog.sample()  # no change, no second event
    assert [(e.component, e.previous, e.state) for e in dog.events()] == [
        ("voice", "ok", "degraded")
    ]
    assert "health: voice ok -> degraded: primary failing" in caplog.text
    voice.check = wd.Check(wd.OK, "back")
    wall[0] = 1005.0
    dog.sample()
    snap = dog.snapshot()
    assert snap["components"]["voice"] == {
        "state": "ok",
        "detail": "back",
        "since": 1005.0,
        "restarts": 0,
    }
    assert [e["state"] for e in snap["events"]] == ["degraded", "ok"]
    for i in range(wd.MAX_EVENTS + 10):
        voice.check = wd.Check(wd.DOWN if i % 2 else wd.OK, str(i))
        dog.sample()
    assert len(dog.events()) == wd.MAX_EVENTS


def test_dead_component_is_restarted_at_most_every_few_seconds() -> None:
    now = [0.0]
    dog = wd.Watchdog(clock=lambda: now[0])
    sink = Knob()
    dog.add("sink:obs", sink, sink.restart)
    sink.check = wd.Check(wd.DOWN, "thread ended", dead=True)
    dog.sample()
    assert sink.restarted == 1 and dog.restarts == 1
    assert dog.snapshot()["components"]["sink:obs"]["state"] == "degraded"  # restarted
    sink.check = wd.Check(wd.DOWN, "thread ended", dead=True)  # died again at once
    now[0] = 1.0
    dog.sample()
    assert sink.restarted == 1  # not in a tight loop
    assert dog.snapshot()["components"]["sink:obs"]["state"] == "down"
    now[0] = 1.0 + wd.RESTART_MIN_S
    dog.sample()
    assert sink.restarted == 2 and dog.snapshot()["restarts"] == 2


def test_failing_only_when_a_vital_part_is_down() -> None:
    dog = wd.Watchdog()
    chat, store = Knob(), Knob()
    dog.add("chat:twitch", chat)
    dog.add("store", store)
    dog.sample()
    assert dog.state() == "ok"
    chat.check = wd.Check(wd.DOWN, "reconnecting")
    dog.sample()
    assert dog.state() == "degraded"  # the scripted show goes on without chat
    store.check = wd.Check(wd.DOWN, "disk gone")
    dog.sample()
    assert dog.state() == "failing"


def test_an_output_down_too_long_is_handed_over_once() -> None:
    """What cannot be restarted in place (the output) is escalated once it has been down
    for its limit: `livetwin serve` then exits 1 and its supervisor starts a new one."""
    now = [0.0]
    dog = wd.Watchdog(clock=lambda: now[0])
    output = Knob()
    dog.add("output", output)
    dog.escalate = {"output": 3.0}
    calls: list[tuple[str, str]] = []
    dog.on_escalate = lambda name, detail: calls.append((name, detail))
    output.check = wd.Check(wd.DOWN, "the output is not running")
    for t in (0.0, 1.0, 2.0):
        now[0] = t
        dog.sample()
    assert calls == []
    for t in (3.0, 4.0):
        now[0] = t
        dog.sample()
    assert calls == [("output", "the output is not running")]
    output.check = wd.Check(wd.OK, "")  # back: a later outage counts afresh
    now[0] = 5.0
    dog.sample()
    output.check = wd.Check(wd.DOWN, "again")
    for t in (6.0, 8.0, 9.5):
        now[0] = t
        dog.sample()
    assert calls[-1] == ("output", "again") and len(calls) == 2


def test_a_check_that_raises_is_reported_down_not_fatal() -> None:
    dog = wd.Watchdog()

    def broken() -> wd.Check:
        raise RuntimeError("bug")

    dog.add("memory", broken)
    dog.sample()
    comp = dog.snapshot()["components"]["memory"]
    assert comp["state"] == "down" and "RuntimeError: bug" in comp["detail"]


class DyingSink(UdpTsSink):
    """A real UDP MPEG-TS sink whose thread dies on its first connection."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.opens = 0

    def open_container(self) -> Any:
        self.opens += 1
        if self.opens == 1:
            raise ThreadKiller("the sink thread dies")
        return super().open_container()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_sink_thread_is_restarted_while_the_output_runs() -> None:
    sink = DyingSink(f"udp://127.0.0.1:{free_udp_port()}?pkt_size=1316")
    output = LiveOutput(MarkerSource((64, 48)), [sink])
    dog = wd.Watchdog()
    out_check = wd.OutputCheck(output.stats)
    dog.add("output", out_check)
    dog.add(
        "sink:obs",
        wd.sink_check("obs", output.stats, wd.sink_alive(output, sink), lambda: 0.0),
        wd.sink_restarter(output, sink),
    )
    output.start()
    try:
        until(lambda: sink._thread is not None and not sink._thread.is_alive())
        frames_before = output.stats().frames
        dog.sample()
        assert dog.restarts == 1
        until(lambda: sink.stats().state == "connected")
        time.sleep(1.2)
        dog.sample()
        snap = dog.snapshot()
        assert snap["components"]["sink:obs"]["state"] == "ok"
        # the output never stopped (a loaded test machine may slow it, not halt it)
        assert snap["components"]["output"]["state"] != "down", snap
        assert out_check.fps > 10 and output.stats().frames > frames_before + 10
        sink_events = [e["state"] for e in snap["events"] if e["component"] == "sink:obs"]
        assert sink_events[0] == "degraded" and sink_events[-1] == "ok", sink_events
    finally:
        output.stop(2.0)
    dog.sample()
    assert dog.snapshot()["components"]["output"]["state"] == "down"


def test_voice_reports_the_fallback_and_the_recovery() -> None:
    """A failing primary voice: lines come from espeak and the voice is degraded; once
    the primary works again (after its cooldown) the next line reports it back."""
    now = [0.0]
    primary = FakeTTS(fail_times=10**6)
    tts = FallbackTTS([primary, EspeakTTS()], cooldown_s=30.0, clock=lambda: now[0])
    live = make_live(tts)
    events = Events(live)
    dog = wd.Watchdog()
    dog.add(
        "voice",
        wd.VoiceCheck(lambda: not live.dead_threads(), tts.health, live.backlog),
        lambda: None,
    )
    try:
        with Ticker(live):
            first = live.say("The primary voice is down.")
            events.wait(lambda e: isinstance(e, LineEnded) and e.id == first, 20)
            dog.sample()
            voice = dog.snapshot()["components"]["voice"]
            assert voice["state"] == "degraded", voice
            assert "fake failing" in voice["detail"] and "espeak" in voice["detail"]
            primary.fail_times = 0
            now[0] = 31.0  # the cooldown is over: the next sentence probes the primary
            second = live.say("And now it is back.")
            events.wait(lambda e: isinstance(e, LineEnded) and e.id == second, 20)
        dog.sample()
        voice = dog.snapshot()["components"]["voice"]
        assert voice["state"] == "ok" and "last line by fake" in voice["detail"]
        assert tts.health()["failing"] == {}
    finally:
        live.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_synthesis_worker_is_revived_and_speaks_again() -> None:
    tts = FakeTTS(fail_times=1, error=ThreadKiller("worker dies"))  # type: ignore[arg-type]
    live = make_live(FallbackTTS([tts]))
    events = Events(live)
    dog = wd.Watchdog()
    dog.add(
        "voice",
        wd.VoiceCheck(lambda: not live.dead_threads(), lambda: {}, live.backlog),
        live.revive,
    )
    try:
        with Ticker(live):
            live.say("This line kills the worker.")
            until(lambda: live.dead_threads() == ["livetwin-tts"])
            line = live.say("This one is spoken after the restart.")
            dog.sample()
            assert dog.restarts == 1 and live.dead_threads() == []
            events.wait(lambda e: isinstance(e, LineStarted) and e.utterance.id == line, 20)
        assert [e.component for e in dog.events()] == ["voice"]
    finally:
        live.close()


class FlakyConnector:
    """A chat connector whose first run crashes (a bug); later runs read until cancelled."""

    name = "flaky"

    def __init__(self) -> None:
        self.runs = 0

    async def run(self, emit: Any) -> None:
        self.runs += 1
        if self.runs == 1:
            raise RuntimeError("parser bug")
        emit("flaky", "viewer", "hello again", None)
        await asyncio.Event().wait()


def test_a_crashed_chat_connector_is_restarted() -> None:
    service = open_chat(ChatConfig(), [], lambda *a, **k: "1", lambda: None, lambda: 0)
    conn = FlakyConnector()
    service.connectors = [conn]
    got: list[str] = []
    dog = wd.Watchdog()
    dog.add(
        "chat:flaky", wd.chat_check(conn, lambda: service.task_state(0)), lambda: service.restart(0)
    )
    service.start(lambda platform, user, text, kind: got.append(text))
    try:
        until(lambda: service.task_state(0)[0] == "failed")
        dog.sample()
        until(lambda: got == ["hello again"])
        assert conn.runs == 2 and service.task_state(0) == ("running", "")
        dog.sample()
        comp = dog.snapshot()["components"]["chat:flaky"]
        assert comp["state"] == "ok" and comp["restarts"] == 1
    finally:
        service.close()


class OnceKiller:
    """A callable that raises ThreadKiller on its first call, then returns `value`."""

    def __init__(self, value: Any) -> None:
        self.value, self.calls = value, 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise ThreadKiller("dies once")
        return self.value


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_chat_reply_worker_and_the_show_thread_are_restarted() -> None:
    from livetwin.server.serve import _chat_check, _show_check
    from livetwin.show.director import Director
    from livetwin.show.runner import ShowRunner
    from livetwin.show.strategy import Strategy, load_strategy
    from livetwin.show.templates import load_templates

    backlog = OnceKiller(0)
    service = open_chat(ChatConfig(), [], lambda *a, **k: "1", lambda: None, backlog)
    live = make_live()
    show = ShowRunner(
        Director([], load_templates("en"), Strategy(load_strategy())), live, poll_s=0.02
    )
    show_step = OnceKiller(None)  # the show thread's first poll dies
    show.step = show_step  # type: ignore[method-assign]
    dog = wd.Watchdog()
    dog.add("chat", lambda: _chat_check(service), service.restart_pipeline)
    dog.add("show", lambda: _show_check(show), show.revive)
    service.start(lambda *a: None)
    show.start()
    try:
        until(lambda: not service.pipeline_alive() and not show.alive())
        dog.sample()
        assert service.pipeline_alive() and show.alive() and dog.restarts == 2
        until(lambda: backlog.calls > 1 and show_step.calls > 1)  # working again
        dog.sample()
        comps = dog.snapshot()["components"]
        assert comps["chat"]["state"] == "ok" and comps["show"]["state"] == "ok"
    finally:
        show.stop()
        service.close()
        live.close()


@pytest.fixture
def llm_server() -> Iterator[str]:
    class Models(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"data": [{"id": "qwen"}]}'
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def probed(check: wd.ProbeCheck) -> wd.Check:
    check()
    until(lambda: check.probe is not None and check().detail != "not probed yet")
    return check()


def test_llm_probe_up_and_down(llm_server: str) -> None:
    from livetwin.llm.registry import prober
    from livetwin.server.serve import _llm_check

    up = _llm_check(prober(LLMConfig(backend="openai", base_url=llm_server)))
    assert isinstance(up, wd.ProbeCheck)
    assert probed(up).state == wd.OK
    down = _llm_check(
        prober(LLMConfig(backend="openai", base_url=f"http://127.0.0.1:{free_tcp_port()}/v1"))
    )
    assert isinstance(down, wd.ProbeCheck)
    result = probed(down)
    assert result.state == wd.DEGRADED and "templates" in result.detail
    none = _llm_check(prober(LLMConfig()))
    assert none().state == wd.OK and "templates" in none().detail


def test_memory_check_and_rss() -> None:
    assert wd.rss_mb() > 10
    assert wd.memory_check(1e9)().state == wd.OK
    assert wd.memory_check(1.0)().state == wd.DEGRADED


def test_health_route_carries_the_watchdog() -> None:
    live = make_live()
    dog = wd.Watchdog()
    knob = Knob()
    dog.add("voice", knob)
    knob.check = wd.Check(wd.DEGRADED, "speaking with espeak")
    dog.sample()
    daemon = Daemon(live, Token(TOKEN, "config"), watchdog=dog)
    try:
        with ApiServer(daemon) as server:
            body = httpx.get(f"{server.url}/api/health", timeout=10).json()
        assert body["status"] == "ok"  # the daemon serves; its parts may be degraded
        health = body["health"]
        assert health["state"] == "degraded" and health["restarts"] == 0
        assert health["components"]["voice"]["detail"] == "speaking with espeak"
        assert health["events"][0]["component"] == "voice" and health["rss_mb"] > 0
    finally:
        live.close()
