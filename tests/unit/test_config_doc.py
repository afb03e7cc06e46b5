"""docs/config.md is generated from the config model (livetwin.config_doc): it must match
what the generator writes now, and it must name every key with its type, default and
description."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from livetwin.config import Config
from livetwin.config_doc import leaf_keys, main, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def test_docs_config_md_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/config.md is stale: run `.venv/bin/python -m livetwin.config_doc > docs/config.md`"
    )


def _field(dotted: str) -> tuple[str, object, str | None]:
    model: type[BaseModel] = Config
    *path, key = dotted.split(".")
    for part in path:
        model = model.model_fields[part].annotation  # type: ignore[assignment]
    field = model.model_fields[key]
    return key, field.default, field.description


def test_every_key_has_a_row_with_default_and_description() -> None:
    text = render()
    keys = list(leaf_keys())
    assert len(keys) > 60 and "server.port" in keys and "tts.piper.model" in keys
    for dotted in keys:
        section = dotted.rsplit(".", 1)[0]
        key, default, description = _field(dotted)
        block = text.split(f"`{section}`\n", 1)[1].split("\n#", 1)[0]
        row = next((r for r in block.splitlines() if r.startswith(f"| `{key}` |")), None)
        assert row is not None, f"{dotted} is missing from the reference"
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        shown = yaml.safe_load(cells[2].strip("`"))  # the default, read back as YAML
        assert shown == (str(default) if isinstance(default, Path) else default), row
        if description:
            assert " ".join(description.split())[:30].replace("|", "\\|") in row, dotted


def test_check_flags_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    current = tmp_path / "config.md"
    current.write_text(render(), encoding="utf-8")
    assert main(["--check", str(current)]) == 0
    current.write_text(render().replace("8765", "8766"), encoding="utf-8")
    assert main(["--check", str(current)]) == 1
    assert "stale" in capsys.readouterr().err
