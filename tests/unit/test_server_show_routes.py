"""The dashboard's catalog and script routes (server/show_routes.py) on a real HTTP server
over a real SQLite store, with a show director on a LiveTwin of fakes: add and edit one
product (checked like a catalog file, the wrong field named), import a catalog (one
transaction), generate a draft (templates; an OpenAI-compatible LLM and its fallback),
edit a script into a new draft (the claims checker names the bad line); the show's tier
and next lines (GET /api/show); an operator's answer saved into a product's FAQ (the chat
pipeline answers the same question by itself afterwards)."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from livetwin.chat.pipeline import ChatPipeline
from livetwin.config import Config
from livetwin.server.app import Daemon
from livetwin.server.auth import Token
from livetwin.show.catalog import CatalogItem
from livetwin.show.director import Director, DirectorSettings
from livetwin.show.runner import ShowRunner, show_items
from livetwin.show.scripts import generate_draft
from livetwin.show.strategy import Strategy, load_strategy
from livetwin.show.templates import load_templates
from livetwin.store import Store, open_store

from ..live_harness import ApiServer, make_live
from .test_show_director import PRODUCTS

TOKEN = "t0ken-for-the-show-routes-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SCARF = {"id": "scarf", "name": "Merino Scarf", "price": 45, "currency": "EUR",
         "list_price": 60, "stock": 12, "facts": ["100% merino wool", "180 cm long"],
         "faq": [{"q": ["wool", "material"], "a": "It is merino wool, {price} EUR."}]}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'routes.db'}")
    s.import_catalog([CatalogItem(p, 3.0 if p.id == "mug" else 1.0) for p in PRODUCTS])
    yield s
    s.close()


def make_daemon(store: Store | None, config: Config | None = None) -> Daemon:
    live = make_live(products=PRODUCTS)
    director = Director(show_items(store, "en") if store else [], load_templates("en"),
                        Strategy(load_strategy()), DirectorSettings(), random.Random(0))
    return Daemon(live, Token(TOKEN, "config"), list(PRODUCTS), store=store, config=config,
                  show=ShowRunner(director, live))


def client_for(daemon: Daemon) -> Iterator[tuple[httpx.Client, Daemon]]:
    with ApiServer(daemon) as server, httpx.Client(base_url=server.url, timeout=20,
                                                   headers=AUTH) as c:
        yield c, daemon
    daemon.live.close()


@pytest.fixture
def client(store: Store) -> Iterator[tuple[httpx.Client, Daemon]]:
    yield from client_for(make_daemon(store))


def director_lines(daemon: Daemon, product_id: str) -> list[str]:
    assert daemon.show is not None
    item = next(i for i in daemon.show.director._items if i.item.product.id == product_id)
    return [ln.text for lines in item.lines.values() for ln in lines]


# ---------------------------------------------------------------- products

def test_add_a_product_reaches_the_store_and_the_running_daemon(
        client: tuple[httpx.Client, Daemon], store: Store) -> None:
    c, daemon = client
    r = c.post("/api/products", json=SCARF)
    assert r.status_code == 201, r.text
    assert r.json()["added"] is True and r.json()["currency"] == "EUR"
    listed = {p["id"]: p for p in c.get("/api/products").json()}
    assert list(listed) == ["lip-tint", "steel-bottle", "mug", "scarf"]
    assert listed["scarf"] == {"id": "scarf", "name": "Merino Scarf", "price": 45.0,
                               "currency": "EUR", "list_price": 60.0, "stock": 12,
                               "facts": ["100% merino wool", "180 cm long"],
                               "faq": [{"q": ["wool", "material"],
                                        "a": "It is merino wool, {price} EUR."}]}
    assert store.product("scarf").price == 45.0
    assert [p.id for p in daemon.products] == [p.id for p in daemon.live.products] == [
        "lip-tint", "steel-bottle", "mug", "scarf"]
    assert daemon.show is not None
    assert "scarf" in [i.item.product.id for i in daemon.show.director._items]


def test_editing_a_product_keeps_its_weight_and_retires_lines_that_no_longer_hold(
        client: tuple[httpx.Client, Daemon], store: Store) -> None:
    c, daemon = client
    record = generate_draft(store, "mug", load_templates("en"))
    assert c.post(f"/api/scripts/{record.id}/approve").status_code == 200
    assert any("39" in t for t in director_lines(daemon, "mug"))
    mug = next(p for p in c.get("/api/products").json() if p["id"] == "mug")
    r = c.post("/api/products", json={**mug, "price": 42})
    assert r.status_code == 200, r.text
    assert r.json()["added"] is False and r.json()["weight"] == 3.0
    assert {i.product.id: i.weight for i in store.catalog()}["mug"] == 3.0
    assert store.product("mug").price == 42.0
    lines = director_lines(daemon, "mug")
    assert lines and not any("39" in t for t in lines)  # the old price is never said
    assert [p.price for p in daemon.live.products if p.id == "mug"] == [42.0]


@pytest.mark.parametrize("change,field,words", [
    ({"price": -1}, "price", "greater than or equal to 0"),
    ({"price": "cheap"}, "price", "valid number"),
    ({"currency": "RMB"}, "currency", "unknown currency 'RMB'"),
    ({"name": ""}, "name", "at least 1 character"),
    ({"id": "has space"}, "id", "should match pattern"),
    ({"stock": -3}, "stock", "greater than or equal to 0"),
    ({"facts": ["fine", "  "]}, "facts", "a fact is empty"),
    ({"faq": [{"q": ["x"], "a": "only {colour}"}]}, "faq.0.a", "unknown field(s) colour"),
    ({"colour": "red"}, "colour", "unknown field 'colour'"),
])
def test_a_bad_product_is_422_naming_the_field_and_stores_nothing(
        client: tuple[httpx.Client, Daemon], store: Store, change: dict[str, Any], field: str,
        words: str) -> None:
    c, daemon = client
    r = c.post("/api/products", json={**SCARF, **change})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == field and words in body["detail"], body
    assert field in body["detail"]  # the sentence names the field too
    assert [p.id for p in store.products()] == ["lip-tint", "steel-bottle", "mug"]
    assert len(daemon.products) == 3


def test_a_product_missing_a_field_or_not_json(client: tuple[httpx.Client, Daemon]) -> None:
    c, _ = client
    r = c.post("/api/products", json={k: v for k, v in SCARF.items() if k != "price"})
    assert r.status_code == 422 and r.json()["field"] == "price"
    assert "Field required" in r.json()["detail"]
    r = c.post("/api/products", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "not JSON" in r.json()["detail"]
    r = c.post("/api/products", json=[SCARF])
    assert r.status_code == 422 and "is an object" in r.json()["detail"]
    assert c.post("/api/products", json=SCARF, headers={"Authorization": "Bearer no"}
                  ).status_code == 401


def test_no_store_is_404() -> None:
    for c, _ in client_for(make_daemon(None)):
        r = c.post("/api/products", json=SCARF)
        assert r.status_code == 404 and "no product store" in r.json()["detail"]
        assert c.post("/api/scripts/generate", json={"product_id": "mug"}).status_code == 404


# ---------------------------------------------------------------- import

GOOD = """products:
  - id: scarf
    name: Merino Scarf
    price: 45
    currency: EUR
    facts: [180 cm long]
  - id: mug
    name: Stone Mug
    price: 41
    currency: CNY
    facts: [hand glazed, holds 350 ml, microwave safe]
