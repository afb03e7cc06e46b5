"""The consent record of `livetwin clone` (livetwin.avatar.consent)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest

from livetwin.avatar.consent import EXAMPLE, REQUIRED, Consent, load_consent
from livetwin.errors import ConsentError, InputError
from tests import mediagen as mg

TODAY = dt.date(2026, 3, 1)


def _load(path: Path | None) -> Consent:
    return load_consent(path, today=TODAY)


def _refused(path: Path | None, *words: str) -> str:
    with pytest.raises(ConsentError) as info:
        _load(path)
    message = str(info.value)
    assert "\n" not in message, message
    scrubbed = _scrub(message)
    for w in words:
        assert w.lower() in scrubbed.lower(), f"{w!r} not in {message!r}"
    return scrubbed


def _scrub(message: str) -> str:
    """Drop the folders of paths (tmp folders are named after the test, so they would
    match any keyword), keeping file names."""
    return re.sub(r"(?:/[^/\s]+)+/", "", message)


def test_valid_record(tmp_path: Path) -> None:
    path = mg.write_consent(tmp_path / "consent.yaml")
    c = _load(path)
    assert c.subject == mg.CONSENT["subject"]
    assert c.statement == mg.CONSENT["statement"]
    assert c.date == "2025-01-15"
    assert c.contact == mg.CONSENT["contact"]
    assert c.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert c.raw == path.read_bytes()
    rec = c.record()
    assert set(REQUIRED) <= set(rec)
    assert rec["sha256"] == c.sha256


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "consent.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    c = load_consent(path, today=dt.date(2026, 11, 24))
    assert c.subject == "Jane Doe"


def test_consent_is_an_input_error() -> None:
    assert issubclass(ConsentError, InputError)
    assert ConsentError.exit_code == 2


def test_no_consent_option() -> None:
    _refused(None, "--consent", "livetwin clone --help")


def test_file_missing(tmp_path: Path) -> None:
    _refused(tmp_path / "nope.yaml", "nope.yaml", "does not exist")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    _refused(tmp_path, "cannot read")


@pytest.mark.parametrize("text", ["subject: [unclosed\n", "a: b: c\n", "key: {x\n"])
def test_not_yaml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "consent.yaml"
    path.write_text(text, encoding="utf-8")
    _refused(path, "not valid YAML")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "consent.yaml"
    path.write_bytes(b"subject: J\xe9r\xf4me\n")
    _refused(path, "consent")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a sentence\n", "42\n"])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "consent.yaml"
    path.write_text(text, encoding="utf-8")
    _refused(path, "mapping", *REQUIRED)


@pytest.mark.parametrize("field", REQUIRED)
def test_each_field_required(tmp_path: Path, field: str) -> None:
    path = mg.write_consent(tmp_path / "consent.yaml", **{field: None})
    message = _refused(path, "lacks", field)
    assert all(f not in message.split("lacks", 1)[1].split(";")[0]
               for f in REQUIRED if f != field)


@pytest.mark.parametrize("field", REQUIRED)
def test_blank_field_counts_as_missing(tmp_path: Path, field: str) -> None:
    path = mg.write_consent(tmp_path / "consent.yaml", **{field: "   "})
    _refused(path, "lacks", field)


def test_all_missing_fields_named_at_once(tmp_path: Path) -> None:
    path = tmp_path / "consent.yaml"
    path.write_text("subject: Jane Doe\nnote: hi\n", encoding="utf-8")
    _refused(path, "statement", "date", "contact")


@pytest.mark.parametrize("statement", ["I agree", "yes", "ok fine", "Yes I do"])
def test_statement_too_short(tmp_path: Path, statement: str) -> None:
    path = mg.write_consent(tmp_path / "consent.yaml", statement=statement)
    _refused(path, "statement", "too short")


@pytest.mark.parametrize("statement", ["Absolutely agreed", "Yes, agreed.", "I agree to it"])
def test_two_long_words_are_too_short(tmp_path: Path, statement: str) -> None:
    path = mg.write_consent(tmp_path / "consent.yaml", statement=statement)
    _refused(path, "statement", "too short")


def test_statement_without_spaces_cjk(tmp_path: Path) -> None:
    """Chinese and Japanese write without spaces: a full sentence is one 'word'."""
    statement = "我同意livetwin用我的脸和声音为我自己的直播店铺制作数字分身。"
    path = mg.write_consent(tmp_path / "consent.yaml", statement=statement)
    assert _load(path).statement == statement


@pytest.mark.parametrize("value", ["2026-03-02", "2030-01-01"])
def test_future_date(tmp_path: Path, value: str) -> None:
    path = mg.write_consent(tmp_path / "consent.yaml", date=value)
    _refused(path, "future", value)


def test_today_is_fine(tmp_path: Path) -> None:
    path = mg.write_consent(tmp_path / "consent.yaml", date=TODAY.isoformat())
    assert _load(path).date == TODAY.isoformat()


@pytest.mark.parametrize(("text", "expected"), [
    ("date: 2025-01-15\n", "2025-01-15"),  # a YAML date
    ("date: '2025-01-15'\n", "2025-01-15"),  # a string
    ("date: 2025-01-15 10:30:00\n", "2025-01-15"),  # a YAML timestamp
    ("date: 2025-01-15T10:30:00Z\n", "2025-01-15"),
])
def test_date_forms(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "consent.yaml"
    path.write_text("subject: Jane Doe\nstatement: I, Jane Doe, agree to be cloned for my "
                    "shop.\ncontact: jane@example.org\n" + text, encoding="utf-8")
    assert _load(path).date == expected


@pytest.mark.parametrize("value", ["next tuesday", "15/01/2025", "2025-13-01", "yesterday"])
def test_not_a_date(tmp_path: Path, value: str) -> None:
    path = mg.write_consent(tmp_path / "consent.yaml", date=value)
    _refused(path, "not a date", "2026-11-24")


def test_extra_fields_kept(tmp_path: Path) -> None:
    path = mg.write_consent(tmp_path / "consent.yaml", use="shop livestreams", witness="Bo")
    rec = _load(path).record()
    assert rec["use"] == "shop livestreams" and rec["witness"] == "Bo"


def test_extra_fields_cannot_replace_the_hash(tmp_path: Path) -> None:
    path = mg.write_consent(tmp_path / "consent.yaml", sha256="0" * 64)
    c = _load(path)
    assert c.record()["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_values_are_stripped(tmp_path: Path) -> None:
    path = mg.write_consent(tmp_path / "consent.yaml", subject="  Jane Doe  ",
                            contact=" jane@example.org ")
    c = _load(path)
    assert (c.subject, c.contact) == ("Jane Doe", "jane@example.org")


def test_hash_changes_with_content(tmp_path: Path) -> None:
    a = _load(mg.write_consent(tmp_path / "a.yaml"))
    b = _load(mg.write_consent(tmp_path / "b.yaml", contact="other@example.org"))
    assert a.sha256 != b.sha256
