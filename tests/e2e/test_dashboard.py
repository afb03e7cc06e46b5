"""The control room in a real headless Chromium (Debian package, driven by Playwright)
against a real `livetwin serve` on the demo avatar.

Checked: the page loads in under a second and takes the token from `/?token=` into
sessionStorage (and out of the address bar); without a token it asks for one and
refuses a wrong one; the preview picture loads; a line sent with POST /api/say appears as
the caption within 300 ms of its line_start event; the pause button pauses the daemon
and resume resumes it; a chat message from a user named `<img src=x onerror=alert(1)>`
is shown as literal text with its safety decision and no script runs; a product added
in the form (a bad price shown beside its field), its script generated, edited (an
ungrounded claim refused beside its line) and approved in the page reaches the
transcript within 30 s. The live page shows the audience tier and the show's next
lines (which then sound); the control page plays a gesture from the avatar's library and
rewords the AI label (never empty, always saying AI); an operator's answer saved into a
product's FAQ with one click answers the next viewer who asks by itself; after a daemon
restart the page says it is reconnecting and comes back live on its own. Screenshots of
every page at laptop (1366x768) and tablet (820x1180) size go to /tmp/dashboard_check.

Never skipped in CI: a missing Chromium fails there (browser.require_chromium)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from .browser import LAPTOP, TABLET, Served, launch, require_chromium, serve, wait_until

pytestmark = pytest.mark.slow

TOKEN = "dashboard-e2e-token-" + "y" * 16
CATALOG = {"products": [
    {"id": "tea", "name": "Green Tea Sampler", "price": 12.5, "currency": "EUR",
     "facts": ["six teas from three gardens"], "faq": [{"q": ["caffeine"],
                                                         "a": "Mild: about a third of coffee."}]},
    {"id": "mug", "name": "Stoneware Mug", "price": 18, "currency": "EUR",
     "facts": ["holds 350 ml"]}]}
CONFIG = {"render": {"size": "640x360", "fps": 25},
          "output": {"obs_url": "", "preview_fps": 4},
          "chat": {"dedupe_window_s": 1}}  # the FAQ test asks the same question twice
CHECK_DIR = Path("/tmp/dashboard_check")
EVIL_USER = "<img src=x onerror=alert(1)>"
EVIL_TEXT = "<script>alert(2)</script> does the tea have caffeine?"
LINES = ("Welcome to the control room test.", "Here is a second line.", "And a third one.")
LOAD_BUDGET_MS = 1000
UPDATE_BUDGET_MS = 300
QUEUE_ANSWER = "Shipping to Norway takes about five working days."
PAGES = ("live", "control", "chat", "products", "scripts")

# Records, in the page, when the caption and the chat table change (wall-clock ms, the
# same clock as the daemon's `at` and this process's time.time()).
RECORDER = """
window.__captions = []; window.__chats = [];
document.addEventListener("DOMContentLoaded", () => {
  const cap = document.getElementById("caption");
  new MutationObserver(() => window.__captions.push(
      {text: cap.textContent, line: cap.dataset.line, t: Date.now()}))
    .observe(cap, {childList: true, characterData: true, subtree: true});
  const rows = document.getElementById("chat-rows");
  new MutationObserver((muts) => { for (const m of muts) for (const n of m.addedNodes)
      window.__chats.push({id: n.dataset.chat, t: Date.now()}); })
    .observe(rows, {childList: true});
});
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_chromium()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[Served]:
    yield from serve(tmp_path_factory.mktemp("dashboard"), TOKEN, CATALOG, CONFIG)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p, chromium)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, daemon: Served) -> Iterator[Any]:
    """A laptop-sized page, opened with the token in the URL and connected."""
    context = browser.new_context(viewport=LAPTOP)
    pg = context.new_page()
    pg.add_init_script(RECORDER)
    dialogs: list[str] = []
    errors: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.dialogs, pg.errors = dialogs, errors
    pg.goto(f"{daemon.url}/?token={TOKEN}", wait_until="load")
    pg.wait_for_function("() => document.getElementById('conn').textContent === 'live'",
                         timeout=10_000)
    yield pg
    assert errors == [], errors
    context.close()


def nav_timing(pg: Any) -> dict[str, float]:
    return dict(pg.evaluate("""() => { const n = performance.getEntriesByType('navigation')[0];
        return {dcl: n.domContentLoadedEventEnd - n.startTime, load: n.loadEventEnd - n.startTime};
    }"""))


