"""`livetwin clone` on bad input, on real media: every refusal is ONE `error:` line on
stderr, exit code 2, no traceback, and nothing left in --out (no NAME.twin, no hidden
`.NAME.*.partial`); warnings are `warning:` lines and the clone still succeeds.

Test clips are cut from ../shared/media/tedlieu_60s_edtalk_pose_source2.mp4 (60 s, 256x256,
25 fps, AAC) and re-encoded into pytest's tmp folders by tests/mediagen.py; each is made
once per module, when a test first asks for it.

Face checks run twice in `livetwin clone`: on keyframes before any heavy work ("early", needs
at least 4 keyframes) and on the samples of the tracking pass ("late", after the staging
folder exists). Clips with a keyframe every 12 frames take the early path, clips with a
single keyframe the late one; the face cases run both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from livetwin.cli import main
from tests import mediagen as mg

REPO = Path(__file__).resolve().parents[2]
SOURCE = "tedlieu_60s_edtalk_pose_source2.mp4"
NAME = "ted"
EARLY, LATE = 12, 100_000  # keyframe interval: early face verdict / tracking pass only

# stderr lines that are not messages: rich progress bars, and the C++ logging of mediapipe
# (TFLite / absl) that goes straight to file descriptor 2 (see test_no_native_log_noise).
PROGRESS = re.compile(r"━|\d+%\s+\d+:\d\d:\d\d\s*$")
NATIVE_LOG = re.compile(r"^(INFO: Created TensorFlow|WARNING: All log messages before absl|"
                        r"[IWEF]\d{4} \d\d:\d\d:\d\d)")
# How CLI messages start; a stderr line starting otherwise continues the message above.
PREFIXES = ("error:", "warning:", "problem:", "internal error:")


# --- running the CLI ------------------------------------------------------------------------


@dataclass
class Run:
    """One CLI run: exit code and captured output."""

    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        """Non-empty stderr lines that are neither progress bars nor native log noise."""
        return [ln for ln in _strip_ansi(self.err).splitlines()
                if ln.strip() and not PROGRESS.search(ln) and not NATIVE_LOG.match(ln)]

    def messages(self, prefix: str) -> list[str]:
        """Messages starting with `prefix` ("warning:"), wrapped continuation lines joined
        back on (so content checks do not depend on the console width)."""
        found: list[str] = []
        current: list[str] | None = None
        for ln in self.lines:
            if ln.startswith(PREFIXES):
                current = [ln.strip()] if ln.startswith(prefix) else None
                if current is not None:
                    found.append("")
            elif current is not None:
                current.append(ln.strip())
            if current is not None:
                found[-1] = " ".join(current)
        return found


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def cli(capfd: pytest.CaptureFixture[str], *args: str | Path) -> Run:
    """Run `livetwin ARGS` in this process (exit code from main or SystemExit)."""
    capfd.readouterr()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        signal.signal(signal.SIGTERM, previous)  # main() installs its own handler
    cap = capfd.readouterr()
    return Run(code, cap.out, cap.err)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "daemon"), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def cli_subprocess(*args: str | Path, timeout: float = 120) -> Run:
    """Run `python -m livetwin.cli ARGS` as a child process (real exit code and stderr)."""
    proc = subprocess.run([sys.executable, "-m", "livetwin.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=_env(),
                          cwd=REPO, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def clone_args(video: Path, consent: Path | None, out: Path, *extra: str | Path,
               name: str = NAME) -> list[str | Path]:
    args: list[str | Path] = ["clone", video, "--name", name, "--out", out]
    if consent is not None:
        args += ["--consent", consent]
    return [*args, *extra]


# --- assertions -----------------------------------------------------------------------------


def scrub(text: str) -> str:
    """Drop the folders of paths, keeping file names: tmp folders are named after the test
    (".../test_consent_refused_future_0/..."), so they would match any keyword."""
    return re.sub(r"(?:/[^/\s]+)+/", "", text)


def leftovers(out: Path) -> list[str]:
    """Everything in the out folder (hidden entries included)."""
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def assert_refused(run: Run, out: Path, *words: str) -> str:
    """Exit 2, no traceback, exactly one complete `error:` line containing `words`, no
    other text on stderr, and nothing left in `out`. Returns the error line."""
    everything = run.out + run.err
    assert "Traceback" not in everything, everything
    assert run.code == 2, f"exit code {run.code}, stderr:\n{run.err}"
    errors = [ln for ln in run.lines if ln.startswith("error:")]
    assert len(errors) == 1, f"expected one error line, got:\n{run.err}"
    line = errors[0].strip()
    assert run.lines == [errors[0]], f"stderr has more than the error line:\n{run.lines}"
    assert line.endswith("."), f"error line is cut (wrapped?): {line!r}"
    scrubbed = scrub(line)
    for w in words:
        assert w.lower() in scrubbed.lower(), f"{w!r} not in {line!r}"
    assert leftovers(out) == [], f"left behind in {out}: {leftovers(out)}"
    return line


def assert_cloned(run: Run, out: Path, name: str = NAME) -> dict:  # type: ignore[type-arg]
    """Exit 0, no traceback, no error line, the bundle alone in `out`, and `livetwin doctor`
    accepts it. Returns the manifest."""
    assert "Traceback" not in run.out + run.err, run.out + run.err
    assert run.code == 0, f"exit code {run.code}, stderr:\n{run.err}"
    assert run.messages("error:") == [], run.err
    assert leftovers(out) == [f"{name}.twin"], leftovers(out)
    bundle = out / f"{name}.twin"
    check = cli_subprocess("doctor", bundle)
    assert check.code == 0, check.err
    assert "ok" in check.out
    return yaml.safe_load((bundle / "manifest.yaml").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def warnings_text(run: Run) -> str:
    return "\n".join(run.messages("warning:")).lower()


# --- media ----------------------------------------------------------------------------------

Recipe = Callable[[Path, Path], Path]


RECIPES: dict[str, Recipe] = {
    "five_s": lambda s, o: mg.make_clip(s, o, duration=5.0),
    "twenty_s_speech": lambda s, o: mg.make_clip(s, o, duration=20.0, audio="keep"),
    "fifteen_s_mute": lambda s, o: mg.make_clip(s, o, start=20.0, duration=15.0, audio="none"),
    "fifteen_s_silent": lambda s, o: mg.make_clip(s, o, duration=15.0, audio="silent"),
    "fifteen_s_tone": lambda s, o: mg.make_clip(s, o, duration=15.0, audio="tone"),
    "twelve_s_mute": lambda s, o: mg.make_clip(s, o, start=40.0, duration=12.0, audio="none",
                                               gop=EARLY),
    "still.png": lambda s, o: mg.make_still(s, o),
    "audio_only.mp4": lambda s, o: mg.make_audio_only(o, src=s),
    "random.mp4": lambda s, o: mg.make_random_bytes(o),
    "truncated.mp4": lambda s, o: mg.truncate_copy(s, o, fraction=0.3),
    "truncated_faststart.mp4": lambda s, o: mg.truncate_copy(
        mg.make_clip(s, o.with_name("faststart_40s.mp4"), duration=40.0, audio="none",
                     faststart=True), o, fraction=0.3),
    # The face leaves the picture for 4.5 of 15 s (30 %), or for 10.5 of 15 s (70 %).
    "face_out_30": lambda s, o: mg.make_clip(
        s, o, duration=15.0, audio="none", transform=mg.shift_out_during([(5.0, 9.5)])),
    "face_out_70": lambda s, o: mg.make_clip(
        s, o, duration=15.0, audio="none", transform=mg.shift_out_during([(2.0, 12.5)])),
}
# The face cases, each as an early (many keyframes) and a late (one keyframe) clip.
FACE_CASES: dict[str, tuple[Callable[..., Path], tuple[str, ...]]] = {
    "no_face": (lambda s, o, g: mg.make_noise_video(o, duration=12.0, gop=g), ("no face",)),
    "two_faces": (lambda s, o, g: mg.make_clip(s, o, duration=12.0, audio="none", gop=g,
                                               transform=mg.side_by_side),
                  ("more than one face",)),
    "small_face": (lambda s, o, g: mg.make_clip(s, o, duration=12.0, audio="none", gop=g,
                                                transform=mg.on_canvas(48, (640, 640))),
                   ("too small",)),
    "dark": (lambda s, o, g: mg.make_clip(s, o, duration=12.0, audio="none", gop=g,
                                          transform=mg.scale_brightness(0.08)),
             ("too dark",)),
    # sigma 6 px on the 256 px frame: a face ~150 px wide is a featureless smear.
    "blurry": (lambda s, o, g: mg.make_clip(s, o, duration=12.0, audio="none", gop=g,
                                            transform=mg.gaussian_blur(6.0)),
               ("blurry",)),
}
for _case, (_make, _words) in FACE_CASES.items():
    for _path, _gop in (("early", EARLY), ("late", LATE)):
        RECIPES[f"{_case}_{_path}"] = (
            lambda s, o, make=_make, gop=_gop: make(s, o, gop))
for _rot in (90, 180, 270):
    # Portrait 256x384 as displayed; stored turned, with a display-rotation flag.
    RECIPES[f"rotated_{_rot}"] = (
        lambda s, o, rot=_rot: mg.make_clip(s, o, duration=12.0, audio="none", rotation=rot,
                                            transform=mg.pad_to(256, 384)))


@pytest.fixture(scope="module")
def source(media: Callable[[str], Path]) -> Path:
    return media(SOURCE)


@pytest.fixture(scope="module")
def clip(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """clip(name) -> the test clip made by RECIPES[name], made once per module."""
    folder = tmp_path_factory.mktemp("clips")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            out = folder / (name if "." in name else f"{name}.mp4")
            made[name] = RECIPES[name](source, out)
        return made[name]

    return get


@pytest.fixture(scope="module")
def consent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mg.write_consent(tmp_path_factory.mktemp("consent") / "consent.yaml")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The --out folder; it does not exist before the clone."""
    return tmp_path / "avatars"


