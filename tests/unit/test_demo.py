"""`livetwin demo`'s parts: the simulated audience and the demo shop's store."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest

from livetwin.cli import main
from livetwin.config import Config
from livetwin.events import ChatKind
from livetwin.runtime.demo import Audience, demo_config, keep_recording, prepare_store
from livetwin.store import open_store


def test_the_audience_rises_spikes_and_falls_and_does_everything() -> None:
    a = Audience(600.0)
    counts = [a.viewers(t) for t in range(600)]
    assert counts[0] < 10 < counts[250]  # rises
    spike = max(counts)
    assert spike >= 10 * counts[300]  # a sudden spike (the strategy's spike tier)
    assert counts[-1] < counts[300]  # and falls back
    kinds = {kind for t in range(600) for _, _, kind in a.plan(t).events}
    assert kinds == {ChatKind.COMMENT, ChatKind.FOLLOW, ChatKind.GIFT, ChatKind.JOIN}
    texts = [text for t in range(600) for _, text, k in a.plan(t).events if k is ChatKind.COMMENT]
    assert any("how much" in x for x in texts) and any("你好" in x or "口红" in x for x in texts)
    assert a.plan(42) == Audience(600.0).plan(42)  # seeded: the same show every run


def test_a_busy_audience_chats_at_its_rate_with_a_moving_count() -> None:
    quiet, busy = Audience(3600.0), Audience(3600.0, chat_rate=4.0)
    span = range(60, 660)  # after the scripted opening minute
    sent = sum(len(busy.plan(t).events) for t in span)
    assert 0.9 * 4.0 * len(span) < sent < 1.1 * 4.0 * len(span)
    assert sum(len(quiet.plan(t).events) for t in span) < 0.5 * len(span)
    kinds = Counter(kind for t in span for _, _, kind in busy.plan(t).events)
    assert set(kinds) == {ChatKind.COMMENT, ChatKind.FOLLOW, ChatKind.GIFT, ChatKind.JOIN}
    users = {user for t in span for user, _, _ in busy.plan(t).events}
    assert len(users) > 500  # hundreds of viewers, not the same eighteen
    counts = [busy.plan(t).viewers for t in span]
    changes = sum(a != b for a, b in itertools.pairwise(counts))
    assert changes > 0.5 * len(span)  # the count moves every second or so
    assert busy.plan(42) == Audience(3600.0, chat_rate=4.0).plan(42)  # seeded
    assert Audience(3600.0, chat_rate=0.5).plan(300) != busy.plan(300)
    with pytest.raises(ValueError):
        Audience(60.0, chat_rate=0)


def test_the_demo_shop_has_an_approved_script_per_product(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    products = prepare_store(url, "en", Config())
    assert len(products) == 3
    store = open_store(url)
    try:
        on_air = store.on_air("en")
        assert set(on_air) == {p.id for p in products}
        first = {pid: r.id for pid, r in on_air.items()}
    finally:
        store.close()
    prepare_store(url, "en", Config())  # a second run reuses the approvals
    store = open_store(url)
    try:
        assert {pid: r.id for pid, r in store.on_air("en").items()} == first
    finally:
        store.close()


def test_demo_config_keeps_the_users_store_apart(tmp_path: Path) -> None:
    cfg = demo_config(Config(), tmp_path, tmp_path / "rec")
    assert cfg.store.url == f"sqlite:///{tmp_path / 'demo.db'}"
    assert cfg.output.record_dir == tmp_path / "rec"
    assert Config().store.url != cfg.store.url


def test_the_longest_recording_becomes_demo_mp4(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "a.mp4").write_bytes(b"x" * 10)
    (rec / "b.mp4").write_bytes(b"y" * 100)
    said: list[str] = []
    keep_recording(rec, tmp_path / "demo.mp4", said.append)
    assert (tmp_path / "demo.mp4").read_bytes() == b"y" * 100
    assert not (tmp_path / "demo.mp4.part").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--minutes", "0"],
        ["--minutes", "-3"],
        ["--out", "demo.avi"],
        ["--port", "70000"],
        ["--chat-rate", "0"],
        ["--chat-rate", "500"],
    ],
)
def test_bad_demo_options_are_one_clear_error(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err


def test_a_demo_folder_that_is_no_bundle_does_not_hide_the_demo_avatar(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the livetwin home, `demo/` is the demo's store folder, not an avatar."""
    from livetwin.avatar import bundle
    from livetwin.render import say

    (tmp_path / "demo").mkdir()
    monkeypatch.chdir(tmp_path)
    built = tmp_path / "built.twin"
    monkeypatch.setattr("livetwin.avatar.demo.demo_bundle", lambda: built)
    assert say.resolve_avatar("demo") == built
    (tmp_path / "demo" / bundle.MANIFEST).write_text("{}")  # a bundle called demo wins
    with pytest.raises(bundle.BundleError):
        say.resolve_avatar("demo")  # (this one is broken, so loading it fails)