def ws_state(daemon: Served) -> dict[str, Any]:
    """The daemon's own view: the `hello` of a fresh WebSocket."""
    import json

    url = "ws" + daemon.url.removeprefix("http") + "/ws"
    with connect(url, additional_headers={"Authorization": f"Bearer {TOKEN}"},
                 open_timeout=10) as ws:
        return dict(json.loads(ws.recv(10)))


def test_page_loads_fast_and_keeps_the_token_out_of_the_url(page: Any, daemon: Served
                                                             ) -> None:
    timing = nav_timing(page)
    print(f"\npage load: DOMContentLoaded {timing['dcl']:.0f} ms, load {timing['load']:.0f} ms")
    assert timing["load"] < LOAD_BUDGET_MS, timing
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('livetwin.token')") == TOKEN
    # the preview picture arrives (fetched with the token, shown through an object URL)
    page.wait_for_function("() => document.getElementById('preview').naturalWidth > 0",
                           timeout=10_000)
    size = page.evaluate("[document.getElementById('preview').naturalWidth, "
                         "document.getElementById('preview').naturalHeight]")
    assert size == [640, 360]
    assert page.locator("#preview-empty").is_hidden()
    assert page.locator("#st-product").text_content() in ("none", "Green Tea Sampler · 12.5 EUR",
                                                          "Stoneware Mug · 18 EUR")
    wait_until(lambda: page.locator("#st-fps").text_content() not in ("—", ""), 5, "fps")
    assert float(page.locator("#st-fps").text_content()) > 15


def test_without_a_token_the_page_asks_and_refuses_a_wrong_one(browser: Any, daemon: Served
                                                              ) -> None:
    context = browser.new_context(viewport=LAPTOP)
    pg = context.new_page()
    pg.goto(daemon.url + "/", wait_until="load")
    assert pg.locator("#token-dialog").is_visible()
    pg.fill("#token-input", "not-the-token-0000000000")
    pg.click("#token-form button[type=submit]")
    pg.wait_for_selector("#token-error:not([hidden])", timeout=5_000)
    assert "refused" in pg.locator("#token-error").text_content()
    pg.fill("#token-input", TOKEN)
    pg.click("#token-form button[type=submit]")
    pg.wait_for_function("() => document.getElementById('conn').textContent === 'live'",
                         timeout=10_000)
    assert pg.locator("#token-dialog").is_hidden()
    context.close()


def test_said_lines_reach_the_captions_within_300_ms(page: Any, daemon: Served) -> None:
    latencies, post_to_dom = [], []
    for text in LINES:
        t_post = time.time()
        r = daemon.http.post("/api/say", json={"text": text})
        assert r.status_code == 202, r.text
        line_id = r.json()["id"]
        seen = wait_until(lambda i=line_id: page.evaluate(
            "(id) => window.__captions.find((c) => c.line === id) || null", i), 20,
            f"line {line_id} in the captions")
        assert seen["text"] == text
        assert page.locator("#caption").text_content() in (text, *LINES)
        entry = next(e for e in daemon.http.get("/api/transcript").json()
                     if e["id"] == line_id)
        latencies.append(seen["t"] - entry["at"] * 1000)
        post_to_dom.append(seen["t"] - t_post * 1000)
        # the transcript list shows it too
        assert page.locator(f"#transcript li[data-line='{line_id}']").count() == 1
        wait_until(lambda i=line_id: page.evaluate(
            "(id) => document.getElementById('caption').dataset.line !== id || "
            "document.getElementById('caption').classList.contains('idle')", i), 20,
            "the line to end")
    print(f"\nline_start event -> caption in the DOM: {[round(x) for x in latencies]} ms; "
          f"POST /api/say -> caption (includes speech synthesis): "
          f"{[round(x) for x in post_to_dom]} ms")
    assert statistics.median(latencies) < UPDATE_BUDGET_MS, latencies
    assert max(latencies) < 2 * UPDATE_BUDGET_MS, latencies


def test_pause_button_pauses_the_daemon(page: Any, daemon: Served) -> None:
    assert ws_state(daemon)["paused"] is False
    button = page.locator("#q-pause")
    assert button.text_content() == "Pause"
    button.click()
    wait_until(lambda: ws_state(daemon)["paused"] is True, 5, "the daemon to pause")
    page.wait_for_function("() => document.getElementById('q-pause').textContent === 'Resume'",
                           timeout=2_000)
    assert "paused" in page.locator("#st-state").text_content()
    button.click()
    wait_until(lambda: ws_state(daemon)["paused"] is False, 5, "the daemon to resume")
    page.wait_for_function("() => document.getElementById('q-pause').textContent === 'Pause'",
                           timeout=2_000)