@dataclass
class BaseClone:
    run: Run
    bundle: Path
    manifest: dict  # type: ignore[type-arg]


@pytest.fixture(scope="module")
def base_clone(clip: Callable[[str], Path], consent: Path,
               tmp_path_factory: pytest.TempPathFactory) -> BaseClone:
    """One successful clone, as a child process: 15 s without audio, with a gesture."""
    folder = tmp_path_factory.mktemp("base")
    gestures = mg.write_gestures(folder / "gestures.yaml", {"wave": {"start": 2, "end": 3.5}})
    out = folder / "avatars"
    run = cli_subprocess(*clone_args(clip("fifteen_s_mute"), consent, out,
                                     "--gestures", gestures))
    assert run.code == 0, run.err
    bundle = out / f"{NAME}.twin"
    return BaseClone(run, bundle, yaml.safe_load((bundle / "manifest.yaml").read_text()))


@pytest.fixture
def bundle_copy(base_clone: BaseClone, tmp_path: Path) -> Path:
    """A private copy of the base bundle, to tamper with."""
    dst = tmp_path / "copy" / f"{NAME}.twin"
    shutil.copytree(base_clone.bundle, dst)
    return dst


# --- the video file -------------------------------------------------------------------------


def test_video_does_not_exist(capfd: pytest.CaptureFixture[str], consent: Path, out: Path,
                              tmp_path: Path) -> None:
    run = cli(capfd, *clone_args(tmp_path / "nowhere.mp4", consent, out))
    assert_refused(run, out, "nowhere.mp4", "no such file")


