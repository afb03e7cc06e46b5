"""The dashboard's script routes and the viewer count on a real HTTP server: list the
drafts, approve one (the running show picks it up for its next pitch), reject it, and
POST /api/viewers reaching the director's strategy."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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

TOKEN = "t0ken-for-the-show-tests-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(f"sqlite:///{tmp_path / 'api.db'}")
    s.import_catalog([CatalogItem(p) for p in PRODUCTS])
    generate_draft(s, "mug", load_templates("en"))
    return s


@pytest.fixture
def client(store: Store) -> Iterator[tuple[httpx.Client, Daemon]]:
    live = make_live(products=PRODUCTS)
    t = load_templates("en")
    director = Director(show_items(store, "en"), t, Strategy(load_strategy()),
                        DirectorSettings(), random.Random(0))
    daemon = Daemon(live, Token(TOKEN, "config"), PRODUCTS, store=store,
                    show=ShowRunner(director, live))
    with ApiServer(daemon) as server, httpx.Client(base_url=server.url, timeout=10,
                                                   headers=AUTH) as c:
        yield c, daemon
    live.close()


def test_scripts_list_approve_reject(client: tuple[httpx.Client, Daemon]) -> None:
    c, daemon = client
    assert daemon.show is not None
    listed = c.get("/api/scripts").json()
    assert [(s["id"], s["product_id"], s["version"], s["status"]) for s in listed] == [
        (1, "mug", 1, "draft")]
    assert listed[0]["lines"] and {"text", "kind", "intents"} <= set(listed[0]["lines"][0])
    assert daemon.show.director.pitches == {}
    assert not daemon.show.director._pitchable()

    r = c.post("/api/scripts/1/approve")
    assert r.status_code == 200 and r.json() == {"id": 1, "product_id": "mug", "version": 1,
                                                 "status": "approved"}
    assert [i.item.product.id for i in daemon.show.director._pitchable()] == ["mug"]
    assert c.post("/api/scripts/1/reject").json()["status"] == "rejected"
    assert not daemon.show.director._pitchable()
    assert c.post("/api/scripts/99/approve").status_code == 404
    assert c.post("/api/scripts/abc/approve").status_code == 422
    assert c.get("/api/scripts", params={"product_id": "lip-tint"}).json() == []
    assert c.get("/api/scripts", headers={"Authorization": "Bearer no"}).status_code == 401


def test_viewer_count_reaches_the_strategy(client: tuple[httpx.Client, Daemon]) -> None:
    c, daemon = client
    assert daemon.show is not None
    assert c.post("/api/viewers", json={"count": 2000}).status_code == 202
    assert daemon.show.director.strategy.tier.name == "crowd"
    assert c.get("/api/health").json()["viewers"] == 2000