def test_chat_shows_hostile_usernames_as_text_with_the_decision(page: Any, daemon: Served
                                                                 ) -> None:
    page.click("#nav a[data-page=chat]")
    t_post = time.time()
    r = daemon.http.post("/api/chat", json={"platform": "api", "user": EVIL_USER,
                                            "text": EVIL_TEXT})
    assert r.status_code == 202, r.text
    chat_id = r.json()["id"]
    seen = wait_until(lambda: page.evaluate(
        "(id) => window.__chats.find((c) => c.id === id) || null", chat_id), 5,
        "the chat row")
    chat_ms = seen["t"] - t_post * 1000
    print(f"\nPOST /api/chat -> row in the DOM: {chat_ms:.0f} ms")
    assert chat_ms < UPDATE_BUDGET_MS
    row = page.locator(f"#chat-rows tr[data-chat='{chat_id}']")
    assert row.locator("td.user").text_content() == EVIL_USER
    assert row.locator("td.text").text_content() == EVIL_TEXT
    # no element was made from the data: only the preview <img> exists in the page
    assert row.locator("img, script").count() == 0
    assert page.evaluate("document.querySelectorAll('img').length") == 1
    # the safety gate's decision and its reason, fetched once the pipeline decided
    wait_until(lambda: row.locator(".decision").text_content() not in ("…", ""), 10,
               "the chat decision")
    decision = row.locator(".decision").text_content()
    assert decision in {"answer", "disclose", "deflect", "greet", "thanks", "ignore",
                        "operator", "dropped"}, decision
    assert row.locator("td.why").text_content().strip()
    page.wait_for_timeout(300)
    assert page.dialogs == []


def test_operator_answers_a_queued_question_on_air(page: Any, daemon: Served) -> None:
    page.click("#nav a[data-page=chat]")
    r = daemon.http.post("/api/chat", json={"platform": "api", "user": "nils",
                                            "text": "How long does shipping to Norway take?"})
    chat_id = r.json()["id"]
    row = page.locator(f"#chat-rows tr[data-chat='{chat_id}']")
    wait_until(lambda: row.locator(".decision").text_content() == "operator", 10,
               "the operator decision")
    item = page.locator(f"#queue li[data-chat='{chat_id}']")
    item.wait_for(timeout=10_000)
    assert "shipping to Norway" in item.text_content()
    item.locator("input").fill(QUEUE_ANSWER)
    item.get_by_role("button", name="Say", exact=True).click()
    page.wait_for_function("(t) => document.getElementById('caption').textContent === t",
                           arg=QUEUE_ANSWER, timeout=20_000)
    assert row.locator("td.answer").text_content() == QUEUE_ANSWER
    assert page.locator(f"#queue li[data-chat='{chat_id}']").count() == 0
    wait_until(lambda: chat_id not in [q["chat_id"] for q in
                                       daemon.http.get("/api/chat/queue").json()], 5,
               "the question to leave the daemon's operator queue")
    spoken = [e for e in daemon.http.get("/api/transcript").json() if e["text"] == QUEUE_ANSWER]
    assert len(spoken) == 1 and spoken[0]["source"] == "operator"


SCARF_FACTS = ("180 cm long", "merino wool from one farm")
GROUNDED_EDIT = "The Merino Scarf is 180 cm long."
UNGROUNDED_EDIT = "Only 3 left, and shipping is free!"
ON_AIR_BUDGET_S = 30