def test_video_does_not_exist_subprocess(consent: Path, out: Path, tmp_path: Path) -> None:
    """The real exit code and the raw stderr of a child process."""
    run = cli_subprocess(*clone_args(tmp_path / "nowhere.mp4", consent, out))
    assert_refused(run, out, "no such file")


def test_video_is_a_folder(capfd: pytest.CaptureFixture[str], consent: Path, out: Path,
                           tmp_path: Path) -> None:
    folder = tmp_path / "clips.mp4"
    folder.mkdir()
    run = cli(capfd, *clone_args(folder, consent, out))
    assert_refused(run, out, "is a folder")


@pytest.mark.media
def test_random_bytes(capfd: pytest.CaptureFixture[str], clip: Callable[[str], Path],
                      consent: Path, out: Path) -> None:
    run = cli(capfd, *clone_args(clip("random.mp4"), consent, out))
    assert_refused(run, out, "cannot read")


def test_empty_file(capfd: pytest.CaptureFixture[str], consent: Path, out: Path,
                    tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    run = cli(capfd, *clone_args(empty, consent, out))
    assert_refused(run, out, "cannot read")


@pytest.mark.media
def test_truncated_mp4(capfd: pytest.CaptureFixture[str], clip: Callable[[str], Path],
                       consent: Path, out: Path) -> None:
    """The real clip cut to 30 % of its bytes: its index (moov) is at the end, so lost."""
    run = cli(capfd, *clone_args(clip("truncated.mp4"), consent, out))
    assert_refused(run, out, "cannot read")


@pytest.mark.media
def test_truncated_faststart_mp4(capfd: pytest.CaptureFixture[str],
                                 clip: Callable[[str], Path], consent: Path, out: Path) -> None:
    """A 40 s fast-start MP4 (index first, as streaming exports write it) cut to 30 % of
    its bytes opens, claims 40 s, and decodes about 11 s: it must be refused as damaged."""
    run = cli(capfd, *clone_args(clip("truncated_faststart.mp4"), consent, out))
    line = assert_refused(run, out)
    assert re.search(r"damaged|cut short|incomplete", scrub(line)), line


@pytest.mark.media
def test_audio_only(capfd: pytest.CaptureFixture[str], clip: Callable[[str], Path],
                    consent: Path, out: Path) -> None:
    run = cli(capfd, *clone_args(clip("audio_only.mp4"), consent, out))
    assert_refused(run, out, "no video stream")


@pytest.mark.media
def test_still_image_makes_a_photo_avatar(capfd: pytest.CaptureFixture[str],
                                          clip: Callable[[str], Path], consent: Path,
                                          out: Path) -> None:
    """A portrait image is not refused: it becomes a photo avatar (kind: photo)."""
    import yaml

    run = cli(capfd, *clone_args(clip("still.png"), consent, out))
    assert run.code == 0, run.err
    bundles = [p for p in out.iterdir() if p.name.endswith(".twin")]
    assert len(bundles) == 1
    manifest = yaml.safe_load((bundles[0] / "manifest.yaml").read_text())
    assert manifest["kind"] == "photo"


@pytest.mark.media
def test_still_image_named_mp4(capfd: pytest.CaptureFixture[str], clip: Callable[[str], Path],
                               consent: Path, out: Path, tmp_path: Path) -> None:
    fake = tmp_path / "photo.mp4"
    shutil.copyfile(clip("still.png"), fake)
    run = cli(capfd, *clone_args(fake, consent, out))
    assert_refused(run, out, "still image")


@pytest.mark.media
def test_too_short(capfd: pytest.CaptureFixture[str], clip: Callable[[str], Path],
                   consent: Path, out: Path) -> None:
    run = cli(capfd, *clone_args(clip("five_s"), consent, out))
    assert_refused(run, out, "5.0 s long", "at least 10 s")


# --- the face -------------------------------------------------------------------------------


def _face_case(case: str, path: str) -> object:
    return pytest.param(case, path, id=f"{case}-{path}")


@pytest.mark.media
@pytest.mark.parametrize(("case", "path"), [_face_case(c, p) for c in FACE_CASES
                                            for p in ("early", "late")])
def test_face_refused(capfd: pytest.CaptureFixture[str], clip: Callable[[str], Path],
                      consent: Path, out: Path, case: str, path: str) -> None:
    video = clip(f"{case}_{path}")
    run = cli(capfd, *clone_args(video, consent, out))
    assert_refused(run, out, *FACE_CASES[case][1])
    # The early verdict comes before --out is created; the late one after the staging
    # folder existed (and was removed).
    assert out.exists() == (path == "late")


@pytest.mark.media
def test_face_out_of_picture_most_of_the_time(capfd: pytest.CaptureFixture[str],
                                              clip: Callable[[str], Path], consent: Path,
                                              out: Path) -> None:
    run = cli(capfd, *clone_args(clip("face_out_70"), consent, out))
    assert_refused(run, out, "face")
    assert re.search(r"no face|tracked in only", scrub(run.lines[0])), run.lines[0]


# --- consent --------------------------------------------------------------------------------


@pytest.mark.media
def test_consent_option_missing(capfd: pytest.CaptureFixture[str], source: Path,
                                out: Path) -> None:
    run = cli(capfd, *clone_args(source, None, out))
    assert_refused(run, out, "--consent")


@pytest.mark.media
@pytest.mark.parametrize(("content", "words"), [
    (None, ("does not exist",)),
    ("subject: [unclosed\nstatement: {\n", ("not valid yaml",)),
    ("- just\n- a list\n", ("must be a mapping",)),
    ({"statement": None, "contact": None}, ("lacks", "statement", "contact")),
    ({"date": (dt.date.today() + dt.timedelta(days=30)).isoformat()}, ("future",)),
    ({"date": "next tuesday"}, ("not a date",)),
    ({"statement": "I agree"}, ("statement", "too short")),
], ids=["file-missing", "not-yaml", "not-mapping", "fields-missing", "future-date",
        "bad-date", "two-words"])
def test_consent_refused(capfd: pytest.CaptureFixture[str], source: Path, out: Path,
                         tmp_path: Path, content: object, words: tuple[str, ...]) -> None:
    path = tmp_path / "consent.yaml"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif isinstance(content, dict):
        mg.write_consent(path, **content)
    run = cli(capfd, *clone_args(source, path, out))
    assert_refused(run, out, "consent", *words)


# --- gesture sidecar ------------------------------------------------------------------------


@pytest.mark.media
@pytest.mark.parametrize(("spans", "words"), [
    (None, ("does not exist",)),
    ({"Wave Hand": {"start": 1, "end": 2}}, ("'wave hand'", "not a valid gesture id")),
    ({"wave": {"start": 12, "end": 10}}, ("'wave'",)),
    ({"wave": {"start": 58, "end": 62}}, ("'wave'", "outside the video")),
], ids=["file-missing", "bad-id", "end-before-start", "outside-video"])
def test_gestures_refused(capfd: pytest.CaptureFixture[str], source: Path, consent: Path,
                          out: Path, tmp_path: Path, spans: dict | None,  # type: ignore[type-arg]
                          words: tuple[str, ...]) -> None:
    path = tmp_path / "gestures.yaml"
    if spans is not None:
        mg.write_gestures(path, spans)
    run = cli(capfd, *clone_args(source, consent, out, "--gestures", path))
    assert_refused(run, out, "gestures", *words)


@pytest.mark.media
def test_gestures_not_yaml_is_one_line(capfd: pytest.CaptureFixture[str], source: Path,
                                       consent: Path, out: Path, tmp_path: Path) -> None:
    path = tmp_path / "gestures.yaml"
    path.write_text("gestures: [wave\n", encoding="utf-8")
    run = cli(capfd, *clone_args(source, consent, out, "--gestures", path))
    assert_refused(run, out, "gestures", "yaml")


# --- arguments and the out folder -----------------------------------------------------------


@pytest.mark.media
def test_bad_name(capfd: pytest.CaptureFixture[str], source: Path, consent: Path,
                  out: Path) -> None:
    run = cli(capfd, *clone_args(source, consent, out, name="../ted"))
    assert_refused(run, out, "--name")


@pytest.mark.media
def test_missing_name(capfd: pytest.CaptureFixture[str], source: Path, out: Path) -> None:
    run = cli(capfd, "clone", source, "--out", out)
    assert_refused(run, out, "--name")


@pytest.mark.media
def test_out_is_a_file(capfd: pytest.CaptureFixture[str], clip: Callable[[str], Path],
                       consent: Path, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "avatars"
    not_a_folder.write_text("I am a file", encoding="utf-8")
    run = cli(capfd, *clone_args(clip("twelve_s_mute"), consent, not_a_folder))
    assert "Traceback" not in run.out + run.err
    assert run.code == 2, run.err
    (line,) = [ln for ln in run.lines if ln.startswith("error:")]
    assert "cannot write" in line
    assert not_a_folder.read_text(encoding="utf-8") == "I am a file"


@pytest.mark.media
def test_existing_bundle_without_force(capfd: pytest.CaptureFixture[str],
                                       clip: Callable[[str], Path], consent: Path,
                                       base_clone: BaseClone, out: Path) -> None:
    out.mkdir()
    shutil.copytree(base_clone.bundle, out / f"{NAME}.twin")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in (out / f"{NAME}.twin").iterdir()}
    run = cli(capfd, *clone_args(clip("twelve_s_mute"), consent, out))
    assert "Traceback" not in run.out + run.err
    assert run.code == 2, run.err
    assert run.lines == [run.lines[0]] and run.lines[0].startswith("error:"), run.lines
    assert "already exists" in run.lines[0] and "--force" in run.lines[0]
    assert leftovers(out) == [f"{NAME}.twin"]
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in (out / f"{NAME}.twin").iterdir()}
    assert after == before


