"""The `livetwin` commands of the show part (registered by cli.build_parser):

    livetwin products import CATALOG.yaml [--replace]   validate, then store in one go
    livetwin products list|export [FILE]
    livetwin scripts generate --product ID [--lang L]   a new draft version
    livetwin scripts list [--product ID] | show ID | approve ID | reject ID
    livetwin scripts edit ID --from LINES.yaml          a new draft from a person's lines

`--json` prints machine-readable output (ARCHITECTURE §7: `scripts list --json` is
`[{"id", "product_id", "version", "status"}]`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from livetwin.errors import InputError


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this part's sub-commands to the `livetwin` parser."""
    p = sub.add_parser("products", help="the product catalog: import, list, export")
    ps = p.add_subparsers(dest="products_command", metavar="ACTION", required=True,
                          parser_class=type(p))
    i = ps.add_parser("import", help="validate CATALOG.yaml and store its products")
    i.add_argument("catalog", type=Path, metavar="CATALOG.yaml")
    i.add_argument("--replace", action="store_true",
                   help="remove stored products that are not in the file")
    i.add_argument("--json", action="store_true", help="print JSON only")
    i.set_defaults(func=cmd_products_import)
    ls = ps.add_parser("list", help="the stored products")
    ls.add_argument("--json", action="store_true", help="print JSON only")
    ls.set_defaults(func=cmd_products_list)
    ex = ps.add_parser("export", help="the stored catalog as YAML (stdout or FILE)")
    ex.add_argument("out", type=Path, nargs="?", metavar="FILE")
    ex.set_defaults(func=cmd_products_export)

    s = sub.add_parser("scripts", help="sales scripts: generate, proofread, approve")
    ss = s.add_subparsers(dest="scripts_command", metavar="ACTION", required=True,
                          parser_class=type(s))
    g = ss.add_parser("generate", help="write a new draft script for a product")
    g.add_argument("--product", required=True, metavar="ID")
    g.add_argument("--lang", choices=["en", "zh", "de"], help="default: config show.lang")
    g.add_argument("--json", action="store_true", help="print JSON only")
    g.set_defaults(func=cmd_scripts_generate)
    sl = ss.add_parser("list", help="every script version and its status")
    sl.add_argument("--product", metavar="ID")
    sl.add_argument("--json", action="store_true", help="print JSON only")
    sl.set_defaults(func=cmd_scripts_list)
    for name, helptext in (("show", "one script version with its lines"),
                           ("approve", "approve a version: it goes on air"),
                           ("reject", "reject a version: it never goes on air")):
        c = ss.add_parser(name, help=helptext)
        c.add_argument("id", metavar="ID", help="script id (see `livetwin scripts list`)")
        c.add_argument("--json", action="store_true", help="print JSON only")
        c.set_defaults(func=cmd_scripts_show if name == "show" else cmd_scripts_decide,
                       decision={"approve": "approved", "reject": "rejected"}.get(name))
    e = ss.add_parser("edit", help="a new draft version from edited lines")
    e.add_argument("id", metavar="ID")
    e.add_argument("--from", dest="lines", type=Path, required=True, metavar="LINES.yaml",
                   help="YAML list of {text, kind} (`scripts show ID --json` gives the "
                   "current lines)")
    e.add_argument("--json", action="store_true", help="print JSON only")
    e.set_defaults(func=cmd_scripts_edit)


def _store(args: argparse.Namespace) -> Any:
    from livetwin.config import load_config
    from livetwin.store import open_store

    return open_store(load_config(args.config).store.url)


def _script_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"'{text}' is not a script id; ids are numbers (see `livetwin "
                         "scripts list`).") from None