def test_add_a_product_generate_approve_and_hear_its_lines(page: Any, daemon: Served) -> None:
    """Issue 9's must-show: a product added in the form, a script generated, edited and
    approved in the page, and its lines reach the transcript; bad input is shown beside
    its field (the price) or its line (an ungrounded claim) and stores nothing."""
    CHECK_DIR.mkdir(parents=True, exist_ok=True)
    page.click("#nav a[data-page=products]")
    page.wait_for_selector("#product-rows tr[data-product=tea]")
    page.fill("#pf-id", "scarf")
    page.fill("#pf-name", "Merino Scarf")
    page.fill("#pf-price", "-45")
    page.fill("#pf-currency", "EUR")
    page.fill("#pf-list-price", "60")
    page.fill("#pf-stock", "12")
    page.fill("#pf-facts", "\n".join(SCARF_FACTS))
    page.click("#pf-faq-add")
    page.locator("#pf-faq .faq-q").fill("wool, material")
    page.locator("#pf-faq .faq-a").fill("It is merino wool, {price} EUR.")
    page.click("#pf-save")
    price_error = page.locator(".field-error[data-for=price]")
    price_error.wait_for(state="visible", timeout=5_000)
    assert price_error.text_content() == ("price: Input should be greater than or equal to 0.")
    assert "invalid" in (page.locator("#pf-price").get_attribute("class") or "")
    # beside the field: the error box is right under the price input, in the same column
    box_in, box_err = (page.locator("#pf-price").bounding_box(), price_error.bounding_box())
    assert 0 <= box_err["y"] - (box_in["y"] + box_in["height"]) < 20
    assert abs(box_err["x"] - box_in["x"]) < 2
    assert page.locator(".field-error:not([hidden])").count() == 1
    assert "scarf" not in [p["id"] for p in daemon.http.get("/api/products").json()]
    page.screenshot(path=str(CHECK_DIR / "products_error_laptop.png"), full_page=True)

    page.fill("#pf-price", "45")
    page.click("#pf-save")
    page.wait_for_selector("#product-rows tr[data-product=scarf]", timeout=5_000)
    assert price_error.is_hidden()
    stored = next(p for p in daemon.http.get("/api/products").json() if p["id"] == "scarf")
    assert (stored["price"], stored["list_price"], stored["stock"], stored["facts"]) == (
        45.0, 60.0, 12, list(SCARF_FACTS))
    assert stored["faq"] == [{"q": ["wool", "material"], "a": "It is merino wool, {price} EUR."}]
    assert page.locator("#pf-id").get_attribute("readonly") is not None  # now editing it

    # generate a draft from the product's row
    page.locator("#product-rows tr[data-product=scarf]").get_by_role(
        "button", name="Generate script").click()
    page.wait_for_selector("#page-scripts:not([hidden])")
    wait_until(lambda: daemon.http.get("/api/scripts", params={"product_id": "scarf"}).json(),
               20, "the generated draft")
    v1 = daemon.http.get("/api/scripts", params={"product_id": "scarf"}).json()[0]
    assert (v1["version"], v1["status"], v1["origin"]) == (1, "draft", "template")
    card1 = page.locator(f"[data-script='{v1['id']}']")
    card1.wait_for(timeout=5_000)
    assert card1.locator(".status").text_content() == "draft"
    assert card1.locator(".onair-tag").count() == 0
    assert card1.locator("ol.lines li").count() == len(v1["lines"])

    # edit line by line: an ungrounded claim is refused beside its line, nothing stored
    card1.get_by_role("button", name="Edit").click()
    rows = card1.locator("ol.editor > li")
    assert rows.count() == len(v1["lines"])
    rows.nth(0).locator("textarea").fill(UNGROUNDED_EDIT)
    card1.get_by_role("button", name="Save as a new draft").click()
    line_error = rows.nth(0).locator(".field-error")
    line_error.wait_for(state="visible", timeout=5_000)
    assert line_error.text_content().startswith("line 1 ")
    assert "is not in the product record" in line_error.text_content()
    assert len(daemon.http.get("/api/scripts", params={"product_id": "scarf"}).json()) == 1
    page.screenshot(path=str(CHECK_DIR / "scripts_edit_error_laptop.png"), full_page=True)
    rows.nth(0).locator("textarea").fill(GROUNDED_EDIT)
    card1.get_by_role("button", name="Save as a new draft").click()
    wait_until(lambda: len(daemon.http.get("/api/scripts",
                                           params={"product_id": "scarf"}).json()) == 2,
               10, "the edited version")
    v2 = daemon.http.get("/api/scripts", params={"product_id": "scarf"}).json()[1]
    assert (v2["version"], v2["status"], v2["parent_id"]) == (2, "draft", v1["id"])
    assert v2["lines"][0]["text"] == GROUNDED_EDIT
    assert [ln["text"] for ln in v2["lines"][1:]] == [ln["text"] for ln in v1["lines"][1:]]
    card2 = page.locator(f"[data-script='{v2['id']}']")
    card2.wait_for(timeout=5_000)
    assert card2.locator(".diffstat").text_content() == "+1 \u22121 vs v1"
    assert card2.locator("li.line-added").text_content().endswith(GROUNDED_EDIT)

    # approve: ON AIR in the page, and its sentences reach the transcript
    t_approve = time.time()
    card2.get_by_role("button", name="Approve").click()
    page.wait_for_function(
        f"() => document.querySelector(\"[data-script='{v2['id']}'] .onair-tag\")",
        timeout=5_000)
    assert page.locator(".onair-tag").count() == 1
    assert card1.locator(".onair-tag").count() == 0
    page.screenshot(path=str(CHECK_DIR / "scripts_approved_laptop.png"), full_page=True)

    def scarf_lines() -> list[dict[str, Any]]:
        return [e for e in daemon.http.get("/api/transcript").json()
                if e["source"] == "script" and e["product_id"] == "scarf"]

    first = wait_until(scarf_lines, ON_AIR_BUDGET_S, "a script line of the new product")[0]
    print(f"\napprove click -> first script line sounding: {first['at'] - t_approve:.1f} s "
          f"({first['text']!r})")
    approved_text = " ".join(ln["text"] for ln in v2["lines"])
    assert first["text"] in approved_text and first["at"] >= t_approve - 0.5
    # and the live page's transcript shows it
    page.click("#nav a[data-page=live]")
    page.locator(f"#transcript li[data-line='{first['id']}']").wait_for(timeout=10_000)


