"""The output canvas: placement, background colour and image, the AI-disclosure label
(TrueType fonts, CJK text, position, off only explicitly), per-stage timing, and the
render config / `say` options that feed it."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw

from livetwin.config import Config, RenderConfig, load_config
from livetwin.errors import ConfigError, InputError
from livetwin.render import fonts
from livetwin.render.canvas import POSITIONS, Canvas, load_background

U8 = npt.NDArray[np.uint8]
CJK = "AI生成"


def _solid(w: int, h: int, rgb: tuple[int, int, int]) -> U8:
    a = np.empty((h, w, 3), np.uint8)
    a[:] = rgb
    return a


def _dejavu() -> Path:
    for p in fonts._latin_candidates():
        if p.is_file() and p.name.startswith("DejaVuSans"):
            return p
    _skip_outside_ci("no DejaVu Sans on this machine (matplotlib ships one)")


def _cjk_font_installed() -> bool:
    """Independently of fonts.py: is any CJK font on this machine?"""
    if any(Path(p).is_file() for p in fonts.WELL_KNOWN_CJK):
        return True
    if shutil.which("fc-list"):
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True,
                             check=False, timeout=10).stdout
        return bool(out.strip())
    return False


def _cmap(face: fonts.FontFace) -> set[int]:
    with TTFont(str(face.path), fontNumber=face.index, lazy=True) as f:
        return set(f.getBestCmap())


# ------------------------------------------------------------------ fonts and label


def test_ascii_label_uses_a_real_sans_font() -> None:
    face = fonts.find_face("AI-generated host")
    assert face is not None, "fell back to Pillow's built-in font although DejaVu is here"
    assert {ord(c) for c in "AI-generatedhost"} <= _cmap(face)


def test_cjk_label_is_drawn_with_a_font_that_has_the_characters() -> None:
    if not _cjk_font_installed():
        _skip_outside_ci("no CJK font installed (make sysdeps installs fonts-wqy-microhei)")
    face = fonts.find_face(CJK)
    assert face is not None
    assert {ord(c) for c in CJK} <= _cmap(face)  # coverage checked for real
    # the glyphs drawn are not the font's .notdef box
    font = fonts.load(face, 40)

    def ink(c: str) -> bytes:
        img = Image.new("L", (80, 80))
        ImageDraw.Draw(img).text((10, 10), c, font=font, fill=255)
        return img.tobytes()

    notdef = ink("\U0010fffd")
    assert ink("生") != notdef and ink("成") != notdef and ink("生") != ink("成")
    # on the canvas: the CJK label differs from the ASCII one and has ink to the right of
    # "AI" (where the two ideographs are)
    src = _solid(64, 64, (120, 120, 120))
    zh, ai = Canvas((64, 64), (1280, 720), label=CJK), Canvas((64, 64), (1280, 720), label="AI")
    assert zh.label_box is not None and ai.label_box is not None
    zx0, zy0, zx1, zy1 = zh.label_box
    ax0, _, ax1, _ = ai.label_box
    assert zx1 - zx0 > 1.8 * (ax1 - ax0)
    out = zh.compose(src)[zy0:zy1, zx0:zx1]
    white = out.min(axis=2) > 200
    right = white[:, ax1 - ax0:]
    assert right.mean() > 0.05, "no text where the ideographs should be"


def test_label_without_a_font_for_its_characters_is_a_clear_error() -> None:
    dejavu = _dejavu()
    with pytest.raises(ValueError) as exc:
        Canvas((64, 64), (1280, 720), label=CJK, label_font=dejavu, font_search=False)
    msg = str(exc.value)
    assert "生成" in msg and "fonts-wqy-microhei" in msg and "label_font" in msg
    assert "AI" not in msg.split("'")[1]  # only the missing characters are named
    # the same font is fine for text it covers
    c = Canvas((64, 64), (1280, 720), label="AI host", label_font=dejavu, font_search=False)
    assert c.label_box is not None


def test_explicit_label_font_is_used_and_checked(tmp_path: Path) -> None:
    dejavu = _dejavu()
    assert fonts.find_face("AI host", dejavu) == fonts.FontFace(dejavu, 0)
    with pytest.raises(ValueError, match="no such file"):
        Canvas((64, 64), label_font=tmp_path / "nope.ttf")
    junk = tmp_path / "junk.ttf"
    junk.write_bytes(b"not a font at all" * 10)
    with pytest.raises(ValueError, match="not a TrueType/OpenType font"):
        Canvas((64, 64), label_font=junk)


def test_label_is_readable_and_sized_by_the_canvas() -> None:
    small, big = Canvas((64, 64), (640, 360)), Canvas((64, 64), (1920, 1080))
    assert small.label_box is not None and big.label_box is not None
    hs = small.label_box[3] - small.label_box[1]
    hb = big.label_box[3] - big.label_box[1]
    assert 2.6 < hb / hs < 3.4
    # on a white frame: the box darkens it, the text stays white
    c = Canvas((1280, 720), (1280, 720))
    out = c.compose(_solid(1280, 720, (255, 255, 255)))
    assert c.label_box is not None
    x0, y0, x1, y1 = c.label_box
    box = out[y0:y1, x0:x1].astype(np.int16)
    assert np.median(box) < 140  # dark box
    assert (box.min(axis=2) > 240).mean() > 0.05  # white text
    # a portrait canvas does not get a label three times as big
    tall = Canvas((64, 64), (720, 1280))
    assert tall.label_box is not None
    assert tall.label_box[3] - tall.label_box[1] == c.label_box[3] - c.label_box[1]


@pytest.mark.parametrize("position", POSITIONS)
def test_label_position_is_honoured(position: str) -> None:
    size = (800, 450)
    src = _solid(64, 64, (90, 90, 90))
    c = Canvas((64, 64), size, label_position=position)
    bare = Canvas((64, 64), size, label=None)
    assert c.label_box is not None
    x0, y0, x1, y1 = c.label_box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert (cx < size[0] / 2) == position.endswith("left")
    assert (cy < size[1] / 2) == position.startswith("top")
    diff = np.abs(c.compose(src).astype(np.int16) - bare.compose(src)).max(axis=2) > 0
    ys, xs = np.nonzero(diff)
    assert len(ys) and xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1


def test_label_off_is_logged_and_blank_text_refused(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="livetwin.render.canvas"):
        c = Canvas((64, 64), (320, 180), label=None)
    assert c.label_box is None
    assert any("label is turned OFF" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="livetwin.render.canvas"):
        Canvas((64, 64), (320, 180))
    assert not caplog.records
    with pytest.raises(ValueError, match="label text is empty"):
        Canvas((64, 64), (320, 180), label="   ")


# ------------------------------------------------------------------ placement and background


def test_place_paste_matches_a_plain_resize() -> None:
    rng = np.random.default_rng(1)
    src = rng.integers(0, 256, (160, 90, 3), dtype=np.uint8)
    c = Canvas((90, 160), (320, 180), label=None)
    x0, y0, x1, y1 = c.placement.dest
    out = c.compose(src)
    want = cv2.resize(src, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(out[y0:y1, x0:x1], want)


@pytest.mark.parametrize(("source", "position"), [
    ((512, 512), "top-left"),      # 512 -> 720: resized in runs of 32 -> 45 pixels
    ((256, 256), "bottom-right"),  # 256 -> 720
    ((405, 720), "top-left"),      # pasted as it is, odd left edge (437)
    ((511, 509), "top-right"),     # no short run: the whole resize
    ((1024, 1024), "top-left"),    # downscale (area)
])
def test_compose_i420_is_compose_then_convert(source: tuple[int, int], position: str) -> None:
    """compose_i420 with dirty parts gives, frame after frame, exactly the pixels of
    compose() converted to I420, the label included where the avatar runs under it."""
    rng = np.random.default_rng(3)
    w, h = source
    fast = Canvas(source, (1280, 720), label_position=position)
    ref = Canvas(source, (1280, 720), label_position=position)
    base = cv2.resize(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))
    prev: tuple[int, int, int, int] | None = None
    for k in range(12):
        frame = base.copy()
        x0, y0 = int(rng.integers(0, w - 8)), int(rng.integers(0, h - 8))
        x1, y1 = x0 + int(rng.integers(1, w - x0)), y0 + int(rng.integers(1, h - y0))
        if k == 5:  # a change at the corner under the label
            x0, y0, x1, y1 = 0, 0, w // 2, h // 4
        frame[y0:y1, x0:x1] = rng.integers(0, 256, (y1 - y0, x1 - x0, 3), dtype=np.uint8)
        box = (x0, y0, x1, y1)
        dirty = None if prev is None else (min(box[0], prev[0]), min(box[1], prev[1]),
                                           max(box[2], prev[2]), max(box[3], prev[3]))
        got = fast.compose_i420(frame, dirty)
        want = cv2.cvtColor(ref.compose(frame), cv2.COLOR_RGB2YUV_I420)
        assert np.array_equal(got, want), (k, dirty)
        prev = box
    assert np.array_equal(fast.compose_i420(frame, (0, 0, 0, 0)), want)  # nothing changed
    assert {"place", "label", "i420", "canvas"} <= set(fast.timing())


def _halves(path: Path, w: int, h: int) -> None:
    """An image: left half red, right half blue, a green stripe in the middle row."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (255, 0, 0)
    img[:, w // 2:] = (0, 0, 255)
    Image.fromarray(img).save(path)


def test_background_image_shows_in_the_bars_not_over_the_avatar(tmp_path: Path) -> None:
    bg = tmp_path / "bg.png"
    _halves(bg, 100, 100)  # square: covers 320x180 by scaling to 320x320, crop rows
    green = _solid(90, 160, (10, 200, 10))
    c = Canvas((90, 160), (320, 180), background=(255, 255, 0), background_image=bg,
               label=None)
    x0, y0, x1, y1 = c.placement.dest
    assert x0 > 0 and x1 < 320  # a portrait source: bars at the sides
    out = c.compose(green)
    assert np.array_equal(out[y0:y1, x0:x1], green[:1, :1].repeat(y1 - y0, 0).repeat(
        x1 - x0, 1))  # the avatar is untouched by the image
    left, right = out[:, : x0 - 2], out[:, x1 + 2:]
    assert np.abs(left.astype(int) - (255, 0, 0)).max() < 8  # red half of the image
    assert np.abs(right.astype(int) - (0, 0, 255)).max() < 8  # blue half
    assert not (out == (255, 255, 0)).all(axis=2).any()  # the colour is not used


def test_background_image_covers_with_a_centre_crop(tmp_path: Path) -> None:
    bg = tmp_path / "wide.png"
    img = np.zeros((50, 400, 3), np.uint8)  # very wide: columns are cropped
    img[:, :100] = 255  # the outer quarter on the left is white, cropped away
    Image.fromarray(img).save(bg)
    out = load_background(bg, (160, 90))
    assert out.shape == (90, 160, 3)
    # scale 90/50 = 1.8 -> 720 wide, centre 160 columns: 280..440, all from the black part
    assert out.max() == 0


def test_bad_background_image_is_one_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("this is not an image")
    with pytest.raises(ValueError, match=r"background image .*bad\.png: cannot read it"):
        Canvas((64, 64), background_image=bad)
    with pytest.raises(ValueError, match="no such file"):
        Canvas((64, 64), background_image=tmp_path / "missing.jpg")


# ------------------------------------------------------------------ timing


def test_timing_has_place_and_label() -> None:
    c = Canvas((256, 256), (1280, 720))
    assert c.timing() == {}
    src = _solid(256, 256, (50, 60, 70))
    for _ in range(12):
        c.compose(src)
    t = c.timing()
    assert set(t) == {"place", "label", "canvas"}
    assert len(c.times["place"]) == len(c.times["label"]) == 12
    for s in t.values():
        assert 0 < s["p50"] <= s["p99"]
    assert t["canvas"]["p50"] >= t["place"]["p50"]


# ------------------------------------------------------------------ config and CLI


def test_render_config_defaults_and_values(tmp_path: Path) -> None:
    r = Config().render
    assert (r.size, r.fps, r.background, r.label, r.label_enabled) == (
        "1280x720", 25, "#000000", "AI-generated host", True)
    f = tmp_path / "livetwin.yaml"
    f.write_text("render:\n  label: AI生成\n  label_position: bottom-right\n"
                 "  background_image: /x/bg.png\n  label_font: /x/f.ttc\n", encoding="utf-8")
    r = load_config(f).render
    assert (r.label, r.label_position) == ("AI生成", "bottom-right")
    assert r.background_image == Path("/x/bg.png") and r.label_font == Path("/x/f.ttc")
    f.write_text("render:\n  lable: x\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'render\.lable'"):
        load_config(f)
    f.write_text("render:\n  label: '  '\n")
    with pytest.raises(ConfigError, match=r"render\.label"):
        load_config(f)


def test_label_enabled_false_is_explicit_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert RenderConfig().label_text() == "AI-generated host"
    with caplog.at_level(logging.WARNING, logger="livetwin.config"):
        assert RenderConfig(label_enabled=False).label_text() is None
    assert any("label" in r.getMessage() and "OFF" in r.getMessage() for r in caplog.records)


def test_say_options_reach_the_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from livetwin import cli
    from livetwin.render import say as say_mod

    seen = []

    def fake_say(avatar, req, cfg=None, **kw):  # type: ignore[no-untyped-def]
        seen.append(req)
        raise InputError("stop here")

    monkeypatch.setattr(say_mod, "say", fake_say)
    cfg = tmp_path / "livetwin.yaml"
    cfg.write_text("render:\n  label_enabled: false\n  size: 640x360\n  fps: 30\n"
                   "  background: '#102030'\n  label_font: /cfg/font.ttc\n", encoding="utf-8")
    out = str(tmp_path / "o.mp4")
    assert cli.main(["--config", str(cfg), "say", "a.twin", "hi", "--out", out,
                     "--background-image", "/x/bg.png", "--label-font", "/x/f.ttf"]) == 2
    req = seen[-1]
    assert req.background_image == Path("/x/bg.png") and req.label_font == Path("/x/f.ttf")
    assert (req.size, req.fps, req.background, req.label) == ((640, 360), 30, (16, 32, 48), None)
    assert "label is OFF (render.label_enabled: false)" in capsys.readouterr().err
    # the command line wins over the config; the config's font is used when none is given
    assert cli.main(["--config", str(cfg), "say", "a.twin", "hi", "--out", out, "--label",
                     "AI生成", "--size", "1280x720", "--background", "#000000"]) == 2
    req = seen[-1]
    assert (req.label, req.size, req.background) == ("AI生成", (1280, 720), (0, 0, 0))
    assert req.label_font == Path("/cfg/font.ttc") and req.background_image is None


def _skip_outside_ci(reason: str) -> None:
    """CI installs the fonts (make sysdeps), so there a missing font is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must have it")
    pytest.skip(reason)
