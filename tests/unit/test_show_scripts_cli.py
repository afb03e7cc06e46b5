"""`livetwin scripts generate|list|show|approve|reject|edit` on a real SQLite file:
drafts with versions, the §7 JSON, approval deciding what goes on air, and edits that
make a new draft (and refuse claims the catalog does not make)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from livetwin.cli import main
from livetwin.store import open_store

CATALOG = """\
products:
  - id: lip-tint
    name: Aurora Velvet Lip Tint
    price: 99
    list_price: 159
    currency: CNY
    stock: 500
    facts: [six shades, from nude to berry, vegan formula]
"""


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.setenv("LIVETWIN_HOME", str(tmp_path / "home"))
    cat = tmp_path / "catalog.yaml"
    cat.write_text(CATALOG, encoding="utf-8")
    assert main(["products", "import", str(cat)]) == 0
    capsys.readouterr()
    return tmp_path / "home"


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_generate_list_approve_reject(capsys: pytest.CaptureFixture[str]) -> None:
    first = run_json(capsys, "scripts", "generate", "--product", "lip-tint")
    second = run_json(capsys, "scripts", "generate", "--product", "lip-tint", "--lang", "zh")
    third = run_json(capsys, "scripts", "generate", "--product", "lip-tint")
    assert isinstance(first, dict) and isinstance(second, dict) and isinstance(third, dict)
    assert (first["version"], second["version"], third["version"]) == (1, 1, 2)
    kinds = {ln["kind"] for ln in first["lines"]}
    assert kinds == {"opener", "feature", "price", "urgency", "follow", "cart", "qa_bridge"}
    price_lines = [ln for ln in first["lines"] if ln["kind"] == "price"]
    assert price_lines and all(ln["intents"] == ["price"] for ln in price_lines)
    assert any("99 yuan" in ln["text"] for ln in price_lines)

    listed = run_json(capsys, "scripts", "list")
    assert listed == [{"id": first["id"], "product_id": "lip-tint", "version": 1,
                       "status": "draft"},
                      {"id": second["id"], "product_id": "lip-tint", "version": 1,
                       "status": "draft"},
                      {"id": third["id"], "product_id": "lip-tint", "version": 2,
                       "status": "draft"}]
    store = open_store()
    assert store.on_air("en") == {}  # drafts never go on air

    approved = run_json(capsys, "scripts", "approve", str(first["id"]))
    assert approved == {"id": first["id"], "product_id": "lip-tint", "version": 1,
                        "status": "approved"}
    assert store.on_air("en")["lip-tint"].id == first["id"]
    run_json(capsys, "scripts", "approve", str(third["id"]))
    assert store.on_air("en")["lip-tint"].id == third["id"]  # the newest approved version
    rejected = run_json(capsys, "scripts", "reject", str(third["id"]))
    assert isinstance(rejected, dict) and rejected["status"] == "rejected"
    assert store.on_air("en")["lip-tint"].id == first["id"]
    shown = run_json(capsys, "scripts", "show", str(third["id"]))
    assert isinstance(shown, dict) and shown["status"] == "rejected"
    assert shown["lines"] == third["lines"]


@pytest.mark.parametrize("argv,match", [
    (["scripts", "show", "99"], "no script 99"),
    (["scripts", "approve", "abc"], "'abc' is not a script id"),
    (["scripts", "generate", "--product", "nope"], "no product 'nope'"),
])
def test_mistakes_are_one_line(argv: list[str], match: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err, err


def test_edit_makes_a_new_draft_and_refuses_invented_claims(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    draft = run_json(capsys, "scripts", "generate", "--product", "lip-tint")
    assert isinstance(draft, dict)
    run_json(capsys, "scripts", "approve", str(draft["id"]))
    lines = tmp_path / "lines.yaml"
    lines.write_text('- {kind: opener, text: "Meet the Aurora Velvet Lip Tint."}\n'
                     '- {kind: price, text: "It is 99 yuan instead of 159."}\n',
                     encoding="utf-8")
    edited = run_json(capsys, "scripts", "edit", str(draft["id"]), "--from", str(lines))
    assert isinstance(edited, dict)
    assert (edited["version"], edited["status"], edited["parent_id"]) == (2, "draft",
                                                                         draft["id"])
    assert [ln["intents"] for ln in edited["lines"]] == [["product"], ["price"]]
    # the approved version stays on air until the edit is approved
    assert open_store().on_air("en")["lip-tint"].id == draft["id"]

    for text, why in (("Only 79 yuan today!", "79"), ("It costs 99 dollars.", "dollars"),
                      ("Shipping is free.", "free")):
        lines.write_text(f'- {{kind: price, text: "{text}"}}\n', encoding="utf-8")
        assert main(["scripts", "edit", str(draft["id"]), "--from", str(lines)]) == 2
        err = capsys.readouterr().err
        assert why in err and "line 1" in err, err
    assert len(open_store().scripts()) == 2  # the refused edits stored nothing
