"""The CLI speaks to people: help, one-line errors, exit codes."""

from __future__ import annotations

import pytest

from livetwin.cli import main


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for cmd in ("clone", "doctor", "bench"):
        assert cmd in text


@pytest.mark.parametrize("argv", [["clone"], ["nonsense"], ["clone", "x.mp4"]])
def test_bad_arguments_exit_2_with_one_line(argv: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    errtext = capsys.readouterr().err.strip()
    assert errtext.startswith("error:") and "\n" not in errtext


def test_bad_name_is_refused(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["clone", "v.mp4", "--name", "../evil", "--out", str(tmp_path)]) == 2
    assert "--name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_missing_bench_video(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--json", "--video", "/nonexistent.mp4"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_doctor_environment(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "face mesh" in text and "codecs" in text and "FAIL" not in text
