"""The API token (env > config > generated file, mode 0600) and the catalog file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from livetwin.errors import ConfigError, InputError
from livetwin.server.auth import ENV, bearer, resolve_token
from livetwin.server.serve import stream_url
from livetwin.show.catalog import load_catalog

SHARED_CATALOG = Path(__file__).resolve().parents[2].parent / "shared/redteam/catalog.yaml"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LIVETWIN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(ENV, raising=False)
    return tmp_path / "home"


def test_token_is_generated_once_and_private(home: Path) -> None:
    first = resolve_token(None)
    assert first.source == "file" and first.path == home / "api_token"
    assert len(first.value) >= 32
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert resolve_token(None).value == first.value
    assert str(first.path) in first.describe() and first.value not in first.describe()


def test_a_readable_token_file_is_tightened(home: Path) -> None:
    tok = resolve_token(None)
    assert tok.path is not None
    tok.path.chmod(0o644)
    assert resolve_token(None).value == tok.value
    assert stat.S_IMODE(tok.path.stat().st_mode) == 0o600


def test_env_overrides_config_overrides_file(home: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    assert resolve_token("configured-token-123456").value == "configured-token-123456"
    monkeypatch.setenv(ENV, "from-the-environment-1234")
    tok = resolve_token("configured-token-123456")
    assert tok.value == "from-the-environment-1234" and tok.source == "env"
    assert not (home / "api_token").exists()
    monkeypatch.setenv(ENV, "short")
    with pytest.raises(ConfigError, match=ENV):
        resolve_token(None)


def test_token_matching() -> None:
    tok = resolve_token("configured-token-123456")
    assert tok.matches(bearer("Bearer configured-token-123456"))
    assert tok.matches(bearer("bearer  configured-token-123456"))
    assert not tok.matches(bearer("configured-token-123456"))
    assert not tok.matches(bearer("Bearer "))
    assert not tok.matches(None)


def test_stream_url_for_obs() -> None:
    assert stream_url("udp://127.0.0.1:9999?pkt_size=1316") == (
        "udp://127.0.0.1:9999?overrun_nonfatal=1&fifo_size=50000")
    assert stream_url("") == ""


def test_shared_catalog_loads() -> None:
    if not SHARED_CATALOG.is_file():
        pytest.skip("../shared is absent")
    products = load_catalog(SHARED_CATALOG)
    assert [p.id for p in products] == ["lip-tint", "steel-bottle"]
    tint = products[0]
    assert (tint.price, tint.list_price, tint.currency, tint.stock) == (99, 159, "CNY", 500)
    assert "vegan formula, no animal testing" in tint.facts
    assert tint.faq[0][0][:2] == ("how much", "price") and "{price}" in tint.faq[0][1]


@pytest.mark.parametrize("text,match", [
    ("products: [", "not valid YAML"),
    ("- a\n- b\n", "products"),
    ("products:\n  - id: a\n    name: A\n    currency: EUR\n", r":2: 'products.0.price'"),
    ("products:\n  - id: a\n    name: A\n    price: cheap\n    currency: EUR\n",
     r":4: 'products.0.price'"),
    ("products:\n  - {id: a, name: A, price: 1, currency: EUR, colour: red}\n",
     "unknown field 'products.0.colour'"),
    ("products:\n  - {id: a, name: A, price: 1, currency: EUR}\n"
     "  - {id: a, name: B, price: 2, currency: EUR}\n", "appear twice"),
    ("products:\n  - {id: a, name: A, price: 1, currency: EUR, faq: [{q: x, a: '{cost}'}]}\n",
     "unknown field"),
])
def test_bad_catalogs_are_one_clear_line(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=match) as exc:
        load_catalog(path)
    assert "\n" not in str(exc.value)


def test_missing_catalog(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read catalog"):
        load_catalog(tmp_path / "nope.yaml")