@pytest.mark.media
def test_existing_bundle_with_force(capfd: pytest.CaptureFixture[str],
                                    clip: Callable[[str], Path], consent: Path,
                                    base_clone: BaseClone, out: Path) -> None:
    out.mkdir()
    shutil.copytree(base_clone.bundle, out / f"{NAME}.twin")
    video = clip("twelve_s_mute")
    run = cli(capfd, *clone_args(video, consent, out, "--force"))
    manifest = assert_cloned(run, out)
    assert manifest["source"]["sha256"] == hashlib.sha256(video.read_bytes()).hexdigest()
    assert manifest["source"]["sha256"] != base_clone.manifest["source"]["sha256"]
    assert manifest["gestures"] == []
    assert not (out / f"{NAME}.twin" / "gestures.yaml").exists()


# --- warnings: the clone succeeds -----------------------------------------------------------


@pytest.mark.media
def test_no_audio_warns_and_has_no_person_model(base_clone: BaseClone) -> None:
    run, m = base_clone.run, base_clone.manifest
    assert "Traceback" not in run.out + run.err
    assert run.messages("error:") == []
    warned = warnings_text(run)
    assert "no audio" in warned
    assert "15 s long" in warned  # the short-clip warning too
    assert m["person_model"] is None
    assert m["voice_reference"] is None
    assert not (base_clone.bundle / "person_model.onnx").exists()
    assert any("no audio" in w for w in m["warnings"])
    assert leftovers(base_clone.bundle.parent) == [f"{NAME}.twin"]