"""


def test_import_a_catalog_as_yaml_or_json(client: tuple[httpx.Client, Daemon],
                                          store: Store) -> None:
    c, daemon = client
    r = c.post("/api/products/import", content=GOOD.encode(),
               headers={"Content-Type": "application/yaml"})
    assert r.status_code == 200, r.text
    assert r.json() == {"products": 2, "added": 1, "updated": 1}
    assert store.product("mug").price == 41.0 and store.product("scarf").name == "Merino Scarf"
    assert "scarf" in [p.id for p in daemon.live.products]
    r = c.post("/api/products/import", json={"yaml": GOOD.replace("41", "43"),
                                             "name": "shop.yaml"})
    assert r.status_code == 200 and r.json()["updated"] == 1
    assert store.product("mug").price == 43.0


@pytest.mark.parametrize("text,words,field,product", [
    (GOOD.replace("price: 41", "price: -41"),
     "shop.yaml:9: 'products.1.price': Input should be greater than or equal to 0 "
     "(product 'mug').", "products.1.price", "mug"),
    (GOOD.replace("currency: CNY", "currency: RMB"), "unknown currency 'RMB'",
     "products.1.currency", "mug"),
    (GOOD.replace("id: mug", "id: scarf"), "product id(s) scarf appear twice", "id", "scarf"),
    ("products: [\n  {id: a, name: b\n", "shop.yaml:3: not valid YAML", None, None),
    ("items: []\n", "expected a mapping with a `products:` list", None, None),
])
def test_a_bad_catalog_is_422_naming_product_and_field_and_stores_nothing(
        client: tuple[httpx.Client, Daemon], store: Store, text: str, words: str,
        field: str | None, product: str | None) -> None:
    c, _ = client
    r = c.post("/api/products/import", json={"yaml": text, "name": "shop.yaml"})
    assert r.status_code == 422, r.text
    body = r.json()
    assert words in body["detail"], body
    assert body.get("field") == field and body.get("product") == product
    # one transaction: the valid scarf in the same file was not stored either
    assert [p.id for p in store.products()] == ["lip-tint", "steel-bottle", "mug"]
    assert store.product("mug").price == 39.0


def test_import_limits(client: tuple[httpx.Client, Daemon]) -> None:
    c, _ = client
    big = GOOD + "#" + "x" * (70 * 1024) + "\n"
    r = c.post("/api/products/import", content=big.encode(),
               headers={"Content-Type": "application/yaml"})
    assert r.status_code == 413
    r = c.post("/api/products/import", content=b"\xff\xfe", headers={"Content-Type": "text/plain"})
    assert r.status_code == 422 and "UTF-8" in r.json()["detail"]
    r = c.post("/api/products/import", content=b"x", headers={"Content-Type": "image/png"})
    assert r.status_code == 415 and "YAML" in r.json()["detail"]
    r = c.post("/api/products/import", json={"text": GOOD})
    assert r.status_code == 422 and '{"yaml"' in r.json()["detail"]


# ---------------------------------------------------------------- scripts

def test_generate_makes_a_new_draft_version(client: tuple[httpx.Client, Daemon],
                                            store: Store) -> None:
    c, _ = client
    r = c.post("/api/scripts/generate", json={"product_id": "lip-tint"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["product_id"], first["version"], first["status"], first["lang"],
            first["origin"]) == ("lip-tint", 1, "draft", "en", "template")
    assert len(first["lines"]) > 5 and {ln["kind"] for ln in first["lines"]} >= {
        "opener", "feature", "price"}
    assert any("99" in ln["text"] for ln in first["lines"])
    second = c.post("/api/scripts/generate", json={"product_id": "lip-tint", "lang": "de"})
    assert second.status_code == 201 and second.json()["lang"] == "de"
    assert second.json()["version"] == 1  # versions count per product and language
    third = c.post("/api/scripts/generate", json={"product_id": "lip-tint"}).json()
    assert third["version"] == 2
    assert [s.status for s in store.scripts("lip-tint")] == ["draft"] * 3
    r = c.post("/api/scripts/generate", json={"product_id": "nope"})
    assert r.status_code == 404 and "no product 'nope'" in r.json()["detail"]
    assert c.post("/api/scripts/generate", json={"product_id": "mug", "lang": "fr"}
                  ).status_code == 422


class _FakeLLM(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat completion: one grounded line, one invented claim."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        reply = {"lines": [{"kind": "feature", "text": "Stone Mug is hand glazed."},
                           {"kind": "feature", "text": "Stone Mug is free today."}]}
        body = json.dumps({"choices": [{"message": {"content": json.dumps(reply)}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


def test_generate_uses_the_configured_llm_and_falls_back(store: Store) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        cfg = Config.model_validate({"llm": {"backend": "openai", "base_url": url,
                                             "timeout_s": 5}})
        for c, _ in client_for(make_daemon(store, cfg)):
            r = c.post("/api/scripts/generate", json={"product_id": "mug"}).json()
            assert r["origin"] == "llm+template"
            texts = [ln["text"] for ln in r["lines"]]
            assert texts[0] == "Stone Mug is hand glazed."
            assert "Stone Mug is free today." not in texts
            assert "'free' is a claim the product record does not make" in r["note"]
    finally:
        server.shutdown()
        server.server_close()
    dead = Config.model_validate({"llm": {"backend": "openai", "timeout_s": 1,
                                          "base_url": "http://127.0.0.1:9/v1"}})
    for c, _ in client_for(make_daemon(store, dead)):
        r = c.post("/api/scripts/generate", json={"product_id": "mug"})
        assert r.status_code == 201
        assert r.json()["origin"] == "template" and "LLM not used" in r.json()["note"]


def test_editing_an_approved_script_makes_a_new_draft(client: tuple[httpx.Client, Daemon],
                                                     store: Store) -> None:
    c, daemon = client
    v1 = c.post("/api/scripts/generate", json={"product_id": "mug"}).json()
    assert c.post(f"/api/scripts/{v1['id']}/approve").status_code == 200
    lines = [{"text": ln["text"], "kind": ln["kind"]} for ln in v1["lines"][:3]]
    lines[1] = {"text": "This Stone Mug holds 350 ml of tea.", "kind": "feature"}
    r = c.put(f"/api/scripts/{v1['id']}", json={"lines": lines})
    assert r.status_code == 201, r.text
    v2 = r.json()
    assert (v2["version"], v2["status"], v2["parent_id"], v2["origin"]) == (
        2, "draft", v1["id"], "edit")
    assert [ln["text"] for ln in v2["lines"]] == [ln["text"] for ln in lines]
    assert v2["lines"][1]["intents"] == ["product", "feature"]
    # the approved version is unchanged and still the one on air
    assert store.script(v1["id"]).status == "approved"
    assert [ln.to_json() for ln in store.script(v1["id"]).lines] == v1["lines"]
    assert store.on_air("en")["mug"].id == v1["id"]
    assert "This Stone Mug holds 350 ml of tea." not in director_lines(daemon, "mug")


@pytest.mark.parametrize("bad,words", [
    ("Only 5 left, order now!", "the number 5 is not in the product record"),
    ("Shipping is free for everyone.", "'free' is a claim the product record does not make"),
    ("It costs 39 dollars.", "'dollars' is not the product's currency (CNY)"),
])
def test_an_edit_with_an_ungrounded_claim_is_422_naming_the_line(
        client: tuple[httpx.Client, Daemon], store: Store, bad: str, words: str) -> None:
    c, _ = client
    v1 = c.post("/api/scripts/generate", json={"product_id": "mug"}).json()
    lines = [{"text": "Meet the Stone Mug.", "kind": "opener"},
             {"text": "It is hand glazed.", "kind": "feature"},
             {"text": bad, "kind": "urgency"}]
    r = c.put(f"/api/scripts/{v1['id']}", json={"lines": lines})
    assert r.status_code == 422, r.text
    assert r.json()["line"] == 3 and r.json()["detail"].startswith("line 3 ")
    assert words in r.json()["detail"]
    assert len(store.scripts("mug")) == 1  # nothing written


def test_edit_input_errors(client: tuple[httpx.Client, Daemon]) -> None:
    c, _ = client
    v1 = c.post("/api/scripts/generate", json={"product_id": "mug"}).json()
    r = c.put(f"/api/scripts/{v1['id']}", json={"lines": [{"text": "Hi.", "kind": "song"}]})
    assert r.status_code == 422 and r.json()["line"] == 1 and "kind 'song'" in r.json()["detail"]
    r = c.put(f"/api/scripts/{v1['id']}", json={"lines": [{"text": " ", "kind": "opener"}]})
    assert r.status_code == 422 and "line 1 is empty" in r.json()["detail"]
    r = c.put(f"/api/scripts/{v1['id']}", json={"lines": []})
    assert r.status_code == 422 and r.json()["line"] is None and "no lines" in r.json()["detail"]
    assert c.put("/api/scripts/999", json={"lines": []}).status_code == 404
    assert c.put(f"/api/scripts/{v1['id']}", json={"lines": [{"text": "x"}]}).status_code == 422


# ---------------------------------------------------------------- the dashboard's show view


def test_the_show_outlook_lists_the_lines_the_director_says_next(
        client: tuple[httpx.Client, Daemon], store: Store) -> None:
    c, daemon = client
    assert daemon.show is not None
    r = c.get("/api/show").json()
    assert (r["running"], r["tier"], r["min_viewers"], r["viewers"], r["next"]) == (
        True, "empty", 0, 0, [])
    assert c.post("/api/viewers", json={"count": 25}).status_code == 202
    r = c.get("/api/show").json()
    assert (r["tier"], r["viewers"], r["spike"]) == ("growing", 25, False)
    record = generate_draft(store, "mug", load_templates("en"))
    assert c.post(f"/api/scripts/{record.id}/approve").status_code == 200
    director, now = daemon.show.director, 1_000.0
    first = director.next_line(now)  # the pitch is planned; its first line issued
    assert first is not None and first.utterance.product_id == "mug"
    listed = c.get("/api/show").json()
    assert listed["product_id"] == "mug"
    # first the line handed to the twin and not sounding yet, then the rest of the pitch
    assert listed["next"][0] == {"text": first.utterance.text, "kind": "issued"}
    assert len(listed["next"]) > 1
    said, previous = [], first.utterance.id
    for _ in listed["next"][1:]:  # the lines listed are the ones said next, in order
        director.on_line_ended(now, previous)
        now += 60.0  # past the tier's pause between lines
        cue = director.next_line(now)
        assert cue is not None
        said.append({"text": cue.utterance.text, "kind": cue.kind})
        previous = cue.utterance.id
    assert said == listed["next"][1:]


# ---------------------------------------------------------------- FAQ from the chat queue

FAQ_Q = "Can I engrave a name on the mug?"
FAQ_A = "Yes: engraving is free, just add the name to your order note."


def with_chat(daemon: Daemon) -> ChatPipeline:
    """A real chat pipeline (answer database) on the daemon, as serve wires it."""
    pipeline = ChatPipeline(daemon.products, daemon.live.say)
    daemon.chat = SimpleNamespace(pipeline=pipeline, connectors=[])  # type: ignore[assignment]
    return pipeline


def test_an_operator_answer_saved_to_the_faq_is_answered_next_time(
        client: tuple[httpx.Client, Daemon], store: Store) -> None:
    c, daemon = client
    pipeline = with_chat(daemon)
    assert pipeline.answers.answer(FAQ_Q) is None
    pipeline.unanswered.append({"chat_id": "c7", "user": "lena", "text": FAQ_Q})
    r = c.post("/api/products/mug/faq", json={"q": [FAQ_Q], "a": FAQ_A, "chat_id": "c7"})
    assert r.status_code == 201, r.text
    entry = {"q": ["can i engrave a name on the"], "a": FAQ_A}  # as questions are compared
    assert r.json()["faq"] == [entry]
    assert store.product("mug").faq == ((tuple(entry["q"]), FAQ_A),)
    assert list(pipeline.unanswered) == []
    answer = pipeline.answers.answer(FAQ_Q)  # the running pipeline's database was rebuilt
    assert answer is not None and answer.parts[0][:2] == ("mug", FAQ_A)
    # the same question again replaces the answer rather than adding a second entry
    r = c.post("/api/products/mug/faq", json={"q": ["Can I engrave a NAME on the mug??"],
                                              "a": "Engraving is free."})
    assert r.status_code == 201 and r.json()["faq"] == [{"q": entry["q"],
                                                         "a": "Engraving is free."}]


def test_a_bad_faq_answer_is_422_naming_the_field_and_stores_nothing(
        client: tuple[httpx.Client, Daemon], store: Store) -> None:
    c, daemon = client
    with_chat(daemon)
    r = c.post("/api/products/mug/faq", json={"q": [FAQ_Q], "a": "It costs {cost}."})
    assert r.status_code == 422 and r.json()["field"] == "faq.a"
    assert "unknown field(s) cost" in r.json()["detail"]
    r = c.post("/api/products/mug/faq", json={"q": ["?!"], "a": FAQ_A})
    assert r.status_code == 422 and r.json()["field"] == "faq.q"
    assert c.post("/api/products/mug/faq", json={"q": [], "a": FAQ_A}).status_code == 422
    assert c.post("/api/products/mug/faq", json={"q": [FAQ_Q], "a": ""}).status_code == 422
    r = c.post("/api/products/nope/faq", json={"q": [FAQ_Q], "a": FAQ_A})
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    assert store.product("mug").faq == ()