def _print_json(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def cmd_products_import(args: argparse.Namespace) -> int:
    """Validate the whole file first; then store it in one transaction."""
    from livetwin.cli import out
    from livetwin.show.catalog import read_catalog

    items = read_catalog(args.catalog)
    store = _store(args)
    added, updated, removed = store.import_catalog(items, replace=args.replace)
    if args.json:
        _print_json({"products": len(items), "added": added, "updated": updated,
                     "removed": removed})
    else:
        out.print(f"{args.catalog}: {len(items)} product(s) stored ({added} new, {updated} "
                  f"changed, {removed} removed). Generate scripts with `livetwin scripts "
                  "generate --product ID`.", highlight=False)
    return 0


def cmd_products_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from livetwin.cli import out
    from livetwin.show.catalog import product_full_json

    catalog = _store(args).catalog()
    if args.json:
        _print_json([product_full_json(i.product, i.weight) for i in catalog])
        return 0
    table = Table(show_header=True)
    for col in ("id", "name", "price", "stock", "weight", "facts"):
        table.add_column(col)
    for i in catalog:
        p = i.product
        table.add_row(p.id, p.name, f"{p.price:g} {p.currency}",
                      "" if p.stock is None else str(p.stock), f"{i.weight:g}",
                      str(len(p.facts)))
    out.print(table)
    return 0


def cmd_products_export(args: argparse.Namespace) -> int:
    from livetwin.show.catalog import product_full_json

    records = []
    for i in _store(args).catalog():
        r = product_full_json(i.product, i.weight)
        records.append({k: v for k, v in r.items() if v not in (None, [])})
    text = yaml.safe_dump({"products": records}, allow_unicode=True, sort_keys=False)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


def cmd_scripts_generate(args: argparse.Namespace) -> int:
    from livetwin.cli import out
    from livetwin.config import load_config
    from livetwin.llm.registry import from_config
    from livetwin.show.scripts import generate_draft
    from livetwin.show.templates import load_templates

    cfg = load_config(args.config)
    from livetwin.store import open_store

    store = open_store(cfg.store.url)
    templates = load_templates(args.lang or cfg.show.lang, cfg.show.templates)
    record = generate_draft(store, args.product, templates, from_config(cfg.llm))
    if args.json:
        _print_json(record.to_json())
    else:
        out.print(f"script {record.id}: {record.product_id} version {record.version} "
                  f"({record.lang}, {len(record.lines)} lines from {record.origin}) is a "
                  f"draft; read it with `livetwin scripts show {record.id}` and approve it "
                  f"with `livetwin scripts approve {record.id}`.", highlight=False)
    return 0


def cmd_scripts_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from livetwin.cli import out

    records = _store(args).scripts(args.product)
    if args.json:
        _print_json([r.summary() for r in records])
        return 0
    table = Table(show_header=True)
    for col in ("id", "product", "version", "lang", "status", "origin", "lines"):
        table.add_column(col)
    for r in records:
        table.add_row(str(r.id), r.product_id, str(r.version), r.lang, r.status, r.origin,
                      str(len(r.lines)))
    out.print(table)
    return 0


def cmd_scripts_show(args: argparse.Namespace) -> int:
    from livetwin.cli import out

    record = _store(args).script(_script_id(args.id))
    if args.json:
        _print_json(record.to_json())
        return 0
    out.print(f"script {record.id}: {record.product_id} version {record.version} "
              f"({record.lang}, {record.status}, from {record.origin})", highlight=False)
    for n, ln in enumerate(record.lines, 1):
        out.print(f"{n:3d} [{ln.kind}] {ln.text}  ({', '.join(ln.intents)})",
                  highlight=False, markup=False)
    if record.note:
        out.print(f"note: {record.note}", highlight=False, markup=False)
    return 0


def cmd_scripts_decide(args: argparse.Namespace) -> int:
    from livetwin.cli import out

    record = _store(args).decide(_script_id(args.id), args.decision)
    if args.json:
        _print_json(record.summary())
    else:
        out.print(f"script {record.id} ({record.product_id} version {record.version}) is "
                  f"{record.status}.", highlight=False)
    return 0


def cmd_scripts_edit(args: argparse.Namespace) -> int:
    from livetwin.cli import out
    from livetwin.config import load_config
    from livetwin.show.scripts import edit
    from livetwin.show.templates import load_templates
    from livetwin.store.db import ScriptLine

    try:
        data = yaml.safe_load(args.lines.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read {args.lines}: {exc.strerror}.") from None
    except yaml.YAMLError:
        raise InputError(f"{args.lines}: not valid YAML; fix the syntax.") from None
    if isinstance(data, dict):
        data = data.get("lines")
    if not isinstance(data, list) or not all(
            isinstance(d, dict) and isinstance(d.get("text"), str)
            and isinstance(d.get("kind"), str) for d in data):
        raise InputError(f"{args.lines}: expected a list of {{text, kind}} entries (as in "
                         "`livetwin scripts show ID --json`).")
    lines = [ScriptLine(d["text"], d["kind"], tuple(d.get("intents") or ())) for d in data]
    store = _store(args)
    old = store.script(_script_id(args.id))
    cfg = load_config(args.config)
    record = edit(store, old.id, lines, load_templates(old.lang, cfg.show.templates))
    if args.json:
        _print_json(record.to_json())
    else:
        out.print(f"script {record.id}: {record.product_id} version {record.version} is a "
                  "new draft; approve it to put it on air.", highlight=False)
    return 0