@pytest.mark.media
def test_base_bundle_is_valid(capfd: pytest.CaptureFixture[str], base_clone: BaseClone
                              ) -> None:
    m = base_clone.manifest
    run = cli(capfd, "doctor", base_clone.bundle)
    assert run.code == 0, run.err
    assert m["source"]["frames"] == 375 and m["source"]["rotation"] == 0
    assert (m["source"]["width"], m["source"]["height"]) == (256, 256)
    (g,) = m["gestures"]
    assert (g["id"], g["start_frame"], g["end_frame"]) == ("wave", 50, 88)
    consent = m["consent"]
    raw = (base_clone.bundle / "consent.yaml").read_bytes()
    assert consent["sha256"] == hashlib.sha256(raw).hexdigest()
    assert consent["subject"] == mg.CONSENT["subject"]


@pytest.mark.media
def test_warnings_are_one_line_each(base_clone: BaseClone) -> None:
    lines = base_clone.run.lines
    assert all(ln.startswith(PREFIXES) for ln in lines), lines


@pytest.mark.media
def test_short_clip_with_speech_warns(capfd: pytest.CaptureFixture[str],
                                      clip: Callable[[str], Path], consent: Path,
                                      out: Path) -> None:
    run = cli(capfd, *clone_args(clip("twenty_s_speech"), consent, out))
    m = assert_cloned(run, out)
    assert "20 s long" in warnings_text(run)
    assert "no audio" not in warnings_text(run)
    assert m["person_model"] is not None
    assert (out / f"{NAME}.twin" / "person_model.onnx").is_file()
    assert m["voice_reference"] is not None
    assert (out / f"{NAME}.twin" / m["voice_reference"]["file"]).is_file()


