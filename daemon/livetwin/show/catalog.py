"""The product catalog file (ARCHITECTURE §7): YAML `products:`, each with `id`, `name`,
`price`, `currency`, optional `list_price`, `stock`, `facts` (the only claims that may
be made on air), `faq` (`q`: trigger phrases, `a`: an answer template that may use
the product's fields such as `{price}`) and `weight` (how much airtime the product gets
relative to the others, default 1). Loaded into `events.Product`.

A catalog is checked whole before anything uses it: a file over MAX_BYTES, broken YAML,
a missing or negative price, an unknown currency (ISO 4217 codes only) or a duplicate
id is one InputError naming the file, the line where known, the product and the field.
The store imports only a catalog that passed, in one transaction."""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from livetwin.config import validation_message
from livetwin.errors import InputError
from livetwin.events import Product

_FIELDS = {"id", "name", "price", "currency", "list_price", "stock"}
MAX_BYTES = 10 * 1024 * 1024  # a catalog is text; a bigger file is a mistake (or an attack)

# Active ISO 4217 codes (the ones a shop can be paid in).
CURRENCIES = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
""".split())


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
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(v) if f}
        except ValueError:
            raise ValueError("the answer has an unbalanced '{' or '}'; write {price} "
                             "style fields") from None
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
    weight: float = Field(1.0, gt=0, le=1000)

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, v: str) -> str:
        code = v.strip().upper()
        if code not in CURRENCIES:
            raise ValueError(f"unknown currency '{v}'; use an ISO 4217 code such as CNY, "
                             "USD, EUR, GBP or JPY")
        return code

    @field_validator("facts")
    @classmethod
    def _facts_not_blank(cls, v: list[str]) -> list[str]:
        if any(not f.strip() for f in v):
            raise ValueError("a fact is empty; remove it or write the fact")
        return [f.strip() for f in v]


class _Catalog(_Model):
    products: list[_Product]


@dataclass(frozen=True)
class CatalogItem:
    """A product and its airtime weight (relative to the other products)."""

    product: Product
    weight: float = 1.0


class CatalogFieldError(InputError):
    """A catalog problem in one place: `field` is its dotted key in the record or file
    (`price`, `faq.0.a`, `products.2.currency`), `product` the product's id, where known."""

    def __init__(self, message: str, field: str | None = None,
                 product: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.product = product


def read_catalog(path: Path) -> list[CatalogItem]:
    """The products of catalog file `path` with their weights; InputError (one line,
    naming the file, line, product and field where known) for anything wrong."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read catalog {path}: {exc.strerror}.") from None
    if size > MAX_BYTES:
        raise InputError(f"catalog {path} is {size / 1e6:.1f} MB, more than the "
                         f"{MAX_BYTES // (1024 * 1024)} MB limit; split it or remove what "
                         "is not a product.")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read catalog {path}: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise InputError(f"catalog {path} is not UTF-8 text; save it as UTF-8 YAML.") from None
    return parse_catalog(text, path)


def parse_catalog(text: str, path: Path) -> list[CatalogItem]:
    """The products of catalog YAML `text` (read from `path`, which the messages name):
    read_catalog's checks; a field problem is a CatalogFieldError."""
    try:
        data = yaml.safe_load(text)
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
        pid = _product_id(exc, data)
        message = validation_message(exc, text, path, "field")
        if pid is not None:
            message = f"{message.rstrip('.')} (product '{pid}')."
        raise CatalogFieldError(message, _dotted(exc), pid) from None
    ids = [p.id for p in cat.products]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise CatalogFieldError(f"catalog {path}: product id(s) {', '.join(dupes)} appear "
                                "twice; ids must be unique.", "id", dupes[0])
    return [CatalogItem(to_product(p), p.weight) for p in cat.products]


def validate_product(data: object) -> CatalogItem:
    """One product record (a catalog entry, e.g. as JSON from the dashboard) checked by
    the catalog file's rules; CatalogFieldError naming the field for anything wrong."""
    if not isinstance(data, dict):
        raise CatalogFieldError("a product is an object with id, name, price, currency and "
                                "optionally list_price, stock, facts, faq, weight.")
    pid = data.get("id") if isinstance(data.get("id"), str) else None
    try:
        p = _Product.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _dotted(exc)
        if err["type"] == "extra_forbidden":
            message = f"unknown field '{key}'; a product has {', '.join(_Product.model_fields)}."
        else:
            message = f"{key}: {err['msg']}."
        raise CatalogFieldError(message, key or None, pid) from None
    return CatalogItem(to_product(p), p.weight)


def _dotted(exc: ValidationError) -> str:
    return ".".join(str(part) for part in exc.errors()[0]["loc"])


def _product_id(exc: ValidationError, data: dict[str, object]) -> str | None:
    """The id of the product the first error is in, when it has one."""
    loc = exc.errors()[0]["loc"]
    products = data.get("products")
    if len(loc) < 2 or not isinstance(products, list) or not isinstance(loc[1], int):
        return None
    entry = products[loc[1]] if loc[1] < len(products) else None
    pid = entry.get("id") if isinstance(entry, dict) else None
    return None if pid is None else str(pid)


def to_product(p: _Product) -> Product:
    return Product(id=p.id, name=p.name, price=p.price, currency=p.currency,
                   list_price=p.list_price, stock=p.stock, facts=tuple(p.facts),
                   faq=tuple((tuple(f.q), f.a) for f in p.faq))


def load_catalog(path: Path) -> list[Product]:
    """The products of catalog file `path` (read_catalog without the weights)."""
    return [item.product for item in read_catalog(path)]


def product_from_json(record: dict[str, object]) -> Product:
    """The Product of a `product_full_json` record (as the store keeps it)."""
    return to_product(_Product.model_validate(record))


def product_json(product: Product | None) -> dict[str, object] | None:
    """The short form used by the WebSocket `state`/`hello` messages."""
    if product is None:
        return None
    return {"id": product.id, "name": product.name, "price": product.price,
            "currency": product.currency}


def product_full_json(product: Product, weight: float | None = None) -> dict[str, object]:
    """Everything the catalog says about `product` (GET /api/products); with `weight`
    when given (the store's and the export's form)."""
    record: dict[str, object] = {
        "id": product.id, "name": product.name, "price": product.price,
        "currency": product.currency, "list_price": product.list_price,
        "stock": product.stock, "facts": list(product.facts),
        "faq": [{"q": list(q), "a": a} for q, a in product.faq]}
    if weight is not None:
        record["weight"] = weight
    return record
