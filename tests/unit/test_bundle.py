"""Bundle writing is atomic and verification catches tampering."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from livetwin.avatar import bundle
from livetwin.errors import BundleError, InputError


def _fake_bundle(out: Path, name: str = "t") -> Path:
    with bundle.staging(out, name) as tmp:
        for comp in bundle.REQUIRED:
            target = tmp / (comp if "." in comp else comp + ".mp4")
            target.write_bytes(comp.encode() * 10)
        consent_sha = bundle.sha256_file(tmp / "consent.yaml")
        bundle.write_manifest(tmp, name, {"consent": {"sha256": consent_sha}})
    return out / f"{name}.twin"


def test_staging_renames_into_place(tmp_path: Path) -> None:
    path = _fake_bundle(tmp_path)
    assert path.is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["t.twin"]
    assert bundle.verify(path).ok


def test_failure_inside_staging_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), bundle.staging(tmp_path, "x") as tmp:
        (tmp / "half.bin").write_bytes(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_interrupt_inside_staging_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), bundle.staging(tmp_path, "x") as tmp:
        (tmp / "half.bin").write_bytes(b"half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_existing_bundle_is_kept_without_force(tmp_path: Path) -> None:
    path = _fake_bundle(tmp_path)
    before = (path / "manifest.yaml").read_bytes()
    with pytest.raises(InputError, match="already exists"), bundle.staging(tmp_path, "t"):
        pass
    assert (path / "manifest.yaml").read_bytes() == before


def test_force_replaces_in_one_step(tmp_path: Path) -> None:
    path = _fake_bundle(tmp_path)
    with bundle.staging(tmp_path, "t", force=True) as tmp:
        (tmp / "new.bin").write_bytes(b"new")
    assert [p.name for p in path.iterdir()] == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.twin"]


def test_verify_detects_changed_missing_and_extra_files(tmp_path: Path) -> None:
    path = _fake_bundle(tmp_path)
    data = bytearray((path / "atlas.npz").read_bytes())
    data[3] ^= 0xFF
    (path / "atlas.npz").write_bytes(bytes(data))
    (path / "track.npz").unlink()
    (path / "stray.txt").write_text("x")
    problems = bundle.verify(path).problems
    assert any("atlas.npz was modified" in p for p in problems)
    assert any("track.npz is missing" in p for p in problems)
    assert any("stray.txt is not part of the bundle" in p for p in problems)
    with pytest.raises(BundleError, match="failed verification"):
        bundle.load(path)


def test_consent_record_must_match(tmp_path: Path) -> None:
    path = _fake_bundle(tmp_path)
    m = yaml.safe_load((path / "manifest.yaml").read_text())
    m["consent"]["sha256"] = "0" * 64
    (path / "manifest.yaml").write_text(yaml.safe_dump(m))
    assert any("consent" in p for p in bundle.verify(path).problems)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not an avatar bundle"):
        bundle.read_manifest(tmp_path / "nothing")
    (tmp_path / "empty.twin").mkdir()
    with pytest.raises(BundleError, match="incomplete"):
        bundle.read_manifest(tmp_path / "empty.twin")


def test_resolve_finds_bundles_by_name(tmp_path: Path) -> None:
    path = _fake_bundle(tmp_path / "avatars", "anna")
    assert bundle.resolve("anna", (tmp_path / "avatars",)) == path
    assert bundle.resolve(str(path)) == path
    with pytest.raises(BundleError, match="no avatar bundle 'bob'"):
        bundle.resolve("bob", (tmp_path / "avatars",))