IMPORT_OK = """products:
  - id: candle
    name: Beeswax Candle
    price: 9.5
    currency: EUR
    facts: [burns for 20 hours]
"""


def test_import_a_catalog_file_in_the_page(page: Any, daemon: Served) -> None:
    """The file input posts the catalog; a bad file names product and field and stores
    nothing; a file over the API's 64 KB is refused in the page with the CLI to use."""
    page.click("#nav a[data-page=products]")
    page.wait_for_selector("#product-rows tr[data-product=tea]")
    msg = page.locator("#import-msg")
    bad = IMPORT_OK.replace("currency: EUR", "currency: RMB")
    page.set_input_files("#import-file", files=[
        {"name": "bad.yaml", "mimeType": "application/yaml", "buffer": bad.encode()}])
    page.click("#import-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('import-msg').textContent !== ''",
                           timeout=5_000)
    assert msg.text_content().startswith("Nothing imported: bad.yaml:5: "
                                         "'products.0.currency': Value error, unknown "
                                         "currency 'RMB'")
    assert msg.text_content().endswith("(product 'candle').")
    assert "error" in (msg.get_attribute("class") or "")
    assert "candle" not in [p["id"] for p in daemon.http.get("/api/products").json()]

    big = IMPORT_OK + "#" + "x" * (70 * 1024) + "\n"
    page.set_input_files("#import-file", files=[
        {"name": "big.yaml", "mimeType": "application/yaml", "buffer": big.encode()}])
    page.click("#import-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('import-msg').textContent"
                           ".includes('big.yaml')", timeout=5_000)
    assert "livetwin products import big.yaml" in msg.text_content()

    page.set_input_files("#import-file", files=[
        {"name": "shop.yaml", "mimeType": "application/yaml", "buffer": IMPORT_OK.encode()}])
    page.click("#import-form button[type=submit]")
    page.wait_for_selector("#product-rows tr[data-product=candle]", timeout=5_000)
    assert msg.text_content() == "shop.yaml: 1 product(s) stored (1 new, 0 changed)."
    candle = next(p for p in daemon.http.get("/api/products").json() if p["id"] == "candle")
    assert (candle["name"], candle["price"], candle["facts"]) == (
        "Beeswax Candle", 9.5, ["burns for 20 hours"])


def test_product_fields_show_as_text(page: Any, daemon: Served) -> None:
    evil = {"id": "evil", "name": EVIL_USER, "price": 1, "currency": "EUR",
            "facts": ["<script>alert(3)</script>"]}
    assert daemon.http.post("/api/products", json=evil).status_code == 201
    page.click("#nav a[data-page=products]")
    row = page.locator("#product-rows tr[data-product=evil]")
    row.wait_for(timeout=5_000)
    assert row.locator("td").nth(1).text_content() == EVIL_USER
    assert row.locator("td").nth(4).text_content() == "<script>alert(3)</script>"
    assert row.locator("img, script").count() == 0
    row.get_by_role("button", name="Edit").click()
    assert page.locator("#pf-name").input_value() == EVIL_USER
    assert page.locator("#pf-title").text_content() == "Edit evil"
    page.click("#nav a[data-page=scripts]")
    page.wait_for_function("() => [...document.querySelectorAll('#gen-product option')]"
                           ".some((o) => o.value === 'evil')", timeout=5_000)
    assert page.evaluate("document.querySelectorAll('img').length") == 1  # the preview
    page.wait_for_timeout(300)
    assert page.dialogs == []