@pytest.mark.media
@pytest.mark.parametrize("recipe", ["fifteen_s_silent", "fifteen_s_tone"])
def test_audio_without_speech_warns(capfd: pytest.CaptureFixture[str],
                                    clip: Callable[[str], Path], consent: Path, out: Path,
                                    recipe: str) -> None:
    run = cli(capfd, *clone_args(clip(recipe), consent, out))
    m = assert_cloned(run, out)
    assert "no speech" in warnings_text(run)
    assert m["person_model"] is None
    assert m["voice_reference"] is None


@pytest.mark.media
def test_face_leaves_the_picture_for_a_while(capfd: pytest.CaptureFixture[str],
                                             clip: Callable[[str], Path], consent: Path,
                                             out: Path) -> None:
    run = cli(capfd, *clone_args(clip("face_out_30"), consent, out))
    m = assert_cloned(run, out)
    warned = warnings_text(run)
    assert "leaves the picture" in warned, warned  # face detection samples
    assert "lost or unusable in 30%" in warned, warned  # the tracking pass
    assert 0.6 <= m["quality"]["usable_share"] <= 0.8
    with np.load(out / f"{NAME}.twin" / "track.npz") as z:
        times, usable = z["times"], z["usable"]
    away = (times >= 5.0) & (times < 9.5)
    assert usable[away].mean() < 0.05  # frames without the face are not used
    assert usable[~away].mean() > 0.95


