"""Sales-script templates (`scripts_templates/<lang>.yaml`, YAML + Jinja2).

`script:` segments (opener, feature, price, urgency, follow, cart, qa_bridge) are
rendered per product into a draft that a person approves before it airs. `live:`
segments (fillers, greetings, thanks, the spike welcome) are said at run time without
a per-product approval: they are approved material by construction, because they use
no product field but the name (checked when the templates load: a live template that
names a price, a fact or any number is refused).

Rendering is sandboxed Jinja2 with StrictUndefined: a template naming a field the
product lacks fails loudly instead of saying an empty price."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from livetwin.errors import InputError
from livetwin.events import Product
from livetwin.resources import data_dir

LANGS = ("en", "zh", "de")
SCRIPT_KINDS = ("opener", "feature", "price", "urgency", "follow", "cart", "qa_bridge")
LIVE_KINDS = ("filler", "filler_product", "greeting_name", "greeting_room",
              "thanks_gift_name", "thanks_follow_name", "thanks_room", "spike_welcome")
LIVE_INTENTS = {"filler": (), "filler_product": ("product",), "greeting_name": ("greeting",),
                "greeting_room": ("greeting",), "thanks_gift_name": ("thanks",),
                "thanks_follow_name": ("thanks", "follow"), "thanks_room": ("thanks",),
                "spike_welcome": ("greeting",)}
_LIVE_FIELDS = {"filler": set(), "filler_product": {"name"}, "greeting_name": {"user"},
                "greeting_room": set(), "thanks_gift_name": {"user"},
                "thanks_follow_name": {"user"}, "thanks_room": set(), "spike_welcome": set()}
_FIELD = re.compile(r"{{\s*([a-z_]+)\s*}}")
_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Variant(_M):
    text: str = Field(min_length=1)
    requires: list[str] = []


class _Segment(_M):
    intents: list[str] = []
    per_fact: bool = False
    variants: list[_Variant] = Field(min_length=1)

    @field_validator("variants", mode="before")
    @classmethod
    def _plain(cls, v: object) -> object:
        if isinstance(v, list):
            return [{"text": x} if isinstance(x, str) else x for x in v]
        return v


class _File(_M):
    lang: str
    currency_words: dict[str, str] = {}
    script: dict[str, _Segment]
    live: dict[str, list[str]]


@dataclass(frozen=True)
class Rendered:
    """A rendered line: text, segment kind and intents."""

    text: str
    kind: str
    intents: tuple[str, ...]


def price_text(value: float) -> str:
    """99.0 -> '99', 12.5 -> '12.50' (as the live daemon speaks prices)."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


class Templates:
    """The templates of one language (module doc)."""

    def __init__(self, lang: str, data: _File, path: Path) -> None:
        self.lang = lang
        self._d = data
        self.path = path

    def currency_word(self, code: str) -> str:
        return self._d.currency_words.get(code, code)

    def fields(self, product: Product) -> dict[str, Any]:
        """The template fields of `product` (only those it has)."""
        f: dict[str, Any] = {"name": product.name, "price": price_text(product.price),
                             "currency": self.currency_word(product.currency)}
        if product.list_price is not None and product.list_price > product.price:
            f["list_price"] = price_text(product.list_price)
            f["saving"] = price_text(product.list_price - product.price)
        if product.stock is not None and product.stock > 0:
            f["stock"] = str(product.stock)
        return f

    def script_lines(self, product: Product) -> list[Rendered]:
        """Every variant of every script segment for `product` (a draft's lines)."""
        fields = self.fields(product)
        out: list[Rendered] = []
        for kind in SCRIPT_KINDS:
            seg = self._d.script.get(kind)
            if seg is None:
                continue
            facts = product.facts if seg.per_fact else (None,)
            for fact in facts:
                for v in seg.variants:
                    if not set(v.requires) <= fields.keys():
                        continue
                    values = fields if fact is None else {**fields, "fact": fact}
                    out.append(Rendered(self._render(v.text, values), kind,
                                        tuple(seg.intents)))
        return out

    def vocabulary(self) -> str:
        """Every word the templates use (fields left out): approved phrasing, which the
        claims checker does not count as a claim."""
        texts = [v.text for seg in self._d.script.values() for v in seg.variants]
        texts += [t for lines in self._d.live.values() for t in lines]
        return _FIELD.sub(" ", " ".join(texts))

    def live_lines(self, kind: str, **values: str) -> list[str]:
        """The run-time lines of `kind` (filler, greeting_name, ...) rendered with
        `values` (name, user)."""
        return [self._render(t, values) for t in self._d.live.get(kind, [])]

    def _render(self, text: str, values: dict[str, Any]) -> str:
        try:
            return " ".join(_compiled(text).render(**values).split())
        except TemplateError as exc:
            raise InputError(f"{self.path}: template {text!r} cannot be rendered ({exc}); "
                             "fix the template.") from None


@functools.lru_cache(maxsize=4096)
def _compiled(text: str) -> Template:
    return _env.from_string(text)


def _check_live(data: _File, path: Path) -> None:
    """Live lines may use only their own fields and no digits (module doc)."""
    for kind, texts in data.live.items():
        if kind not in LIVE_KINDS:
            raise InputError(f"{path}: unknown live segment '{kind}'; use "
                             f"{', '.join(LIVE_KINDS)}.")
        for t in texts:
            extra = set(_FIELD.findall(t)) - _LIVE_FIELDS[kind]
            if extra or re.search(r"\d", t):
                what = ", ".join(sorted(extra)) or "a number"
                raise InputError(f"{path}: live line {t!r} uses {what}; live lines may "
                                 "only name the product.")
    for kind in data.script:
        if kind not in SCRIPT_KINDS:
            raise InputError(f"{path}: unknown script segment '{kind}'; use "
                             f"{', '.join(SCRIPT_KINDS)}.")


@functools.lru_cache(maxsize=16)
def load_templates(lang: str, folder: Path | None = None) -> Templates:
    """The templates of `lang` from `folder` (None: the shipped scripts_templates/)."""
    if lang not in LANGS:
        raise InputError(f"no script templates for language '{lang}'; use en, zh or de.")
    path = (folder or data_dir("scripts_templates")) / f"{lang}.yaml"
    try:
        text = path.read_text(encoding="utf-8")
        data = _File.model_validate(yaml.safe_load(text))
    except OSError as exc:
        raise InputError(f"cannot read templates {path}: {exc.strerror}.") from None
    except yaml.YAMLError:
        raise InputError(f"{path}: not valid YAML; fix the syntax.") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise InputError(f"{path}: '{key}': {err['msg']}.") from None
    _check_live(data, path)
    return Templates(lang, data, path)
