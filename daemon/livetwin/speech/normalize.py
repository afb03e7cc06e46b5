"""Text normalisation before TTS: numbers, prices and units spoken per language; emoji,
markup and URLs removed; sentence splitting shared by every backend.

Markup is stripped as text and never interpreted: after `normalize` no `<` or `>` is
left, so nothing downstream can mistake a line for SSML.
"""

# ruff: noqa: RUF001, RUF002, RUF003 - Chinese punctuation (，。！？) is the point here

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable

from num2words import num2words

from livetwin.errors import InputError
from livetwin.speech.base import LANGUAGES

_LANG_ALIASES = {"en": "en", "de": "de", "zh": "zh", "cmn": "zh"}


def canonical_lang(lang: str) -> str:
    """'en-US' -> 'en', 'zh_CN' -> 'zh'; InputError naming the supported languages."""
    base = re.split(r"[-_]", lang.strip().lower(), maxsplit=1)[0]
    if base not in _LANG_ALIASES:
        raise InputError(
            f"Language {lang!r} is not supported; use one of {', '.join(LANGUAGES)}."
        )
    return _LANG_ALIASES[base]


# ---------------------------------------------------------------- numbers as words

_ZH_DIGITS = "零一二三四五六七八九"
_ZH_SMALL = ("", "十", "百", "千")
_ZH_BIG = ("", "万", "亿", "万亿")


def _zh_group(n: int) -> str:
    """0 < n < 10000 in Chinese, zeros inside collapsed to one 零."""
    out, zero = "", False
    for pos in range(3, -1, -1):
        digit = n // 10**pos % 10
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += _ZH_DIGITS[digit] + _ZH_SMALL[pos]
    return out


def zh_int(n: int) -> str:
    """An integer in Chinese numerals: 15 -> 十五, 10086 -> 一万零八十六."""
    if n < 0:
        return "负" + zh_int(-n)
    if n == 0:
        return "零"
    groups = []
    while n:
        groups.append(n % 10000)
        n //= 10000
    if len(groups) > len(_ZH_BIG):
        return "".join(_ZH_DIGITS[int(d)] for d in str(n))
    out, need_zero = "", False
    for idx in range(len(groups) - 1, -1, -1):
        g = groups[idx]
        if g == 0:
            need_zero = bool(out)
            continue
        if out and (need_zero or g < 1000):
            out += "零"
        out += _zh_group(g) + _ZH_BIG[idx]
        need_zero = False
    # 一十五 is written, 十五 is spoken
    return out[1:] if out.startswith("一十") else out


_DIGIT_WORDS = {
    "en": "zero one two three four five six seven eight nine".split(),
    "de": "null eins zwei drei vier fünf sechs sieben acht neun".split(),
}


def _int_words(n: int, lang: str) -> str:
    if lang == "zh":
        return zh_int(n)
    if n >= 10**15:  # phone numbers, codes: digit by digit
        return " ".join(_DIGIT_WORDS[lang][int(d)] for d in str(n))
    words = str(num2words(n, lang=lang))
    # num2words writes "one million, two hundred"; a comma would make espeak pause
    return words.replace(",", "")


def _decimal_words(whole: int, frac: str, lang: str) -> str:
    if lang == "zh":
        return zh_int(whole) + "点" + "".join(_ZH_DIGITS[int(d)] for d in frac)
    point = {"en": "point", "de": "Komma"}[lang]
    digits = " ".join(_DIGIT_WORDS[lang][int(d)] for d in frac)
    return f"{_int_words(whole, lang)} {point} {digits}"


# a plain space is no thousands mark here: "sizes 100 200" are two numbers
_NUM = r"\d{1,3}(?:[.,\u00a0\u202f]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?"


def _parse(raw: str) -> tuple[int, str]:
    """'1,299.99' / '1.299,99' / '19,99' -> (whole, fraction digits)."""
    s = re.sub(r"[\u00a0\u202f]", "", raw)
    seps = [i for i, c in enumerate(s) if c in ".,"]
    if not seps:
        return int(s), ""
    last = seps[-1]
    kinds = {s[i] for i in seps}
    # a separator followed by exactly three digits groups thousands, unless both kinds
    # appear (then the last one is the decimal mark); works for en and de alike
    if len(kinds) == 1 and (len(seps) > 1 or len(s) - last - 1 == 3):
        return int(re.sub(r"[.,]", "", s)), ""
    whole = re.sub(r"[.,]", "", s[:last]) or "0"
    return int(whole), s[last + 1:]