# --- rotation flag --------------------------------------------------------------------------


@pytest.mark.media
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_video_is_upright(capfd: pytest.CaptureFixture[str],
                                  clip: Callable[[str], Path], consent: Path, out: Path,
                                  rotation: int) -> None:
    video = clip(f"rotated_{rotation}")
    stored_w, stored_h, flag = mg.probe_rotation(video)
    assert flag == rotation
    assert (stored_w, stored_h) == ((384, 256) if rotation % 180 else (256, 384))
    run = cli(capfd, *clone_args(video, consent, out))
    m = assert_cloned(run, out)
    src = m["source"]
    assert src["rotation"] == rotation
    assert (src["width"], src["height"]) == (256, 384)  # as displayed
    with np.load(out / f"{NAME}.twin" / "track.npz") as z:
        lm, usable = z["landmarks"], z["usable"]
    assert usable.mean() > 0.95
    lm = lm[usable]
    eyes = lm[:, [33, 263], :2]
    mouth = lm[:, [13, 14], :2].mean(axis=1)
    # Upright: eyes above the mouth, left-to-right eye line level, inside the 256x384 frame,
    # face in the middle band of the portrait canvas (rows 64..320).
    assert np.all(eyes[:, :, 1].max(axis=1) < mouth[:, 1])
    d = eyes[:, 1] - eyes[:, 0]
    assert np.all(np.abs(d[:, 1]) < 0.3 * np.abs(d[:, 0]))
    assert np.all((lm[..., 0] > -20) & (lm[..., 0] < 276))
    assert np.all((mouth[:, 1] > 64) & (mouth[:, 1] < 320))


# --- interrupted clone ----------------------------------------------------------------------


@pytest.mark.media
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupted_clone_leaves_nothing(source: Path, consent: Path, out: Path,
                                          tmp_path: Path, signum: int) -> None:
    err_path = tmp_path / "stderr.txt"
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", _RUN_CLI, *map(str, clone_args(source, consent, out))],
            stdout=subprocess.DEVNULL, stderr=err, env=_env(), cwd=REPO,
        )
        try:
            partial = _wait_for_partial(out, proc, timeout=60)
            assert partial, f"no staging folder appeared; stderr:\n{err_path.read_text()}"
            time.sleep(0.5)  # well inside the tracking pass (60 s of video)
            assert proc.poll() is None, "the clone finished before it could be interrupted"
            sent = time.monotonic()
            proc.send_signal(signum)
            code = proc.wait(timeout=15)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = err_path.read_text()
    assert code != 0
    assert code == 130, text
    assert took < 5.0, f"took {took:.1f} s to stop"
    assert "tracking the face" in text  # it was stopped in the tracking pass
    assert "Traceback" not in text
    assert "interrupted" in text
    assert leftovers(out) == []


