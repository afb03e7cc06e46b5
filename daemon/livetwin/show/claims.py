"""The claims checker: a line may say only what the product record says.

Every line that is to go on air about a product (template, LLM or a person's edit) is
checked against its record (name, price, list price, stock, facts, FAQ answers):
- numbers: every number, in digits or words, must be one the record gives (price, list
  price, stock, the saving between them, or a number written in the name, facts or
  answers);
- money: a currency word or sign must be the product's own currency;
- risky words (free, guarantee, best, cheapest, limited, organic, percent, ...) must
  appear in the record themselves;
- `strict` (LLM lines): every sentence must be supported, i.e. each of its content
  words is in the record or in the approved template phrasing (plus a short list of
  opinion words such as "great"); for Chinese, at most one unknown character pair.
The checker errs on the side of refusing: a refused LLM line costs nothing, because
the templates cover every segment."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from livetwin.events import Product
from livetwin.show.templates import Templates, price_text

_NUM = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[a-zäöüß]+")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_ZH_NUM = re.compile(r"[零一二两三四五六七八九十百千万]+(?=\s*(?:元|块|件|个|小时|天|折|克|"
                     r"毫升|年|月|支|瓶|种|色|%|倍|分钟|周))")
_NUMBER_WORDS = {
    "en": set("two three four five six seven eight nine ten eleven twelve thirteen fourteen "
              "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty "
              "seventy eighty ninety hundred thousand million dozen half double triple "
              "twice percent".split()),
    "de": set("zwei drei vier fünf sechs sieben acht neun zehn elf zwölf zwanzig dreißig "
              "vierzig fünfzig hundert tausend million dutzend halb halbe doppelt prozent "
              "zweimal".split()),
}
_RISKY = {
    "en": set("free gratis guarantee guaranteed warranty best cheapest lowest sale discount "
              "limited exclusive organic natural cure cures heal heals clinically certified "
              "award bestseller bestselling refund waterproof hypoallergenic medical safe "
              "authentic original genuine official percent".split()) | {"sold out"},
    "de": set("kostenlos gratis garantie garantiert beste günstigste billigste rabatt "
              "limitiert exklusiv bio natürlich heilt klinisch zertifiziert testsieger "
              "wasserdicht original echt offiziell prozent".split()),
    "zh": {"免费", "包邮", "保证", "最好", "最便宜", "最低", "打折", "限时", "限量", "正品", "有机",
           "治疗", "专柜", "秒杀", "清仓", "全网", "第一", "官方", "无副作用", "防水"},
}
_CURRENCY = {
    "CNY": {"¥", "元", "块", "人民币", "yuan", "rmb", "kuai", "cny"},
    "USD": {"$", "dollar", "dollars", "美元", "usd"},
    "EUR": {"€", "euro", "euros", "欧元", "eur"},
    "GBP": {"£", "pound", "pounds", "pfund", "英镑", "gbp"},
    "JPY": {"¥", "yen", "日元", "円", "jpy"},
    "HKD": {"$", "hk$", "港币", "港元", "hkd", "dollar", "dollars"},
    "CHF": {"franken", "franc", "francs", "瑞士法郎", "chf"},
}
_ANY_CURRENCY = set().union(*_CURRENCY.values()) - {"块"}
_OPINION = set("great amazing lovely beautiful gorgeous perfect nice really super favourite "
               "favorite love like wow stunning pretty awesome fantastic wonderful cute cool "
               "toll schön super wunderbar klasse liebe mag perfekt".split())
_STOP = set("the a an and or but of to in on at for with it its it's this that these those "
            "is are was be been am i you we they he she my your our their me us them so as "
            "if then than too very just all any some what which who how when where why not "
            "no yes do does did can could will would should may might have has had there "
            "here from by about into out up down over again more most other such own same "
            "also only get got let let's you're we're i'm it's that's don't don der die das "
            "und oder aber ein eine einen einem einer ist sind war es sie wir ihr ich du mit "
            "für auf in im an am zu zum zur von vom bei aus nach wie was wer wo noch schon "
            "auch nur sehr so dann den dem des nicht kein keine euch uns mich dich".split())


@dataclass(frozen=True)
class Verdict:
    """Whether a line may go on air, and why not."""

    ok: bool
    reasons: tuple[str, ...] = ()


def _stem(word: str) -> str:
    for suffix in ("ies", "es", "s", "ed", "ing", "en", "er", "e"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _number_value(token: str) -> float | None:
    t = token.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", token) else token
    try:
        return float(t.replace(",", "."))
    except ValueError:
        return None


class ClaimChecker:
    """Checks lines about one product (module doc)."""

    def __init__(self, product: Product, templates: Templates | None = None) -> None:
        self.product = product
        self.lang = templates.lang if templates else "en"
        answers = [a for _, a in product.faq]
        self.record = " ".join([product.name, *product.facts, *answers]).lower()
        self.numbers = self._grounded_numbers(product)
        self.currency = set(_CURRENCY.get(product.currency, set())) | {product.currency.lower()}
        if templates is not None:
            self.currency |= set(templates.currency_word(product.currency).lower().split())
        vocab = self.record + " " + (templates.vocabulary().lower() if templates else "")
        self.words = {_stem(w) for w in _WORD.findall(vocab)}
        cjk = "".join(ch if _CJK.match(ch) else " " for ch in vocab)
        self.pairs = {cjk[i:i + 2] for i in range(len(cjk) - 1) if " " not in cjk[i:i + 2]}

    @staticmethod
    def _grounded_numbers(p: Product) -> set[float]:
        values = {float(p.price)}
        if p.list_price is not None:
            values |= {float(p.list_price), round(p.list_price - p.price, 2)}
        if p.stock is not None:
            values.add(float(p.stock))
        text = " ".join([p.name, *p.facts, *(a for _, a in p.faq)])
        values |= {v for t in _NUM.findall(text) if (v := _number_value(t)) is not None}
        return values

    def check(self, text: str, *, strict: bool = False) -> Verdict:
        """Whether `text` may be said about the product; `strict` for LLM lines."""
        reasons = [*self._numbers(text), *self._money(text), *self._risky(text)]
        if strict:
            reasons += self._support(text)
        return Verdict(not reasons, tuple(reasons))

    def _numbers(self, text: str) -> Iterable[str]:
        for token in _NUM.findall(text):
            value = _number_value(token)
            if value is None or not any(abs(value - g) < 0.005 for g in self.numbers):
                yield f"the number {token} is not in the product record"
        lower = text.lower()
        for word in _WORD.findall(lower):
            if word in _NUMBER_WORDS.get(self.lang, set()) | _NUMBER_WORDS["en"] and \
                    not re.search(rf"\b{re.escape(word)}\b", self.record):
                yield f"the number word '{word}' is not in the product record"
        for numeral in _ZH_NUM.findall(text):
            if numeral not in self.record:
                yield f"the number {numeral} is not in the product record"

    def _money(self, text: str) -> Iterable[str]:
        lower = text.lower()
        found = {w for w in _WORD.findall(lower) if w in _ANY_CURRENCY}
        found |= {c for c in ("$", "€", "£", "¥", "元", "美元", "欧元", "英镑", "日元", "港币")
                  if c in text}
        found |= {c.lower() for c in re.findall(r"\b[A-Z]{3}\b", text)
                  if c.lower() in _ANY_CURRENCY}
        for c in sorted(found - self.currency):
            if not (c == "元" and self.currency & {"美元", "欧元", "英镑", "日元", "港元"}):
                yield f"'{c}' is not the product's currency ({self.product.currency})"

    def _risky(self, text: str) -> Iterable[str]:
        lower = text.lower()
        for word in sorted(_RISKY.get(self.lang, set()) | _RISKY["en"]):
            if _CJK.match(word[0]):
                hit = word in text
            else:
                hit = re.search(rf"\b{re.escape(word)}\b", lower) is not None
            if hit and word not in self.record:
                yield f"'{word}' is a claim the product record does not make"
        if "%" in text and "%" not in self.record:
            yield "a percentage is a claim the product record does not make"

    def _support(self, text: str) -> Iterable[str]:
        lower = text.lower()
        unknown = sorted({w for w in _WORD.findall(lower)
                          if w not in _STOP and w not in _OPINION and len(w) > 2
                          and w not in self.currency
                          and _stem(w) not in self.words})
        if unknown:
            yield f"not supported by the product's facts: {', '.join(unknown[:5])}"
        cjk = "".join(ch if _CJK.match(ch) else " " for ch in text)
        pairs = {cjk[i:i + 2] for i in range(len(cjk) - 1) if " " not in cjk[i:i + 2]}
        odd = sorted(pairs - self.pairs)
        if len(odd) > 1:
            yield f"not supported by the product's facts: {', '.join(odd[:5])}"


def price_phrase(product: Product) -> str:
    """'99 CNY' (for messages)."""
    return f"{price_text(product.price)} {product.currency}"
