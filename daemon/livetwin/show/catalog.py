"""The product catalog file (ARCHITECTURE §7): YAML `products:`, each with `id`, `name`,
`price`, `currency`, optional `list_price`, `stock`, `facts` (the only claims that may
be made on air) and `faq` (`q`: trigger phrases, `a`: an answer template that may use
the product's fields such as `{price}`). Loaded into `events.Product`."""

from __future__ import annotations

import string
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from livetwin.config import validation_message
from livetwin.errors import InputError
from livetwin.events import Product

_FIELDS = {"id", "name", "price", "currency", "list_price", "stock"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Faq(_Model):
    q: list[str] = Field(min_length=1)
    a: str = Field(min_length=1)

    @field_validator("q", mode="before")
    @classmethod
    def _one_phrase(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @field_validator("a")
    @classmethod
    def _known_fields(cls, v: str) -> str:
        names = {f for _, f, _, _ in string.Formatter().parse(v) if f}
        unknown = names - _FIELDS
        if unknown:
            raise ValueError(f"the answer uses unknown field(s) {', '.join(sorted(unknown))}; "
                             f"use {', '.join(sorted(_FIELDS))}")
        return v


class _Product(_Model):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: str = Field(min_length=1, max_length=200)
    price: float = Field(ge=0)
    currency: str = Field(min_length=1, max_length=8)
    list_price: float | None = Field(None, ge=0)
    stock: int | None = Field(None, ge=0)
    facts: list[str] = []
    faq: list[_Faq] = []


class _Catalog(_Model):
    products: list[_Product]


def load_catalog(path: Path) -> list[Product]:
    """The products of catalog file `path`; InputError (one line, with the file's line
    where known) for anything wrong."""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except OSError as exc:
        raise InputError(f"cannot read catalog {path}: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise InputError(f"catalog {path} is not UTF-8 text; save it as UTF-8 YAML.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InputError(f"{where}: not valid YAML; fix the syntax there.") from None
    if not isinstance(data, dict) or "products" not in data:
        raise InputError(f"catalog {path}: expected a mapping with a `products:` list "
                         "(see ARCHITECTURE §7 / the README).")
    try:
        cat = _Catalog.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(exc, text, path, "field")) from None
    ids = [p.id for p in cat.products]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise InputError(f"catalog {path}: product id(s) {', '.join(dupes)} appear twice; "
                         "ids must be unique.")
    return [Product(id=p.id, name=p.name, price=p.price, currency=p.currency,
                    list_price=p.list_price, stock=p.stock, facts=tuple(p.facts),
                    faq=tuple((tuple(f.q), f.a) for f in p.faq)) for p in cat.products]


def product_json(product: Product | None) -> dict[str, object] | None:
    """The short form used by the WebSocket `state`/`hello` messages."""
    if product is None:
        return None
    return {"id": product.id, "name": product.name, "price": product.price,
            "currency": product.currency}


def product_full_json(product: Product) -> dict[str, object]:
    """Everything the catalog says about `product` (GET /api/products)."""
    return {"id": product.id, "name": product.name, "price": product.price,
            "currency": product.currency, "list_price": product.list_price,
            "stock": product.stock, "facts": list(product.facts),
            "faq": [{"q": list(q), "a": a} for q, a in product.faq]}