def number_words(raw: str, lang: str) -> str:
    """A written number ('19.99', '1,000', '19,99') spoken in `lang`."""
    whole, frac = _parse(raw)
    return _decimal_words(whole, frac, lang) if frac else _int_words(whole, lang)


# ---------------------------------------------------------------- prices

# currency -> (en singular, en plural, en minor plural, de, de minor, zh)
_CURRENCIES = {
    "EUR": ("euro", "euros", "cents", "Euro", "Cent", "欧元"),
    "USD": ("dollar", "dollars", "cents", "Dollar", "Cent", "美元"),
    "GBP": ("pound", "pounds", "pence", "Pfund", "Pence", "英镑"),
    "CNY": ("yuan", "yuan", "", "Yuan", "", "元"),
}
_SYMBOLS = {"€": "EUR", "$": "USD", "US$": "USD", "£": "GBP", "¥": "CNY", "￥": "CNY",
            "RMB": "CNY", "CNY": "CNY", "EUR": "EUR", "USD": "USD", "GBP": "GBP"}
_SUFFIXES = {"€": "EUR", "euro": "EUR", "euros": "EUR", "eur": "EUR", "欧元": "EUR",
             "dollar": "USD", "dollars": "USD", "usd": "USD", "美元": "USD",
             "£": "GBP", "pounds": "GBP", "gbp": "GBP", "英镑": "GBP",
             "元": "CNY", "yuan": "CNY", "rmb": "CNY", "cny": "CNY", "块": "CNY",
             "块钱": "CNY", "¥": "CNY"}


def price_words(raw: str, currency: str, lang: str, unit: str = "") -> str:
    """A price spoken the way a host says it: '19.99', 'EUR', 'de' -> 'neunzehn Euro
    neunundneunzig'."""
    whole, frac = _parse(raw)
    en1, en_n, en_minor, de_u, de_minor, zh_u = _CURRENCIES[currency]
    if lang == "zh":
        unit = unit if unit in ("块", "块钱") else zh_u
        frac = frac.rstrip("0")  # 十二点五元, not 十二点五零元
        num = _decimal_words(whole, frac, lang) if frac else zh_int(whole)
        return ("两" if whole == 2 and not frac else num) + unit
    cents = int((frac + "00")[:2]) if frac else 0
    exact = not frac or len(frac) <= 2  # 19.999 is no price: read it as a number
    if lang == "de":
        major = "ein" if whole == 1 else _int_words(whole, "de")
        if not exact or (cents and not de_minor):
            return f"{_decimal_words(whole, frac, 'de')} {de_u}"
        return f"{major} {de_u} {_int_words(cents, 'de')}" if cents else f"{major} {de_u}"
    name = en1 if whole == 1 and not frac else en_n
    if not exact or (cents and not en_minor):
        return f"{_decimal_words(whole, frac, 'en')} {en_n}"
    if cents:
        return f"{_int_words(whole, 'en')} {name} {_int_words(cents, 'en')}"
    return f"{_int_words(whole, 'en')} {name}"


# ---------------------------------------------------------------- units

# unit -> (en singular, en plural, de, zh)
_UNITS = {
    "kg": ("kilogram", "kilograms", "Kilogramm", "公斤"),
    "g": ("gram", "grams", "Gramm", "克"),
    "mg": ("milligram", "milligrams", "Milligramm", "毫克"),
    "ml": ("millilitre", "millilitres", "Milliliter", "毫升"),
    "l": ("litre", "litres", "Liter", "升"),
    "cm": ("centimetre", "centimetres", "Zentimeter", "厘米"),
    "mm": ("millimetre", "millimetres", "Millimeter", "毫米"),
    "m": ("metre", "metres", "Meter", "米"),
    "km": ("kilometre", "kilometres", "Kilometer", "公里"),
    "mah": ("milliamp hour", "milliamp hours", "Milliamperestunden", "毫安时"),
    "w": ("watt", "watts", "Watt", "瓦"),
    "gb": ("gigabyte", "gigabytes", "Gigabyte", "G"),
}
_ZH_MEASURES = "个件只条瓶盒包套斤袋支双张台"