def test_screenshots_of_every_page(browser: Any, daemon: Served) -> None:
    CHECK_DIR.mkdir(parents=True, exist_ok=True)
    daemon.http.post("/api/chat", json={"platform": "api", "user": "mia_k",
                                        "text": "How much is the mug?"})
    daemon.http.post("/api/say", json={"text": "Screenshots are being taken right now."})
    daemon.http.post("/api/chat", json={"platform": "api", "user": "ola",
                                        "text": "Do you ship to Iceland?"})  # operator queue
    for name, viewport in (("laptop", LAPTOP), ("tablet", TABLET)):
        context = browser.new_context(viewport=viewport)
        pg = context.new_page()
        pg.goto(f"{daemon.url}/?token={TOKEN}", wait_until="load")
        pg.wait_for_function("() => document.getElementById('conn').textContent === 'live'",
                             timeout=10_000)
        pg.wait_for_function("() => document.getElementById('preview').naturalWidth > 0",
                             timeout=10_000)
        daemon.http.post("/api/chat", json={"platform": "api", "user": EVIL_USER,
                                            "text": EVIL_TEXT})
        for page_name in PAGES:
            pg.click(f"#nav a[data-page={page_name}]")
            pg.wait_for_selector(f"#page-{page_name}:not([hidden])")
            pg.wait_for_timeout(400)
            # nothing sticks out sideways (a broken layout is a bug even when tests pass)
            overflow = pg.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, (name, page_name, overflow)
            path = CHECK_DIR / f"{page_name}_{name}.png"
            pg.screenshot(path=str(path), full_page=True)
            assert path.stat().st_size > 10_000
        # the line editor of the newest script (the product test made and approved one)
        pg.locator(".script").first.get_by_role("button", name="Edit").click()
        pg.wait_for_selector(".script ol.editor textarea")
        assert pg.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
        pg.screenshot(path=str(CHECK_DIR / f"scripts_edit_{name}.png"))
        pg.get_by_role("button", name="Cancel").click()
        pg.wait_for_selector(".script ol.editor", state="detached")
        context.close()


def test_live_view_shows_the_audience_tier_and_the_next_lines(page: Any, daemon: Served
                                                              ) -> None:
    """The tier follows the viewer count; a line listed under "Coming up next" is then
    said (an approved script gives the director a pitch to plan)."""
    if not any(s["status"] == "approved" for s in daemon.http.get("/api/scripts").json()):
        draft = daemon.http.post("/api/scripts/generate", json={"product_id": "tea"}).json()
        assert daemon.http.post(f"/api/scripts/{draft['id']}/approve").status_code == 200
    assert daemon.http.post("/api/viewers", json={"count": 25}).status_code == 202
    tier = daemon.http.get("/api/show").json()
    assert tier["running"] is True and tier["tier"] == "growing", tier
    page.wait_for_function("() => document.getElementById('st-tier').textContent"
                           ".startsWith('growing (25 viewers)')", timeout=5_000)
    listed = wait_until(lambda: page.evaluate(
        "[...document.querySelectorAll('#next-lines li')].map((li) => li.lastChild"
        ".textContent)"), 30, "a line under Coming up next")
    said = wait_until(lambda: [e["text"] for e in daemon.http.get("/api/transcript").json()
                               if e["text"] in listed], 40, "a listed line to be said")
    print(f"\nnext lines shown: {listed[:3]}; then said: {said[:1]}")
    page.wait_for_timeout(500)  # the list refreshed after that line started
    page.screenshot(path=str(CHECK_DIR / "live_next_lines_laptop.png"))


def test_control_page_plays_a_gesture(page: Any, daemon: Served) -> None:
    names = [g["id"] for g in daemon.http.get("/api/gestures").json()]
    assert "nod" in names
    r = daemon.http.post("/api/gesture", json={"name": "moonwalk"})
    assert r.status_code == 422
    assert r.json()["detail"] == ("no gesture 'moonwalk' for this avatar; choose one of "
                                  "GET /api/gestures.")
    page.click("#nav a[data-page=control]")
    assert page.locator("#g-name option").count() == len(names)
    page.select_option("#g-name", "nod")
    assert page.locator("#g-desc").text_content().strip()
    page.click("#g-play")
    page.wait_for_function("() => document.getElementById('g-msg').textContent"
                           ".startsWith('Playing')", timeout=5_000)
    # the twin plays it now: its stats name the operator's gesture while it shows
    wait_until(lambda: daemon.http.get("/api/health").json()["live"]["gesture"] == "nod", 3,
               "the daemon to play the nod")