# `python -m livetwin.cli ARGS`, except that a SIGINT ignored by whoever started pytest (as
# for background jobs) is turned back into KeyboardInterrupt, as in a terminal.
_RUN_CLI = (
    "import runpy, signal, sys\n"
    "if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:\n"
    "    signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "sys.argv[0] = 'livetwin'\n"
    "runpy.run_module('livetwin.cli', run_name='__main__', alter_sys=True)\n"
)


def _wait_for_partial(out: Path, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and any(p.name.startswith(f".{NAME}.") and p.name.endswith(".partial")
                                for p in out.iterdir()):
            return True
        time.sleep(0.05)
    return False


# --- doctor on a tampered bundle ------------------------------------------------------------


def _doctor_problems(run: Run) -> list[str]:
    return run.messages("problem:")


@pytest.mark.media
def test_doctor_detects_changed_byte(capfd: pytest.CaptureFixture[str],
                                     bundle_copy: Path) -> None:
    atlas = bundle_copy / "atlas.npz"
    data = bytearray(atlas.read_bytes())
    data[len(data) // 2] ^= 0x01
    atlas.write_bytes(bytes(data))
    run = cli(capfd, "doctor", bundle_copy)
    assert run.code == 2 and "Traceback" not in run.err
    (problem,) = _doctor_problems(run)
    assert "atlas.npz" in problem and "modified" in problem


@pytest.mark.media
def test_doctor_detects_missing_file(capfd: pytest.CaptureFixture[str],
                                     bundle_copy: Path) -> None:
    (bundle_copy / "track.npz").unlink()
    run = cli(capfd, "doctor", bundle_copy)
    assert run.code == 2 and "Traceback" not in run.err
    (problem,) = _doctor_problems(run)
    assert "track.npz" in problem and "missing" in problem


@pytest.mark.media
def test_doctor_reports_stray_file(capfd: pytest.CaptureFixture[str], bundle_copy: Path) -> None:
    (bundle_copy / "notes.txt").write_text("hello", encoding="utf-8")
    run = cli(capfd, "doctor", bundle_copy)
    assert run.code == 2 and "Traceback" not in run.err
    (problem,) = _doctor_problems(run)
    assert "notes.txt" in problem and "not part of the bundle" in problem


@pytest.mark.media
def test_doctor_detects_edited_consent(capfd: pytest.CaptureFixture[str],
                                       bundle_copy: Path) -> None:
    path = bundle_copy / "consent.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("Ted", "Fred"), encoding="utf-8")
    run = cli(capfd, "doctor", bundle_copy)
    assert run.code == 2
    problems = " ".join(_doctor_problems(run))
    assert "consent.yaml was modified" in problems
    assert "does not match the consent record" in problems


@pytest.mark.media
def test_doctor_without_manifest_names_it(capfd: pytest.CaptureFixture[str],
                                          bundle_copy: Path) -> None:
    (bundle_copy / "manifest.yaml").unlink()
    run = cli(capfd, "doctor", bundle_copy)
    (line,) = run.messages("error:")
    assert "manifest.yaml" in scrub(line)


@pytest.mark.media
def test_doctor_without_manifest(capfd: pytest.CaptureFixture[str], bundle_copy: Path) -> None:
    (bundle_copy / "manifest.yaml").unlink()
    run = cli(capfd, "doctor", bundle_copy)
    assert run.code == 2 and "Traceback" not in run.err
    assert len(run.messages("error:")) == 1


# --- stderr hygiene -------------------------------------------------------------------------


@pytest.mark.media
def test_no_native_log_noise(clip: Callable[[str], Path], consent: Path, out: Path) -> None:
    run = cli_subprocess(*clone_args(clip("no_face_early"), consent, out))
    assert run.code == 2
    noise = [ln for ln in _strip_ansi(run.err).splitlines() if NATIVE_LOG.match(ln)]
    assert noise == []

