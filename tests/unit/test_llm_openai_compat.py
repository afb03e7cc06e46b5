"""The LLM path against real local HTTP servers speaking /v1/chat/completions: a good
model adds checked lines; a model that hangs, errors, invents a price or a claim
leaves a template draft (and a show that runs on it); the prompt carries only the
product record."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from livetwin.config import LLMConfig
from livetwin.errors import BackendError, BackendTimeout
from livetwin.events import Product
from livetwin.llm.openai_compat import OpenAICompatLLM
from livetwin.show.scripts import generate
from livetwin.show.templates import load_templates

TINT = Product("lip-tint", "Aurora Velvet Lip Tint", 99.0, "CNY", list_price=159.0,
               stock=500, facts=("six shades, from nude to berry",
                                 "stays on for about eight hours", "vegan formula"))

Reply = Callable[[dict[str, object]], tuple[int, str]]


class Server:
    """A real HTTP server on 127.0.0.1 whose chat completion is `reply(request)`."""

    def __init__(self, reply: Reply) -> None:
        self.requests: list[dict[str, object]] = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get(
                    "Authorization"), **body})
                status, content = reply(body)
                if status == 0:  # hang until the test ends
                    outer.release.wait(10)
                    return
                data = json.dumps({"choices": [{"message": {"role": "assistant",
                                                            "content": content}}]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Reply], Server]]:
    servers: list[Server] = []

    def start(reply: Reply) -> Server:
        s = Server(reply).__enter__()
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.__exit__()


def llm(server: Server, timeout: float = 5.0) -> OpenAICompatLLM:
    return OpenAICompatLLM(LLMConfig(backend="openai", base_url=server.url, model="m",
                                     api_key="k-123", timeout_s=timeout))


def lines_reply(*pairs: tuple[str, str]) -> Reply:
    content = "```json\n" + json.dumps(
        {"lines": [{"kind": k, "text": t} for k, t in pairs]}) + "\n```"
    return lambda body: (200, content)


def test_a_good_model_adds_checked_lines(serve: Callable[[Reply], Server]) -> None:
    server = serve(lines_reply(("feature", "Six shades, from nude to berry, all vegan."),
                               ("price", "Get the Aurora Velvet Lip Tint for 99 yuan.")))
    draft = generate(TINT, load_templates("en"), llm(server))
    assert draft.origin == "llm+template"
    assert draft.lines[0].text == "Six shades, from nude to berry, all vegan."
    assert draft.lines[1].intents == ("price",)
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer k-123"
    messages = req["messages"]
    assert isinstance(messages, list)
    assert "ONLY what the product record says" in messages[0]["content"]
    assert "vegan formula" in messages[1]["content"] and "99" in messages[1]["content"]


def test_a_hanging_model_times_out_into_templates(serve: Callable[[Reply], Server]) -> None:
    server = serve(lambda body: (0, ""))
    t0 = time.monotonic()
    draft = generate(TINT, load_templates("en"), llm(server, timeout=0.5))
    assert time.monotonic() - t0 < 3.0
    assert draft.origin == "template" and "did not answer within 0.5 s" in draft.note
    assert draft.lines == generate(TINT, load_templates("en")).lines
    with pytest.raises(BackendTimeout):
        llm(server, timeout=0.3).complete("s", "u")


@pytest.mark.parametrize("pairs,why", [
    ((("price", "Today only 79 yuan!"),), "79"),
    ((("price", "Just 99 dollars."),), "dollars"),
    ((("urgency", "Only ten left, hurry."),), "ten"),
    ((("feature", "It is waterproof and lasts all day."),), "waterproof"),
    ((("feature", "Dermatologists recommend it for sensitive lips."),), "not supported"),
])
def test_a_model_that_invents_leaves_a_template_draft(
        serve: Callable[[Reply], Server], pairs: tuple[tuple[str, str], ...], why: str) -> None:
    server = serve(lines_reply(*pairs))
    draft = generate(TINT, load_templates("en"), llm(server))
    assert draft.origin == "template"
    assert why in draft.note and pairs[0][1] in draft.note
    assert pairs[0][1] not in {ln.text for ln in draft.lines}
    assert draft.lines == generate(TINT, load_templates("en")).lines


@pytest.mark.parametrize("status,content", [(500, "oops"), (200, "no json here"),
                                            (200, '{"lines": [{"text": 1}]}')])
def test_errors_and_nonsense_fall_back(serve: Callable[[Reply], Server], status: int,
                                       content: str) -> None:
    server = serve(lambda body: (status, content))
    draft = generate(TINT, load_templates("en"), llm(server))
    assert draft.origin == "template" and draft.note.startswith("LLM not used")


def test_unreachable_server_is_a_backend_error() -> None:
    cfg = LLMConfig(backend="openai", base_url="http://127.0.0.1:9/v1", timeout_s=1)
    with pytest.raises(BackendError):
        OpenAICompatLLM(cfg).complete("s", "u")


def test_the_show_runs_on_templates_after_the_model_failed(
        serve: Callable[[Reply], Server]) -> None:
    """Hanging and price-inventing models: the approved template draft airs, nothing of
    the models' lines does."""
    import random

    from livetwin.show.director import Director, DirectorSettings, ShowItem
    from livetwin.show.simulate import simulate
    from livetwin.show.strategy import Strategy, load_strategy
    from livetwin.store.db import ScriptRecord

    bad = serve(lines_reply(("price", "Today only 79 yuan!")))
    hang = serve(lambda body: (0, ""))
    t = load_templates("en")
    drafts = [generate(TINT, t, llm(bad)), generate(TINT, t, llm(hang, timeout=0.3))]
    for i, d in enumerate(drafts):
        record = ScriptRecord(i, TINT.id, "en", i + 1, "approved", d.origin, d.lines)
        director = Director([ShowItem(TINT, 1.0, record)], t, Strategy(load_strategy()),
                            DirectorSettings(), random.Random(i))
        spoken = simulate(director, 600.0)
        assert len([s for s in spoken if s.source == "script"]) > 20
        assert not any("79" in s.text for s in spoken)


def test_the_backend_is_chosen_by_name() -> None:
    from livetwin.errors import ConfigError
    from livetwin.llm.registry import from_config

    assert from_config(LLMConfig()) is None  # "none": templates only
    assert isinstance(from_config(LLMConfig(backend="openai")), OpenAICompatLLM)
    with pytest.raises(ConfigError, match=r"llm\.backend 'gpt5' is unknown"):
        from_config(LLMConfig(backend="gpt5"))


def test_cli_generate_with_a_hanging_llm_from_config(
        serve: Callable[[Reply], Server], tmp_path: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    from livetwin.cli import main

    home = Path(str(tmp_path))
    monkeypatch.setenv("LIVETWIN_HOME", str(home / "home"))
    server = serve(lambda body: (0, ""))
    cfg = home / "livetwin.yaml"
    cfg.write_text(f"llm:\n  backend: openai\n  base_url: {server.url}\n  timeout_s: 0.5\n",
                   encoding="utf-8")
    cat = home / "catalog.yaml"
    cat.write_text("products:\n  - {id: lip-tint, name: Aurora Velvet Lip Tint, price: 99, "
                   "currency: CNY, facts: [six shades]}\n", encoding="utf-8")
    assert main(["--config", str(cfg), "products", "import", str(cat)]) == 0
    capsys.readouterr()
    assert main(["--config", str(cfg), "scripts", "generate", "--product", "lip-tint",
                 "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["status"] == "draft" and record["origin"] == "template"
    assert "did not answer within 0.5 s" in record["note"] and record["lines"]
    assert len(server.requests) == 1