def test_control_page_rewords_the_ai_label_but_never_removes_it(page: Any, daemon: Served
                                                                ) -> None:
    page.click("#nav a[data-page=control]")
    error, field = page.locator("#label-error"), page.locator("#label-text")
    assert field.input_value() == "AI-generated host"
    assert field.get_attribute("maxlength") == "40"  # the page stops longer ones
    r = daemon.http.post("/api/label", json={"text": "AI " + "x" * 40})
    assert r.status_code == 422 and "keep it to 40" in r.json()["detail"]
    for text, why in (("   ", "cannot be empty"), ("Your friendly host Mia", "must still say")):
        field.fill(text)
        page.click("#label-form button[type=submit]")
        error.wait_for(state="visible", timeout=5_000)
        assert why in error.text_content(), (text, error.text_content())
        assert daemon.http.get("/api/dashboard").json()["label"]["text"] == "AI-generated host"
    assert daemon.http.post("/api/label", json={"text": ""}).status_code == 422
    new = "AI host <b>Mia</b>"
    field.fill(new)
    page.click("#label-form button[type=submit]")
    page.wait_for_function("(t) => document.getElementById('label-state').textContent"
                           ".includes(t)", arg=new, timeout=5_000)
    assert error.is_hidden()
    assert page.locator("#page-control b").count() == 0  # shown as text
    assert daemon.http.get("/api/dashboard").json()["label"] == {
        "on": True, "text": new, "editable": True, "max": 40}
    page.screenshot(path=str(CHECK_DIR / "control_label_laptop.png"), full_page=True)
    field.fill("AI-generated host")
    page.click("#label-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('label-state').textContent"
                           ".includes('“AI-generated host”')", timeout=5_000)


FAQ_QUESTION = "Is the mug dishwasher safe?"
FAQ_ANSWER = "Yes, the mug is dishwasher safe."


def test_an_answer_saved_to_the_faq_answers_the_next_viewer(page: Any, daemon: Served
                                                           ) -> None:
    page.click("#nav a[data-page=chat]")
    r = daemon.http.post("/api/chat", json={"platform": "api", "user": "lena",
                                            "text": FAQ_QUESTION})
    first = r.json()["id"]
    row = page.locator(f"#chat-rows tr[data-chat='{first}']")
    wait_until(lambda: row.locator(".decision").text_content() == "operator", 10,
               "the operator decision")
    item = page.locator(f"#queue li[data-chat='{first}']")
    item.wait_for(timeout=10_000)
    item.locator("input").fill(FAQ_ANSWER)
    item.locator("select").select_option("mug")
    page.screenshot(path=str(CHECK_DIR / "chat_queue_laptop.png"), full_page=True)
    item.get_by_role("button", name="Say + save to FAQ").click()
    page.wait_for_function("() => document.getElementById('queue-msg').textContent"
                           ".includes('Saved in the FAQ of Stoneware Mug')", timeout=5_000)
    mug = next(p for p in daemon.http.get("/api/products").json() if p["id"] == "mug")
    assert {"q": ["is the dishwasher safe"], "a": FAQ_ANSWER} in mug["faq"]
    assert first not in [q["chat_id"] for q in daemon.http.get("/api/chat/queue").json()]
    page.wait_for_function("(t) => document.getElementById('caption').textContent === t",
                           arg=FAQ_ANSWER, timeout=20_000)
    time.sleep(1.2)  # past the chat's duplicate window (CONFIG)
    r = daemon.http.post("/api/chat", json={"platform": "api", "user": "omar",
                                            "text": FAQ_QUESTION})
    second = r.json()["id"]
    row = page.locator(f"#chat-rows tr[data-chat='{second}']")
    wait_until(lambda: row.locator(".decision").text_content() == "answer", 10,
               "the FAQ answer decision")
    # the reason in plain words, the pipeline's own on hover
    assert row.locator("td.why").text_content() == "Answered from the FAQ of Stoneware Mug"
    assert "mug/faq" in row.locator("td.why").get_attribute("title")
    said = wait_until(lambda: [e for e in daemon.http.get("/api/transcript").json()
                               if e["reply_to"] == second], 30, "the FAQ answer on air")
    assert said[0]["text"] == FAQ_ANSWER, said
    wait_until(lambda: row.locator("td.answer").text_content() == FAQ_ANSWER, 5,
               "the FAQ answer in the chat table")
    assert row.locator(".decision").text_content() == "answer"
    assert page.locator(f"#queue li[data-chat='{second}']").count() == 0


