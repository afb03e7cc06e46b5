"""The dashboard's catalog and script routes (docs/dashboard.md, docs/show.md): what
`livetwin products import` and `livetwin scripts generate|edit` do, over HTTP.

- `POST /api/products`: add or update ONE product (a catalog record, ARCHITECTURE §7),
  checked by the catalog file's rules (show/catalog.py) and stored in one transaction
  (Store.save_product: a new product goes last). A problem is 422
  `{"detail": sentence, "field": dotted key}` so the page can show it beside the field.
  A weight left out keeps the stored product's weight (1 for a new product).
- `POST /api/products/import`: a whole catalog: the YAML text as the body, or JSON
  `{"yaml": TEXT, "name": FILE NAME}`; checked whole, then stored in one transaction
  (422 naming the product and field, nothing stored). Bodies over the Guard's 64 KB
  are 413 before they get here: big catalogs go through `livetwin products import`.
- `POST /api/scripts/generate` `{"product_id", "lang"?}`: a new draft version, made as
  the CLI makes it (templates, plus the LLM when `llm.backend` is set, with its
  fallback) -> 201 with the script.
- `PUT /api/scripts/{id}` `{"lines": [{"text", "kind", "intents"?}]}`: a person's edit,
  stored as a NEW draft version whose parent is `id` (an approved version never
  changes); every line goes through the claims checker: 422 `{"detail", "line"}` naming
  the first line that says what the catalog does not.
- `POST /api/products/{id}/faq` `{"q": [trigger phrases], "a": answer, "chat_id"?}`:
  the operator's answer saved as a FAQ entry of the product (an entry with the same
  triggers is replaced), checked like any product (422 `{"detail", "field"}`), stored,
  and the chat pipeline's answer database rebuilt, so the next viewer who asks it is
  answered at once. With `chat_id` the question leaves the operator queue -> 201 with the
  product. Triggers are stored as the answer database compares questions: folded, the
  product names taken out, closing punctuation dropped ("Is the mug dishwasher safe?"
  -> "is the dishwasher safe").

After a catalog change the running daemon uses the new records at once: the API's and
the twin's product lists, the chat pipeline (when it offers `set_products`) and the show
director (whose approved lines are re-checked against the new records)."""

from __future__ import annotations

import functools
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from livetwin.errors import InputError
from livetwin.show.catalog import (
    CatalogFieldError,
    CatalogItem,
    parse_catalog,
    product_full_json,
    validate_product,
)

if TYPE_CHECKING:
    from livetwin.llm.base import LLMBackend
    from livetwin.server.app import Daemon
    from livetwin.show.templates import Templates
    from livetwin.store.db import Store

log = logging.getLogger(__name__)
MAX_LINES = 500
_LINE_NO = re.compile(r"^line (\d+)\b")
NO_STORE = "this daemon has no product store; start it with `livetwin serve`."
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml",
              "text/plain")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class GenerateIn(_Body):
    product_id: str = Field(min_length=1, max_length=64)
    lang: str | None = Field(None, pattern=r"^(en|zh|de)$")


class LineIn(_Body):
    text: str = Field(max_length=2_000)
    kind: str = Field(min_length=1, max_length=32)
    intents: list[str] = Field(default_factory=list, max_length=16)


class EditIn(_Body):
    lines: list[LineIn] = Field(max_length=MAX_LINES)


class FaqIn(_Body):
    q: list[str] = Field(min_length=1, max_length=16)
    a: str = Field(min_length=1, max_length=2_000)
    chat_id: str | None = Field(None, max_length=32)


def add_show_routes(app: FastAPI, daemon: Daemon) -> None:
    """Serve the routes of the module doc on `app`."""
    app.include_router(show_router(daemon))


def _unprocessable(detail: str, **extra: object) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=422)


def _store(daemon: Daemon) -> Store:
    if daemon.store is None:
        raise HTTPException(404, NO_STORE)
    return daemon.store


