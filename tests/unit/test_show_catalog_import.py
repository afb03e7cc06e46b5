"""`livetwin products import`: a good catalog is stored (and exported back); each bad
catalog is one clear line on stderr, exit 2, naming the file (and the product and field
where there is one), and leaves what was already stored exactly as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from livetwin.cli import main
from livetwin.store import open_store

GOOD = """\
products:
  - id: lip-tint
    name: Aurora Velvet Lip Tint
    price: 99
    list_price: 159
    currency: CNY
    stock: 500
    weight: 2
    facts: [six shades, from nude to berry]
    faq:
      - q: [how much, 多少钱]
        a: "It is {price} yuan."
  - id: steel-bottle
    name: Kelvin Steel Bottle
    price: 129
    currency: cny
    facts: [316 stainless steel]
"""


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LIVETWIN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def write(tmp_path: Path, text: str, name: str = "catalog.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def stored(home: Path) -> list[dict[str, object]]:
    store = open_store()  # LIVETWIN_HOME/livetwin.db
    assert store.engine.url.database == str(home / "livetwin.db")
    try:
        return [{"id": i.product.id, "price": i.product.price, "weight": i.weight,
                 "facts": i.product.facts} for i in store.catalog()]
    finally:
        store.close()


def test_good_catalog_is_stored_and_exported(tmp_path: Path, home: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["products", "import", str(write(tmp_path, GOOD))]) == 0
    assert stored(home) == [
        {"id": "lip-tint", "price": 99.0, "weight": 2.0,
         "facts": ("six shades", "from nude to berry")},
        {"id": "steel-bottle", "price": 129.0, "weight": 1.0, "facts": ("316 stainless steel",)}]
    capsys.readouterr()
    out = tmp_path / "export.yaml"
    assert main(["products", "export", str(out)]) == 0
    exported = yaml.safe_load(out.read_text(encoding="utf-8"))["products"]
    assert exported[1]["currency"] == "CNY"  # normalised on import
    # the export imports again without changes
    assert main(["products", "import", str(out), "--json"]) == 0
    assert '"updated": 0' in capsys.readouterr().out


BAD = [
    ("missing price", "products:\n  - {id: a, name: A, currency: EUR}\n",
     ["'products.0.price'", "Field required", "product 'a'"]),
    ("negative price", "products:\n  - {id: a, name: A, price: -5, currency: EUR}\n",
     ["'products.0.price'", "greater than or equal to 0", "product 'a'"]),
    ("duplicate ids", "products:\n  - {id: a, name: A, price: 1, currency: EUR}\n"
     "  - {id: a, name: B, price: 2, currency: EUR}\n", ["product id(s) a appear twice"]),
    ("unknown currency", "products:\n  - {id: a, name: A, price: 1, currency: RMB}\n",
     ["'products.0.currency'", "unknown currency 'RMB'", "ISO 4217", "product 'a'"]),
    ("broken YAML", "products:\n  - {id: a, name: A, price: 1\n", ["not valid YAML"]),
    ("not a catalog", "- just\n- a list\n", ["`products:` list"]),
]


@pytest.mark.parametrize("what,text,expect", BAD, ids=[b[0] for b in BAD])
def test_bad_catalog_is_one_line_and_changes_nothing(
        what: str, text: str, expect: list[str], tmp_path: Path, home: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["products", "import", str(write(tmp_path, GOOD, "good.yaml"))]) == 0
    before = stored(home)
    capsys.readouterr()
    bad = write(tmp_path, text)
    assert main(["products", "import", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    assert str(bad) in err, err
    for part in expect:
        assert part in err, err
    assert "Traceback" not in err
    assert stored(home) == before


def test_ten_megabyte_catalog_is_refused_unread(tmp_path: Path, home: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["products", "import", str(write(tmp_path, GOOD, "good.yaml"))]) == 0
    before = stored(home)
    big = tmp_path / "big.yaml"
    with big.open("w", encoding="utf-8") as f:
        f.write("products:\n")
        line = "  - {id: p%07d, name: Product, price: 1, currency: EUR}\n"
        n = 0
        while f.tell() <= 10 * 1024 * 1024:
            f.write(line % n)
            n += 1
    capsys.readouterr()
    assert main(["products", "import", str(big)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(big) in err and "10 MB limit" in err, err
    assert stored(home) == before


def test_bad_product_deep_in_a_file_stores_none_of_the_good_ones(
        tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = GOOD + "  - {id: c, name: C, price: 5, currency: XXX}\n"
    assert main(["products", "import", str(write(tmp_path, text))]) == 2
    assert "product 'c'" in capsys.readouterr().err
    assert stored(home) == []


def test_a_failing_write_rolls_the_whole_import_back(tmp_path: Path) -> None:
    """The import is one transaction: a failure half-way leaves nothing behind."""
    from livetwin.show.catalog import read_catalog
    from livetwin.store.models import ProductRow

    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    items = read_catalog(write(tmp_path, GOOD))
    original = ProductRow.__init__
    calls = 0

    def failing_init(self: ProductRow, **kw: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("disk full")
        original(self, **kw)

    ProductRow.__init__ = failing_init  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError):
            store.import_catalog(items)
    finally:
        ProductRow.__init__ = original  # type: ignore[method-assign]
    assert calls == 2 and store.catalog() == []
