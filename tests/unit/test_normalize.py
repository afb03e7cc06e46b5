"""Text normalisation: numbers, prices, units per language; markup, emoji, URLs out."""

# ruff: noqa: RUF001, RUF003 - Chinese punctuation (，。！？) is the point here

from __future__ import annotations

import pytest

from livetwin.errors import InputError
from livetwin.speech.normalize import normalize, split_sentences, zh_int

CASES = [
    # prices
    ("en", "Only 99 yuan!", "Only ninety-nine yuan!"),
    ("en", "¥99", "ninety-nine yuan"),
    ("zh", "99元", "九十九元"),
    ("zh", "¥99", "九十九元"),
    ("de", "Nur 99 Euro", "Nur neunundneunzig Euro"),
    ("de", "99 yuan", "neunundneunzig Yuan"),
    ("en", "€19.99 today", "nineteen euros ninety-nine today"),
    ("en", "$5 and $1", "five dollars and one dollar"),
    ("en", "$1,299.99", "one thousand two hundred and ninety-nine dollars ninety-nine"),
    ("de", "19,99 €", "neunzehn Euro neunundneunzig"),
    ("de", "€19.99", "neunzehn Euro neunundneunzig"),
    ("de", "1 Euro", "ein Euro"),
    ("zh", "¥19.99", "十九点九九元"),
    ("zh", "2块钱", "两块钱"),
    # percentages, decimals, large numbers
    ("en", "Save 50%!", "Save fifty percent!"),
    ("de", "Spare 2,5%", "Spare zwei Komma fünf Prozent"),
    ("zh", "省50%", "省百分之五十"),
    ("en", "1,234,567 units", "one million two hundred and thirty-four thousand five hundred "
                              "and sixty-seven units"),
    ("de", "1.234.567 Stück", "eine Million zweihundertvierunddreißigtausend"
                              "fünfhundertsiebenundsechzig Stück"),
    ("zh", "1234567个", "一百二十三万四千五百六十七个"),
    ("en", "pi is 3.14", "pi is three point one four"),
    ("en", "-5 degrees", "minus five degrees"),
    # units
    ("en", "2kg", "two kilograms"),
    ("en", "1 kg", "one kilogram"),
    ("de", "1 kg", "ein Kilogramm"),
    ("zh", "500ml的瓶子", "五百毫升的瓶子"),
    ("en", "3.5 cm", "three point five centimetres"),
    ("zh", "买2件", "买两件"),
    # links, markup, emoji
    ("en", "Visit https://shop.example.com/x?y=1 now", "Visit the link now"),
    ("de", "Mehr auf www.example.de!", "Mehr auf der Link!"),
    ("zh", "看 www.taobao.com 吧", "看链接吧"),
    ("en", "Mail me at a.b@shop.com", "Mail me at"),
    ("en", '<speak><break time="3s"/>Hi</speak> &lt;b&gt;x&lt;/b&gt;', "Hi x"),
    ("en", "**Bold** [link](http://x.com)", "Bold link"),
    ("en", "Great 👍🏽 deal ❤️!!!", "Great deal!"),
    ("en", "24/7 support & more", "twenty-four seven support and more"),
]


@pytest.mark.parametrize(("lang", "text", "spoken"), CASES)
def test_normalize(lang: str, text: str, spoken: str) -> None:
    assert normalize(text, lang) == spoken


@pytest.mark.parametrize("text", ["😀😀🎉", "", "  ", "<br/>", "👍🏽❤️", "https://x.com"])
def test_nothing_speakable_is_empty(text: str) -> None:
    assert normalize(text, "en") in ("", "the link")


def test_no_angle_brackets_ever_survive() -> None:
    for text in ["a < b > c", "&lt;speak&gt;", "<<<>>>", "x<y", "<script>alert(1)</script>"]:
        out = normalize(text, "en")
        assert "<" not in out and ">" not in out


def test_languages() -> None:
    assert normalize("5", "en-US") == "five"
    assert normalize("5", "zh_CN") == "五"
    assert normalize("5", "de-DE") == "fünf"
    with pytest.raises(InputError, match="en, zh, de"):
        normalize("5", "fr")


@pytest.mark.parametrize(("n", "zh"), [(0, "零"), (10, "十"), (15, "十五"), (20, "二十"),
                                       (101, "一百零一"), (110, "一百一十"), (1001, "一千零一"),
                                       (10000, "一万"), (10086, "一万零八十六"),
                                       (100200, "十万零二百"), (100000000, "一亿"),
                                       (120003000, "一亿二千万三千")])
def test_zh_numerals(n: int, zh: str) -> None:
    assert zh_int(n) == zh


def test_split_sentences() -> None:
    assert split_sentences("Hello there. How are you? Fine! 你好。我很好！真的吗？好") == [
        "Hello there.", "How are you?", "Fine!", "你好。", "我很好！", "真的吗？", "好"]
    assert split_sentences(normalize("你好！我很好？", "zh")) == ["你好!", "我很好?"]
    assert split_sentences("Preis inkl. MwSt. heute. Ja") == ["Preis inkl. MwSt. heute.", "Ja"]
    assert split_sentences("line one\nline two") == ["line one", "line two"]
    assert split_sentences("...  !! ") == []


def test_split_caps_long_sentences() -> None:
    words = split_sentences("word " * 3000)
    assert len(words) > 10 and all(len(s) <= 250 for s in words)
    han = split_sentences("字" * 600)
    assert "".join(han) == "字" * 600 and all(len(s) <= 250 for s in han)
    clauses = split_sentences("one, " * 100 + "end.")
    assert all(len(s) <= 250 for s in clauses) and clauses[-1].endswith("end.")