def show_router(daemon: Daemon) -> APIRouter:
    """The routes of the module doc."""
    router = APIRouter()

    @functools.cache
    def script_llm() -> LLMBackend | None:
        """The configured LLM (one client for the daemon's life); None: templates only."""
        from livetwin.llm.registry import from_config

        return from_config(daemon.config.llm) if daemon.config is not None else None

    @router.post("/api/products")
    async def add_product(request: Request) -> JSONResponse:
        store = _store(daemon)
        try:
            data = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _unprocessable("the body is not JSON; send one product as a JSON object.")
        try:
            item = validate_product(data)
        except CatalogFieldError as exc:
            return _unprocessable(str(exc), field=exc.field)
        item, added = await run_in_threadpool(save_product, daemon, store, item,
                                              "weight" in data)
        return JSONResponse({**product_full_json(item.product, item.weight),
                             "added": added}, status_code=201 if added else 200)

    @router.post("/api/products/import")
    async def import_catalog(request: Request) -> JSONResponse:
        store = _store(daemon)
        raw = await request.body()
        name = "the catalog"
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if kind == "application/json":
                body = json.loads(raw)
                if not isinstance(body, dict) or not isinstance(body.get("yaml"), str):
                    return _unprocessable('send {"yaml": "the catalog text"} or the YAML '
                                          "itself as the body.")
                text = body["yaml"]
                if isinstance(body.get("name"), str) and body["name"].strip():
                    name = Path(body["name"].strip()).name[:100]
            elif kind in YAML_TYPES or not kind:
                text = raw.decode("utf-8")
            else:
                raise HTTPException(415, f"a catalog is YAML text (Content-Type "
                                    f"application/yaml) or JSON {{\"yaml\": ...}}, not {kind}.")
        except (ValueError, UnicodeDecodeError):
            return _unprocessable("the catalog is not UTF-8 text (or the JSON is broken); "
                                  "save it as UTF-8 YAML.")
        try:
            items = parse_catalog(text, Path(name))
        except CatalogFieldError as exc:
            return _unprocessable(str(exc), field=exc.field, product=exc.product)
        except InputError as exc:
            return _unprocessable(str(exc))
        added, updated, _ = await run_in_threadpool(store.import_catalog, items)
        await run_in_threadpool(refresh, daemon)
        return JSONResponse({"products": len(items), "added": added, "updated": updated})

    @router.post("/api/scripts/generate", status_code=201)
    def generate(body: GenerateIn) -> dict[str, Any]:
        from livetwin.show.scripts import generate_draft

        store = _store(daemon)
        try:
            store.product(body.product_id)
        except InputError as exc:
            raise HTTPException(404, str(exc)) from None
        try:
            templates = _templates(daemon, body.lang)
            record = generate_draft(store, body.product_id, templates, script_llm())
        except InputError as exc:
            raise HTTPException(422, str(exc)) from None
        return record.to_json()

    @router.put("/api/scripts/{script_id}")
    def edit_script(script_id: int, body: EditIn) -> JSONResponse:
        from livetwin.show.scripts import edit
        from livetwin.store.db import ScriptLine

        store = _store(daemon)
        try:
            old = store.script(script_id)
        except InputError as exc:
            raise HTTPException(404, str(exc)) from None
        lines = [ScriptLine(ln.text, ln.kind, tuple(ln.intents)) for ln in body.lines]
        try:
            record = edit(store, script_id, lines, _templates(daemon, old.lang))
        except InputError as exc:
            m = _LINE_NO.match(str(exc))
            return _unprocessable(str(exc), line=int(m.group(1)) if m else None)
        return JSONResponse(record.to_json(), status_code=201)

    @router.post("/api/products/{product_id}/faq", status_code=201)
    def add_faq(product_id: str, body: FaqIn) -> JSONResponse:
        from livetwin.server.dashboard import take_off_queue

        store = _store(daemon)
        item = next((i for i in store.catalog() if i.product.id == product_id), None)
        if item is None:
            raise HTTPException(404, f"no product {product_id!r} in the catalog.")
        triggers = list(dict.fromkeys(t for t in (_trigger(daemon, q) for q in body.q) if t))
        if not triggers:
            return _unprocessable("give the question the answer is for.", field="faq.q")
        record = product_full_json(item.product, item.weight)
        same = {t.casefold() for t in triggers}
        faq = [f for f in record["faq"]  # type: ignore[attr-defined]
               if {str(t).casefold() for t in f["q"]} != same]
        faq.append({"q": triggers, "a": body.a.strip()})
        record["faq"] = faq
        try:
            new = validate_product(record)
        except CatalogFieldError as exc:
            field = exc.field or ""
            return _unprocessable(str(exc), field=re.sub(r"^faq\.\d+\.", "faq.", field))
        saved, _ = save_product(daemon, store, new, True)
        if body.chat_id:
            take_off_queue(daemon, body.chat_id)
        return JSONResponse(product_full_json(saved.product), status_code=201)

    return router


def _trigger(daemon: Daemon, text: str) -> str:
    """A question as a FAQ trigger phrase, as the answer database compares them: folded
    (chat/text.py), without the catalog's product names (a question is matched with
    them taken out), closing punctuation dropped."""
    from livetwin.chat.text import fold

    phrase = _clean(text)
    answers = getattr(daemon.chat.pipeline, "answers", None) if daemon.chat else None
    if answers is None:
        return phrase
    return _clean(answers.without_names(fold(phrase))) or phrase


def _clean(text: str) -> str:
    closing = "?!.,;:\u2026\u3002\uff01\uff0c\uff1a\uff1b\uff1f "  # and CJK fullwidth ones
    return " ".join(text.split()).rstrip(closing).strip()[:200]


def _templates(daemon: Daemon, lang: str | None) -> Templates:
    """The script templates in `lang` (default: the show's language): the running
    director's when they match, else loaded from config `show.templates`."""
    from livetwin.show.templates import load_templates

    show_templates = daemon.show.director.templates if daemon.show is not None else None
    cfg = daemon.config
    lang = lang or (show_templates.lang if show_templates else cfg.show.lang if cfg else "en")
    if show_templates is not None and show_templates.lang == lang:
        return show_templates
    return load_templates(lang, cfg.show.templates if cfg is not None else None)


def save_product(daemon: Daemon, store: Store, item: CatalogItem, weighted: bool
                 ) -> tuple[CatalogItem, bool]:
    """Store one checked product (keeping the stored weight unless `weighted`) and hand
    the catalog to the running daemon; (what was stored, whether it is new)."""
    if not weighted:  # an edit from the page keeps the airtime weight
        stored = {i.product.id: i.weight for i in store.catalog()}
        item = CatalogItem(item.product, stored.get(item.product.id, item.weight))
    added = store.save_product(item)
    refresh(daemon)
    return item, added


def refresh(daemon: Daemon) -> None:
    """Hand the stored catalog to everything in the running daemon that reads it."""
    from livetwin.show.runner import show_items

    if daemon.store is None:
        return
    products = daemon.store.products()
    daemon.products = products
    daemon.live.products = list(products)
    set_products = getattr(daemon.chat.pipeline, "set_products", None) if daemon.chat else None
    if callable(set_products):
        set_products(products)
    elif daemon.chat is not None:
        log.info("the chat pipeline keeps the catalog it started with (no set_products)")
    if daemon.show is not None:
        daemon.show.reload(show_items(daemon.store, daemon.show.director.templates.lang))

