"""The claims checker and the templates: every shipped template line passes for a real
catalog in en, zh and de; invented numbers, prices, currencies and claims are refused;
live lines (fillers, greetings) carry no product claim; a template naming a field the
product lacks is left out, never said with a blank."""

from __future__ import annotations

from pathlib import Path

import pytest

from livetwin.errors import InputError
from livetwin.events import Product
from livetwin.show.claims import ClaimChecker
from livetwin.show.scripts import generate, sentences
from livetwin.show.templates import LANGS, LIVE_KINDS, SCRIPT_KINDS, load_templates

TINT = Product("lip-tint", "Aurora Velvet Lip Tint", 99.0, "CNY", list_price=159.0,
               stock=500, facts=("six shades, from nude to berry", "3.5 grams per tube",
                                 "stays on for about eight hours"),
               faq=((("ship",), "We ship within 48 hours."),))
PLAIN = Product("mug", "Stone Mug", 39.0, "EUR", facts=("hand glazed",))


@pytest.mark.parametrize("lang", LANGS)
def test_every_template_line_passes_and_covers_every_kind(lang: str) -> None:
    t = load_templates(lang)
    draft = generate(TINT, t)
    assert draft.note == ""  # nothing left out
    assert {ln.kind for ln in draft.lines} == set(SCRIPT_KINDS)
    checker = ClaimChecker(TINT, t)
    for ln in draft.lines:
        assert checker.check(ln.text, strict=True).ok, ln.text
    for kind in LIVE_KINDS:
        lines = t.live_lines(kind, name=TINT.name, user="Anna")
        assert len(lines) >= 3, (lang, kind)
        assert not any(ch.isdigit() for line in lines for ch in line)


@pytest.mark.parametrize("lang", LANGS)
def test_a_product_without_list_price_or_stock_gets_no_urgency_or_saving(lang: str) -> None:
    draft = generate(PLAIN, load_templates(lang))
    kinds = {ln.kind for ln in draft.lines}
    assert "urgency" not in kinds and "price" in kinds
    assert not any("159" in ln.text for ln in draft.lines)


@pytest.mark.parametrize("text,ok", [
    ("It is 99 yuan.", True),
    ("Not 159, but 99 yuan: you save 60.", True),
    ("There are 500 in stock.", True),
    ("We ship within 48 hours.", True),
    ("It is 89 yuan.", False),
    ("Only 99 euros!", False),
    ("It costs $99.", False),
    ("20% off today.", False),
    ("It comes in twelve shades.", False),
    ("The cheapest lip tint anywhere.", False),
    ("Free shipping on every order.", False),
])
def test_numbers_money_and_risky_words(text: str, ok: bool) -> None:
    assert ClaimChecker(TINT, load_templates("en")).check(text).ok is ok, text


@pytest.mark.parametrize("lang,text,ok", [
    ("zh", "只要99元。", True),
    ("zh", "只要79元。", False),
    ("zh", "今天免费包邮。", False),
    ("zh", "三天发货。", False),
    ("de", "Es kostet 99 Yuan.", True),
    ("de", "Es kostet 99 Euro.", False),
    ("de", "Heute kostenlos dazu.", False),
])
def test_other_languages(lang: str, text: str, ok: bool) -> None:
    assert ClaimChecker(TINT, load_templates(lang)).check(text, strict=True).ok is ok, text


def test_strict_mode_needs_support_from_the_record() -> None:
    c = ClaimChecker(TINT, load_templates("en"))
    assert c.check("It stays on for about eight hours.", strict=True).ok
    verdict = c.check("It is made in Italy.", strict=True)
    assert not verdict.ok and "italy" in verdict.reasons[0]
    assert c.check("It is made in Italy.").ok  # a person's edit: numbers and risky words only


def test_sentences_split_cjk_and_latin() -> None:
    assert sentences("One. Two! Three?") == ["One.", "Two!", "Three?"]
    assert sentences("第一句。第二句\uff01") == ["第一句。", "第二句\uff01"]
    # a decimal point is not the end of a sentence
    assert sentences("It holds 3.5 grams. Try it.") == ["It holds 3.5 grams.", "Try it."]


def test_a_live_template_with_a_price_is_refused(tmp_path: Path) -> None:
    src = load_templates("en").path.read_text(encoding="utf-8")
    bad = src.replace('    - "Glad you\'re here."', '    - "Everything is {{ price }} today."')
    assert bad != src
    (tmp_path / "en.yaml").write_text(bad, encoding="utf-8")
    with pytest.raises(InputError, match="live lines may only name the product"):
        load_templates("en", tmp_path)
