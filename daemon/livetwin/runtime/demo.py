"""`livetwin demo`: the whole show on embedded defaults, for a newcomer.

It runs the real daemon (`server.serve.run`) with:
- the embedded demo avatar (scikit-image's public-domain astronaut portrait) unless a
  cloned avatar is given;
- the demo shop (`show/demo_catalog.yaml`, invented products) in a store of its own
  (`<livetwin home>/demo/demo.db`, so a user's real catalog and approvals are never
  touched), with a template script per product generated and approved on the user's
  behalf: the demo shows what an approved show looks like, and every line of those
  scripts comes from the catalog's facts;
- a demo audience (`Audience`): simulated viewers whose count rises, spikes and falls,
  who greet, ask real questions about the products (en, with some zh and de), follow and
  send gifts, all through the same path as platform chat (`Daemon.receive_chat`). By
  default it is a quiet shop (a message every few seconds); `--chat-rate N` makes it a
  busy one (N chat events a second from hundreds of viewers, a count that moves every
  second), which is what `make soak` runs for an hour (runtime/soak.py);
- the usual outputs: MPEG-TS to OBS if it listens on 127.0.0.1:9999, the dashboard, and
  a recording that ends up as `demo.mp4` in the current directory.

`--minutes N` stops it by itself; Ctrl-C stops it earlier, with the recording kept."""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from livetwin.config import Config, home_dir
from livetwin.events import ChatKind, Product

if TYPE_CHECKING:
    from livetwin.server.app import Daemon

log = logging.getLogger(__name__)
CATALOG = Path(__file__).resolve().parents[1] / "show" / "demo_catalog.yaml"
NAMES = (
    "mia",
    "tom",
    "lena",
    "kai",
    "ana",
    "jun",
    "sofia",
    "ben",
    "yuki",
    "omar",
    "小鱼",
    "阿明",
    "jonas",
    "emma",
    "li_wei",
    "noah",
    "chloe",
    "max",
)
GREETINGS = ("hi!", "hello everyone", "hey there", "good evening!", "你好", "hallo zusammen")
# Questions a shop's viewers ask; the answer database matches them to the catalog FAQ.
QUESTIONS = (
    "how much is the lip tint?",
    "what colors does the lip tint come in?",
    "how long does the lip tint last?",
    "do you ship fast?",
    "口红多少钱",
    "how much is the bottle?",
    "does the bottle keep tea hot?",
    "is the bottle lid dishwasher safe?",
    "what colours does the bottle come in?",
    "how much is the tote?",
    "can I wash the tote bag?",
    "how much can the tote hold?",
    "wie viel kostet die Tasche?",
    "are you a real person?",
)
OPENING = {
    4: ("mia", "hi!", ChatKind.COMMENT),
    10: ("tom", "how much is the lip tint?", ChatKind.COMMENT),
    16: ("lena", "", ChatKind.FOLLOW),
    22: ("小鱼", "口红多少钱", ChatKind.COMMENT),
    28: ("kai", "a rose", ChatKind.GIFT),
    34: ("sam", "are you a real person?", ChatKind.COMMENT),
    40: ("jonas", "does the bottle keep tea hot?", ChatKind.COMMENT),
}
CHATTER = ("love this stream", "nice!", "wow", "first time here", "😍😍", "cool")
MAX_CHAT_RATE = 50.0  # chat events a second at most (--chat-rate)
BUSY_USERS = 500  # a busy audience's viewers per name: "mia_1" ... "mia_500"


@dataclass(frozen=True)
class AudienceStep:
    """What the demo audience does in one second of the show."""

    viewers: int
    events: tuple[tuple[str, str, ChatKind], ...]  # (user, text, kind)


class Audience:
    """Simulated viewers (module doc). `plan(t)` is pure (a seeded script of the show's
    second t); `start(daemon)` plays it in real time on a thread. `chat_rate` (events a
    second) makes a busy audience; None keeps the quiet demo shop."""

    def __init__(self, seconds: float, seed: int = 7, chat_rate: float | None = None) -> None:
        if chat_rate is not None and not 0 < chat_rate <= MAX_CHAT_RATE:
            raise ValueError(f"chat_rate {chat_rate} outside (0, {MAX_CHAT_RATE}]")
        self.seconds = seconds
        self.seed = seed
        self.chat_rate = chat_rate
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0

    def viewers(self, t: float) -> int:
        """Rises from a handful to a few dozen, spikes to a crowd at 60 % of the show,
        then falls back."""
        frac = t / max(self.seconds, 1.0)
        if 0.6 <= frac < 0.75:
            return 600 + int(200 * (frac - 0.6) / 0.15)
        base = 3 + 60 * min(frac / 0.5, 1.0)
        return max(0, int(base * (1.0 - max(0.0, frac - 0.75) * 2)))

    def plan(self, t: int) -> AudienceStep:
        rng = random.Random(self.seed * 1_000_003 + t)
        count = self.viewers(t)
        events: list[tuple[str, str, ChatKind]] = []
        if self.chat_rate is not None:  # a busy room: the count moves every second
            count = max(0, round(count * rng.uniform(0.95, 1.05)) + rng.randint(-2, 2))
        if t in OPENING:  # a lively first minute, whatever the dice say later
            return AudienceStep(count, (OPENING[t],))
        if self.chat_rate is None:
            busy = min(1.0, 0.15 + count / 400)  # more viewers, more chat
            n = int(rng.random() < busy * 0.5)
        else:  # chat_rate a second on average: its whole part, plus one by chance
            n = int(self.chat_rate) + int(rng.random() < self.chat_rate % 1.0)
        for _ in range(n):
            user = rng.choice(NAMES)
            if self.chat_rate is not None:
                user = f"{user}_{rng.randint(1, BUSY_USERS)}"
            events.append(_event(rng, user))
        return AudienceStep(count, tuple(events))

    def start(self, daemon: Daemon) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(daemon,), name="livetwin-demo-audience", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def _run(self, daemon: Daemon) -> None:
        t0 = time.monotonic()
        last_count = -1
        t = 0
        while not self._stop.wait(max(0.0, t0 + t - time.monotonic())):
            step = self.plan(t)
            try:
                if step.viewers != last_count:
                    _set_viewers(daemon, step.viewers)
                    last_count = step.viewers
                for user, text, kind in step.events:
                    daemon.receive_chat("demo", user, text or kind.value, kind)
                    self.sent += 1
            except Exception:  # the audience must not take the show down
                log.exception("demo audience step %d failed", t)
            t += 1