def _unit_words(raw: str, unit: str, lang: str) -> str:
    en1, en_n, de_u, zh_u = _UNITS[unit.lower()]
    whole, frac = _parse(raw)
    if lang == "zh":
        return ("两" if whole == 2 and not frac else number_words(raw, lang)) + zh_u
    if lang == "de":
        num = "ein" if whole == 1 and not frac else number_words(raw, lang)
        return f"{num} {de_u}"
    return f"{number_words(raw, lang)} {en1 if whole == 1 and not frac else en_n}"


# ---------------------------------------------------------------- cleaning

_TAG = re.compile(r"<[^<>]{0,500}>")
_URL = re.compile(
    r"(?:https?://|ftp://|www\.)\S+"
    r"|\b[\w-]+(?:\.[\w-]+)*\.(?:com|cn|de|net|org|io|shop|co|uk|info|tv)\b(?:/\S*)?",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_LINK_WORDS = {"en": "the link", "de": "der Link", "zh": "链接"}
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MD_MARKS = re.compile(r"(\*{1,3}|_{2,3}|`{1,3}|~~|^#{1,6}\s*|^>\s*|^\s*[-*+]\s+)", re.M)


def _drop_symbols(text: str) -> str:
    """Remove emoji, pictographs, joiners, variation selectors and control characters."""
    keep = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("So", "Sk", "Cs", "Co", "Cn", "Cf") and ch != "°":
            continue
        if "\ufe00" <= ch <= "\ufe0f" or ch == "\u20e3":  # emoji variation, keycap
            continue
        if cat == "Cc" and ch not in "\n\t":
            continue
        keep.append(ch)
    return "".join(keep)


def strip_markup(text: str, lang: str = "en") -> str:
    """Tags, markdown, URLs and emoji out; the words stay. No '<' or '>' survives."""
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = _TAG.sub(" ", text)  # tags that were written as &lt;...&gt;
    text = text.replace("<", " ").replace(">", " ")
    text = _MD_LINK.sub(r"\1", text)
    text = _EMAIL.sub(" ", text)
    link = _LINK_WORDS[lang]
    # a URL's trailing punctuation belongs to the sentence ("see x.com!")
    text = _URL.sub(lambda m: f" {link}{m[0][len(m[0].rstrip('.,!?;:)')):]} ", text)
    text = _MD_MARKS.sub(" ", text)
    return _drop_symbols(text)


# ---------------------------------------------------------------- the pipeline

_B = r"(?<![A-Za-z0-9.,])"  # no letter/digit before (Han characters are fine)
_E = r"(?![0-9])"
_CUR_PREFIX = re.compile(rf"(US\$|RMB|CNY|EUR|USD|GBP|[€$£¥￥])\s?({_NUM}){_E}")
_CUR_SUFFIX = re.compile(
    rf"{_B}({_NUM})\s?(块钱|欧元|美元|英镑|元|块|€|£|¥|euros?|dollars?|pounds|"
    r"yuan|rmb|cny|eur|usd|gbp)(?![A-Za-z])",
    re.IGNORECASE,
)
_PERCENT = re.compile(rf"{_B}({_NUM})\s?%")
_UNIT = re.compile(
    rf"{_B}({_NUM})\s?(kg|mg|ml|mAh|cm|mm|km|gb|g|l|m|w)(?![A-Za-z])", re.IGNORECASE
)
_ZH_MEASURE_NUM = re.compile(rf"{_B}2(?=[{_ZH_MEASURES}])")
_PLAIN = re.compile(rf"{_B}-?({_NUM}){_E}")


def _sub(pattern: re.Pattern[str], fn: Callable[[re.Match[str]], str], text: str) -> str:
    # numbers become words that may touch letters: keep them apart with spaces
    return pattern.sub(lambda m: f" {fn(m)} ", text)


def _numbers(text: str, lang: str) -> str:
    text = _sub(_CUR_PREFIX, lambda m: price_words(m[2], _SYMBOLS[m[1]], lang), text)
    text = _sub(
        _CUR_SUFFIX,
        lambda m: price_words(m[1], _SUFFIXES[m[2].lower()], lang, unit=m[2]),
        text,
    )
    percent = {"en": "{} percent", "de": "{} Prozent", "zh": "百分之{}"}[lang]
    text = _sub(_PERCENT, lambda m: percent.format(number_words(m[1], lang)), text)
    text = _sub(_UNIT, lambda m: _unit_words(m[1], m[2], lang), text)
    if lang == "zh":
        text = _ZH_MEASURE_NUM.sub("两", text)
    minus = {"en": "minus ", "de": "minus ", "zh": "负"}[lang]

    def plain(m: re.Match[str]) -> str:
        sign = minus if m[0].startswith("-") else ""
        return sign + number_words(m[1], lang)

    return _sub(_PLAIN, plain, text)


_AND = {"en": " and ", "de": " und ", "zh": "和"}


def _tidy(text: str, lang: str) -> str:
    text = text.replace("&", _AND[lang]).replace("+", " plus " if lang != "zh" else "加")
    text = re.sub(r"[#@*_|\\^~=/]", " ", text)  # "24/7" -> "twenty-four seven"
    text = re.sub(r"([!?.。！？,，])\1+", r"\1", text)  # "!!!" -> "!"
    text = re.sub(r"[ \t\u00a0\u3000]+", " ", text)
    text = re.sub(r" ?\n+ ?", "\n", text)
    if lang == "zh":  # spaces between Han characters are artefacts of the steps above
        text = re.sub(r"(?<=[\u3400-\u9fff，。！？、：；]) (?=[\u3400-\u9fff，。！？、：；])",
                      "", text)
    text = re.sub(r" ([,.!?;:])", r"\1", text)
    return text.strip()


def normalize(text: str, lang: str) -> str:
    """Text as it should be spoken: numbers, prices, units in words; no markup, emoji
    or URLs. Returns '' when nothing speakable is left."""
    lang = canonical_lang(lang)
    text = unicodedata.normalize("NFKC", strip_markup(text, lang)) if text else ""
    text = _numbers(text, lang)
    text = _tidy(text, lang)
    return "" if not any(ch.isalnum() for ch in text) else text


# ---------------------------------------------------------------- sentences

_SENTENCE_END = re.compile(
    r"(?<=[.!?…])[\"'”’)\]]*\s+|(?<=[。！？])[”’」』）]*\s*|\n+"
    r"|(?<=[.!?])(?=[\u3400-\u9fff])"  # NFKC turns ！？ into !? inside Chinese text
)
_ABBREVIATIONS = re.compile(
    r"\b(?:Mr|Mrs|Ms|Dr|Prof|St|vs|etc|e\.g|i\.e|ca|inkl|zzgl|bzw|z\.B|u\.a|Nr|Str|usw|MwSt)\.$",
    re.IGNORECASE,
)
_CLAUSE = re.compile(r"(?<=[,;:，；：、])\s*")
MAX_SENTENCE_CHARS = 250


def _chunk(sentence: str, limit: int) -> list[str]:
    """Split an over-long sentence at clause marks, then at spaces, then hard."""
    if len(sentence) <= limit:
        return [sentence]
    pieces = [p for part in _CLAUSE.split(sentence) for p in _hard_split(part, limit)]
    out: list[str] = []
    cur = ""
    for piece in pieces:
        if cur and len(cur) + len(piece) + 1 > limit:
            out.append(cur)
            cur = ""
        joiner = "" if not cur or _is_cjk(piece[:1]) else " "
        cur += joiner + piece
    if cur:
        out.append(cur)
    return out


def _is_cjk(ch: str) -> bool:
    return bool(ch) and "\u3000" <= ch <= "\u9fff"


def _hard_split(part: str, limit: int) -> list[str]:
    """Cut at spaces, and a space-less run (Chinese, one huge token) every `limit`."""
    pieces: list[str] = []
    for word in part.split():
        pieces.extend(word[i:i + limit] for i in range(0, len(word), limit))
    out: list[str] = []
    for piece in pieces:
        if out and len(out[-1]) + len(piece) + 1 <= limit:
            out[-1] += " " + piece
        else:
            out.append(piece)
    return out


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Sentences of `text` (., !, ?, 。！？ and line breaks), long ones cut at clauses so
    the first audio never waits for a whole paragraph."""
    merged: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        if merged and _ABBREVIATIONS.search(merged[-1]):  # "inkl. MwSt." is one sentence
            merged[-1] = f"{merged[-1]} {sentence}".strip()
        elif sentence:
            merged.append(sentence)
    out: list[str] = []
    for sentence in merged:
        if any(ch.isalnum() for ch in sentence):
            out.extend(_chunk(sentence, max_chars))
    return out


def sentences_to_speak(text: str) -> list[str]:
    """`split_sentences`, refusing text with nothing to say (backends share this check)."""
    sentences = split_sentences(text)
    if not sentences:
        raise InputError("There is no text to speak; give at least one word.")
    return sentences
