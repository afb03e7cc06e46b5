"""Script generation and proofreading.

`generate` renders every template variant for a product (so the 24/7 loop has many
ways to say each segment) and, when an LLM is configured, asks it for more lines. The
prompt allows only the record's facts; every LLM line then passes the strict claims
checker or is dropped (with the reason kept in the draft's note). An LLM that fails,
hangs past its timeout or answers nonsense leaves a template-only draft: generation
never fails because of the LLM.

Everything generated is a draft. `edit` makes a new draft version from a person's
lines (checked for numbers, currencies and risky words). Only an approved version goes
on air (`Store.on_air`)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from livetwin.errors import BackendError, InputError
from livetwin.events import Product
from livetwin.llm.base import LLMBackend
from livetwin.show.claims import ClaimChecker
from livetwin.show.templates import SCRIPT_KINDS, Templates
from livetwin.store.db import ScriptLine, ScriptRecord, Store

log = logging.getLogger(__name__)
MAX_LLM_LINES = 40
MAX_LINE_CHARS = 300
KIND_INTENTS = {"opener": ("product",), "feature": ("product", "feature"),
                "price": ("price",), "urgency": ("urgency",), "follow": ("follow",),
                "cart": ("cart",), "qa_bridge": ("question",)}
# . ! ? end a sentence only before a space (not "3.5 grams"); the CJK forms (fullwidth
# ! and ? too) end one wherever they stand
_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。\uff01\uff1f])\s*")
LANG_NAMES = {"en": "English", "de": "German", "zh": "Simplified Chinese"}


@dataclass(frozen=True)
class Draft:
    """Generated lines, where they came from and what was dropped."""

    lines: tuple[ScriptLine, ...]
    origin: str  # template | llm+template
    note: str = ""


def sentences(text: str) -> list[str]:
    """`text` split after . ! ? (and their CJK forms)."""
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def system_prompt(lang: str) -> str:
    kinds = ", ".join(SCRIPT_KINDS)
    return (
        f"You write short spoken lines in {LANG_NAMES.get(lang, lang)} for an AI host of a "
        "livestream shop. Rules: state ONLY what the product record says: its name, price, "
        "list_price, stock and the items of `facts`. Do not invent any other claim, "
        "number, discount, percentage, deadline, award, material, guarantee or shipping "
        "promise. Say prices exactly as given, in the given currency. One or two short "
        "sentences per line. Answer with JSON only: "
        '{"lines": [{"kind": KIND, "text": TEXT}, ...]} where KIND is one of '
        f"{kinds}; write two to four lines per kind.")


def user_prompt(product: Product) -> str:
    record = {"name": product.name, "price": product.price, "currency": product.currency,
              "list_price": product.list_price, "stock": product.stock,
              "facts": list(product.facts)}
    return "Product record:\n" + json.dumps(record, ensure_ascii=False, indent=1)


def parse_reply(reply: str) -> list[tuple[str, str]]:
    """(kind, text) pairs of an LLM reply (JSON, possibly inside a ``` fence)."""
    start, end = reply.find("{"), reply.rfind("}")
    if start < 0 or end <= start:
        raise BackendError("the LLM reply holds no JSON object.")
    try:
        data = json.loads(reply[start:end + 1])
        items = data["lines"]
        pairs = [(str(i["kind"]).strip(), " ".join(str(i["text"]).split())) for i in items]
    except (ValueError, KeyError, TypeError):
        raise BackendError("the LLM reply is not the asked-for JSON.") from None
    return pairs[:MAX_LLM_LINES]


def generate(product: Product, templates: Templates, llm: LLMBackend | None = None) -> Draft:
    """A draft for `product` (module doc)."""
    checker = ClaimChecker(product, templates)
    lines: list[ScriptLine] = []
    notes: list[str] = []
    for r in templates.script_lines(product):
        verdict = checker.check(r.text)
        if verdict.ok:
            lines.append(ScriptLine(r.text, r.kind, r.intents))
        else:  # a template that says more than this product's record: leave it out
            notes.append(f"template line {r.text!r} left out: {verdict.reasons[0]}")
    if llm is None:
        return Draft(tuple(lines), "template", "; ".join(notes))
    try:
        pairs = parse_reply(llm.complete(system_prompt(templates.lang), user_prompt(product)))
    except BackendError as exc:
        log.warning("LLM failed for %s, templates only: %s", product.id, exc)
        notes.insert(0, f"LLM not used ({exc}); templates only")
        return Draft(tuple(lines), "template", "; ".join(notes))
    taken: list[ScriptLine] = []
    for kind, text in pairs:
        if kind not in KIND_INTENTS or not text or len(text) > MAX_LINE_CHARS:
            notes.append(f"LLM line {text[:60]!r} dropped: kind '{kind}' or length")
            continue
        verdict = checker.check(text, strict=True)
        if not verdict.ok:
            notes.append(f"LLM line {text!r} rejected: {'; '.join(verdict.reasons)}")
            continue
        if text not in {ln.text for ln in (*lines, *taken)}:
            taken.append(ScriptLine(text, kind, KIND_INTENTS[kind]))
    origin = "llm+template" if taken else "template"
    if not taken:
        notes.insert(0, "no LLM line passed the claims check; templates only")
    return Draft((*taken, *lines), origin, "; ".join(notes))


def generate_draft(store: Store, product_id: str, templates: Templates,
                   llm: LLMBackend | None = None) -> ScriptRecord:
    """Generate and store a new draft version for stored product `product_id`."""
    product = store.product(product_id)
    draft = generate(product, templates, llm)
    if not draft.lines:
        raise InputError(f"no script line could be made for '{product_id}'; check its "
                         "name, price and facts.")
    return store.add_script(product_id, templates.lang, draft.lines, origin=draft.origin,
                            note=draft.note)


def edit(store: Store, script_id: int, lines: Sequence[ScriptLine],
         templates: Templates | None = None) -> ScriptRecord:
    """A new draft version of script `script_id` with `lines` (a person's edit); each
    line is checked for numbers, currencies and claims the record does not make."""
    old = store.script(script_id)
    product = store.product(old.product_id)
    checker = ClaimChecker(product, templates)
    for i, ln in enumerate(lines, 1):
        if ln.kind not in KIND_INTENTS:
            raise InputError(f"line {i}: kind '{ln.kind}' is unknown; use "
                             f"{', '.join(KIND_INTENTS)}.")
        if not ln.text.strip():
            raise InputError(f"line {i} is empty; write the line or remove it.")
        verdict = checker.check(ln.text)
        if not verdict.ok:
            raise InputError(f"line {i} ({ln.text[:60]!r}): {verdict.reasons[0]}; say only "
                             "what the catalog says, or change the catalog first.")
    if not lines:
        raise InputError("the edited script has no lines.")
    fixed = [ScriptLine(ln.text.strip(), ln.kind, ln.intents or KIND_INTENTS[ln.kind])
             for ln in lines]
    return store.add_script(old.product_id, old.lang, fixed, origin="edit",
                            note=f"edited from version {old.version}", parent_id=old.id)
