"""The config model: defaults, and one clear error with file and line for mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from livetwin.config import Config, home_dir, load_config
from livetwin.errors import ConfigError


def test_no_file_gives_defaults() -> None:
    assert load_config(None) == Config()


def test_values_are_read(tmp_path: Path) -> None:
    f = tmp_path / "livetwin.yaml"
    f.write_text("clone:\n  atlas_size: 100\n  train_seconds: 3\n")
    cfg = load_config(f)
    assert cfg.clone.atlas_size == 100
    assert cfg.clone.train_seconds == 3.0


def test_unknown_key_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "livetwin.yaml"
    f.write_text("clone:\n  atlas_size: 100\n  atlas_sise: 3\n")
    with pytest.raises(ConfigError, match=r"livetwin.yaml:3: unknown setting 'clone.atlas_sise'"):
        load_config(f)


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    f = tmp_path / "livetwin.yaml"
    f.write_text("clone:\n  atlas_size: 1\n")
    with pytest.raises(ConfigError, match=r":2: 'clone.atlas_size'"):
        load_config(f)


def test_broken_yaml_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "livetwin.yaml"
    f.write_text("clone: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(f)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")


def test_livetwin_home_moves_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVETWIN_HOME", str(tmp_path / "lt"))
    assert home_dir() == tmp_path / "lt"