def test_the_page_reconnects_after_a_daemon_restart(page: Any, daemon: Served) -> None:
    """Last of the shared daemon's tests: the restart empties its memory (transcript,
    chat); the store keeps catalog and scripts."""
    daemon.stop()
    # while it is down the page says so (the status pill and a banner)...
    page.wait_for_function("() => document.getElementById('conn').textContent"
                           ".startsWith('reconnecting')", timeout=5_000)
    assert "reconnecting" in page.locator("#banner").text_content()
    page.screenshot(path=str(CHECK_DIR / "reconnecting_laptop.png"))
    daemon.start_again()
    t_up = time.monotonic()  # the daemon listens again
    page.wait_for_function("() => document.getElementById('conn').textContent === 'live'",
                           timeout=20_000)
    print(f"\ndaemon listening again -> page live again: {time.monotonic() - t_up:.1f} s")
    assert page.locator("#banner").is_hidden()
    # ...and live updates flow again on the new connection
    r = daemon.http.post("/api/say", json={"text": "Back after the restart."})
    line_id = r.json()["id"]
    page.wait_for_function("(id) => document.getElementById('caption').dataset.line === id",
                           arg=line_id, timeout=20_000)


# ---------------------------------------------------------------- scripts page
# The diff view with hand-made versions: the same API served in-process over a real
# SQLite store (a LiveTwin of fakes), so the versions and their lines are known exactly.

SCRIPT_V1 = [("hook", "Meet the Green Tea Sampler."), ("fact", "Six teas from three gardens."),
             ("cta", "Tap the cart to order.")]
SCRIPT_V2 = [("hook", "Meet the Green Tea Sampler."), ("fact", "Six teas from three gardens."),
             ("cta", "The link is in the cart below.")]


@pytest.fixture
def script_api(tmp_path: Path) -> Iterator[tuple[str, Any, list[int]]]:
    from livetwin.server.app import Daemon
    from livetwin.server.auth import Token
    from livetwin.show.catalog import CatalogItem, product_from_json
    from livetwin.store.db import ScriptLine, open_store

    from ..live_harness import ApiServer, make_live

    store = open_store(f"sqlite:///{tmp_path / 'livetwin.db'}")
    store.import_catalog([CatalogItem(product_from_json(p)) for p in CATALOG["products"]])
    v1 = store.add_script("tea", "en", [ScriptLine(t, k) for k, t in SCRIPT_V1], origin="template")
    v2 = store.add_script("tea", "en", [ScriptLine(t, k) for k, t in SCRIPT_V2], origin="edit",
                          parent_id=v1.id)
    live = make_live()
    daemon = Daemon(live, Token(TOKEN, "config"), store.products(), store=store)
    try:
        with ApiServer(daemon) as server:
            yield server.url, store, [v1.id, v2.id]
    finally:
        live.close()
        store.close()


def test_scripts_page_shows_the_diff_and_approves(browser: Any,
                                                  script_api: tuple[str, Any, list[int]]
                                                  ) -> None:
    url, store, (v1, v2) = script_api
    context = browser.new_context(viewport=LAPTOP)
    pg = context.new_page()
    pg.goto(f"{url}/?token={TOKEN}#scripts", wait_until="load")
    card = pg.locator(f"[data-script='{v2}']")
    card.wait_for(timeout=10_000)
    assert pg.locator(".script").count() == 2
    assert card.locator(".status").text_content() == "draft"
    assert card.locator(".onair-tag").count() == 0
    # v2 against v1: the changed call to action is one line added, one removed
    assert card.locator("li.line-added").text_content().endswith("The link is in the cart below.")
    assert card.locator("li.line-removed").text_content().endswith("Tap the cart to order.")
    assert card.locator(".diffstat").text_content() == "+1 \u22121 vs v1"
    card.get_by_role("button", name="Approve").click()
    pg.wait_for_function(f"() => document.querySelector(\"[data-script='{v2}'] .onair-tag\")",
                         timeout=5_000)
    assert store.script(v2).status == "approved"
    assert pg.locator(f"[data-script='{v2}'] .status").text_content() == "approved"
    assert pg.locator(f"[data-script='{v1}'] .onair-tag").count() == 0  # v1 is not approved
    CHECK_DIR.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(CHECK_DIR / "scripts_review_laptop.png"), full_page=True)
    pg.locator(f"[data-script='{v2}']").get_by_role("button", name="Reject").click()
    pg.wait_for_function(
        f"() => document.querySelector(\"[data-script='{v2}'] .status\").textContent "
        "=== 'rejected'", timeout=5_000)
    assert store.script(v2).status == "rejected"
    assert pg.locator(".onair-tag").count() == 0  # nothing approved: nothing on air
    context.close()