def _event(rng: random.Random, user: str) -> tuple[str, str, ChatKind]:
    """One viewer's action: a question, a greeting, a follow, a gift, a join or chatter."""
    r = rng.random()
    if r < 0.35:
        return (user, rng.choice(QUESTIONS), ChatKind.COMMENT)
    if r < 0.55:
        return (user, rng.choice(GREETINGS), ChatKind.COMMENT)
    if r < 0.7:
        return (user, "", ChatKind.FOLLOW)
    if r < 0.8:
        return (user, "a rose", ChatKind.GIFT)
    if r < 0.9:
        return (user, "", ChatKind.JOIN)
    return (user, rng.choice(CHATTER), ChatKind.COMMENT)


def _set_viewers(daemon: Daemon, count: int) -> None:
    from livetwin.events import ViewerStats

    daemon.viewers = ViewerStats(count=count, platform="demo")
    if daemon.show is not None:
        daemon.show.on_viewers(count)


def prepare_store(url: str, lang: str, cfg: Config) -> list[Product]:
    """The demo shop in its own store: catalog imported, a template script per product
    generated and approved (once; a second run reuses them)."""
    from livetwin.llm.registry import from_config
    from livetwin.show.catalog import read_catalog
    from livetwin.show.scripts import generate_draft
    from livetwin.show.templates import load_templates
    from livetwin.store import open_store

    store = open_store(url)
    try:
        store.import_catalog(read_catalog(CATALOG), replace=True)
        templates = load_templates(lang, cfg.show.templates)
        approved = store.on_air(lang)
        for product in store.products():
            if product.id not in approved:
                record = generate_draft(store, product.id, templates, from_config(cfg.llm))
                store.decide(record.id, "approved")
        return store.products()
    finally:
        store.close()


def demo_config(cfg: Config, home: Path, record_dir: Path) -> Config:
    """`cfg` with the demo's store and recording (everything else as configured)."""
    return cfg.model_copy(
        update={
            "store": cfg.store.model_copy(update={"url": f"sqlite:///{home / 'demo.db'}"}),
            "output": cfg.output.model_copy(update={"record_dir": record_dir}),
        }
    )


def run_demo(
    cfg: Config,
    *,
    minutes: float | None,
    avatar: str = "demo",
    out: Path = Path("demo.mp4"),
    port: int | None = None,
    chat_rate: float | None = None,
    announce: Callable[[str], None] = print,
    quiet: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
) -> int:
    """Run the demo show (module doc); the recording is moved to `out` at the end."""
    from livetwin.server.serve import ServeOptions, run

    home = home_dir() / "demo"
    home.mkdir(parents=True, exist_ok=True)
    record_dir = home / "recording"
    shutil.rmtree(record_dir, ignore_errors=True)
    demo_cfg = demo_config(cfg, home, record_dir)
    assert demo_cfg.store.url is not None
    prepare_store(demo_cfg.store.url, demo_cfg.show.lang, demo_cfg)
    seconds = None if minutes is None else minutes * 60.0
    audience = Audience(seconds or 600.0, chat_rate=chat_rate)

    def ready(daemon: Any) -> None:
        host, port_ = daemon.address
        announce(
            f"demo: dashboard http://{host}:{port_}/?token={daemon.token.value}\n"
            f"demo: {len(daemon.products)} products on air, a simulated audience, "
            f"recording to {out}"
            + (f", stopping after {minutes:g} min" if minutes is not None else ", stop with Ctrl-C")
        )
        audience.start(daemon)

    opts = ServeOptions(avatar=avatar, port=port)
    try:
        rc = run(
            demo_cfg, opts, announce=announce, quiet=quiet, on_ready=ready, stop_after_s=seconds
        )
    finally:
        audience.stop()
        keep_recording(record_dir, out, announce)
    return rc


def keep_recording(record_dir: Path, out: Path, announce: Callable[[str], None]) -> None:
    """Move the longest recording of the run to `out` (atomically replacing it)."""
    files = sorted(record_dir.glob("*.mp4"), key=lambda p: p.stat().st_size)
    if not files:
        announce("demo: no recording was written.")
        return
    tmp = out.with_name(out.name + ".part")
    shutil.move(str(files[-1]), tmp)
    tmp.replace(out)
    announce(f"demo: recording saved to {out}")
