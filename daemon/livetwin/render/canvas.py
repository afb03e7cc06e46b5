"""The output canvas (issue 4 item 2): the rendered frame placed and scaled on a canvas of
any size, on a background colour or image, with the visible AI-disclosure label.

Placement: a source whose orientation matches the canvas and whose aspect ratio is close
to it fills the canvas (cropping at most FILL_MAX_CROP of it, centred); otherwise it is
scaled to fit and centred (a portrait or square source sits in a landscape canvas with
bars at the sides, which show the background colour or the background image, scaled to
cover the canvas and centre-cropped).

The label is drawn with Pillow in a TrueType/OpenType font that has all its characters
(DejaVu Sans for Latin text; for CJK such as "AI生成" a font found by fonts.py), white on
a dark semi-transparent box, sized relative to the shorter canvas side. Everything
static (placement, background, label pixels and alpha) is computed once; per frame there
is one resize, one paste ("place") and one alpha blend of the label box ("label"), both
timed (`timing()`). For the encoder, compose_i420 gives the same picture as I420 and
redoes only what changed: the avatar rectangle, or only the part of it that a photo
avatar moved; the RGB -> I420 conversion of that part is timed as "i420".

The label is on by default. Turning it off is an explicit choice (`label=None`) and is
logged as a warning, since the disclosure is what viewers rely on."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageOps

from livetwin.render import fonts

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
log = logging.getLogger(__name__)

DEFAULT_SIZE = (1280, 720)
DEFAULT_LABEL = "AI-generated host"
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")
DEFAULT_POSITION = "top-left"
FILL_MAX_CROP = 0.12  # fill (crop) only when it loses at most this share of a side
BOX_OPACITY = 0.6  # of the dark box behind the label text
# shares of the shorter canvas side (the height of a landscape canvas)
TEXT_HEIGHT = 0.030  # label cap height (~22 px at 720p)
MARGIN = 0.025  # label box distance from the canvas edges
PAD_X, PAD_Y = 0.7, 0.5  # label box padding around the text, in cap heights
CORNER = 0.4  # label box corner radius, in cap heights
BOX_GREY = 16.0  # grey level of the label box
STAGES = ("place", "label")  # timed per frame (ms): resize + paste, label blend
I420_STAGE = "i420"  # compose_i420 only: RGB -> I420 of the part redone
TIMING_WINDOW = 10_000


@dataclass(frozen=True)
class Placement:
    """Where the source goes: the source crop (x0, y0, x1, y1) in source pixels and the
    destination box in canvas pixels."""

    crop: tuple[int, int, int, int]
    dest: tuple[int, int, int, int]


def place(source: tuple[int, int], canvas: tuple[int, int]) -> Placement:
    """Placement of a (w, h) source on a (w, h) canvas (see the module doc)."""
    sw, sh = source
    cw, ch = canvas
    if min(sw, sh, cw, ch) <= 0:
        raise ValueError(f"sizes must be positive: source {source}, canvas {canvas}")
    fit = min(cw / sw, ch / sh)
    cover = max(cw / sw, ch / sh)
    same_orientation = (sw > sh) == (cw > ch) and sw != sh and cw != ch
    if same_orientation and 1.0 - fit / cover <= FILL_MAX_CROP:
        # crop the source to the canvas aspect, centred
        vw, vh = min(sw, round(cw / cover)), min(sh, round(ch / cover))
        x0, y0 = (sw - vw) // 2, (sh - vh) // 2
        return Placement((x0, y0, x0 + vw, y0 + vh), (0, 0, cw, ch))
    w, h = max(1, round(sw * fit)), max(1, round(sh * fit))
    x0, y0 = (cw - w) // 2, (ch - h) // 2
    return Placement((0, 0, sw, sh), (x0, y0, x0 + w, y0 + h))


def parse_colour(text: str) -> tuple[int, int, int]:
    """'#RRGGBB' / 'RRGGBB' -> (r, g, b); ValueError otherwise."""
    s = text.strip().lstrip("#")
    if len(s) != 6 or any(c not in "0123456789abcdefABCDEF" for c in s):
        raise ValueError(f"colour {text!r} is not #RRGGBB")
    return int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16)


def _text_mask(text: str, font: fonts.FontType, cap: float) -> U8:
    """The text drawn white-on-black (uint8 mask) with its padding around it.
    The vertical extent is the union of the text's ink and of "Hg" (cap height and a
    descender), so labels of one canvas share a height and the baseline sits where the
    eye expects it whatever the letters."""
    img = Image.new("L", (1, 1))
    draw = ImageDraw.Draw(img)
    l0, t0, r0, b0 = (round(v) for v in draw.textbbox((0, 0), text, font=font, anchor="ls"))
    _, t1, _, b1 = (round(v) for v in draw.textbbox((0, 0), "Hg", font=font, anchor="ls"))
    top, bottom = min(t0, t1), max(b0, b1)
    pad_x, pad_y = round(PAD_X * cap), round(PAD_Y * cap)
    w, h = (r0 - l0) + 2 * pad_x, (bottom - top) + 2 * pad_y
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).text((pad_x - l0, pad_y - top), text, font=font, fill=255,
                              anchor="ls")
    return np.asarray(mask, np.uint8)


def _font_for(text: str, cap: float, face: fonts.FontFace | None) -> fonts.FontType:
    """The font of `face` sized so that a capital H is `cap` pixels tall."""
    ref = fonts.load(face, 100)
    _, top, _, bottom = ref.getbbox("H", anchor="ls")
    cap_100 = max(1.0, float(bottom - top))
    return fonts.load(face, max(6, round(100 * cap / cap_100)))


def _label_pixels(text: str, ref: int, font_file: Path | None = None, *,
                  font_search: bool = True) -> tuple[U8, F32]:
    """The label box: RGB (h, w, 3) and alpha (h, w) in [0, 1]: white anti-aliased text
    (a TrueType/OpenType font that has all its characters, see fonts.py) on a dark,
    semi-transparent box with rounded corners, sized relative to `ref` (the shorter canvas
side). ValueError when no font has all the characters."""
    cap = max(9.0, TEXT_HEIGHT * ref)
    face = fonts.find_face(text, font_file, search=font_search)
    font = _font_for(text, cap, face)
    text_mask = _text_mask(text, font, cap)
    h, w = text_mask.shape
    box = np.zeros((h, w), np.uint8)
    r = max(2, round(CORNER * cap))
    cv2.rectangle(box, (r, 0), (w - 1 - r, h - 1), 255, -1)
    cv2.rectangle(box, (0, r), (w - 1, h - 1 - r), 255, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(box, (cx, cy), r, 255, -1, cv2.LINE_AA)
    t = text_mask.astype(np.float32) / 255.0
    b = box.astype(np.float32) / 255.0 * BOX_OPACITY
    # text over box: alpha = t + b (1 - t); colour = (255 t + 16 b (1 - t)) / alpha
    alpha = t + b * (1.0 - t)
    rgb = (255.0 * t + BOX_GREY * b * (1.0 - t)) / np.maximum(alpha, 1e-6)
    rgb3 = np.repeat(np.clip(rgb + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return np.ascontiguousarray(rgb3), alpha.astype(np.float32)


def _cover(image: U8, size: tuple[int, int]) -> U8:
    """`image` (h, w, 3) scaled to cover `size` (w, h) and centre-cropped to it."""
    cw, ch = size
    ih, iw = image.shape[:2]
    s = max(cw / iw, ch / ih)
    w, h = max(cw, round(iw * s)), max(ch, round(ih * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    scaled = cv2.resize(image, (w, h), interpolation=interp)
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return np.ascontiguousarray(scaled[y0:y0 + ch, x0:x0 + cw])


def load_background(path: Path, size: tuple[int, int]) -> U8:
    """The image at `path` as RGB covering a (w, h) canvas (centre crop); ValueError with
    one sentence when it is not a readable image."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"background image {path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            rgb = ImageOps.exif_transpose(im).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        raise ValueError(f"background image {path}: cannot read it as an image (PNG, JPEG, "
                         "WebP, ...)") from None
    if min(rgb.size) < 1:
        raise ValueError(f"background image {path} is empty")
    return _cover(np.asarray(rgb, np.uint8), size)


@dataclass(frozen=True)
class LabelPixels:
    """A label made for one canvas (Canvas.render_label): its text, box (x0, y0, x1, y1)
    and pixels (RGB, alpha)."""

    text: str
    box: tuple[int, int, int, int]
    rgb: U8
    alpha: F32


class Canvas:
    """Places frames of size `source` (w, h) on a canvas of `size` (w, h).

    `background` colours the canvas where the frame does not cover it, unless
    `background_image` (scaled to cover the canvas, centre-cropped) is given. `label` is
    the AI-disclosure text (None: no label, an explicit choice that is logged);
    `label_font` a font file tried first; `font_search=False` keeps to that file and
    Pillow's built-in font (no system fonts). ValueError for a bad size, position, font,
    image, or a label that does not fit."""

    def __init__(self, source: tuple[int, int], size: tuple[int, int] = DEFAULT_SIZE, *,
                 background: tuple[int, int, int] = (0, 0, 0),
                 background_image: Path | None = None,
                 label: str | None = DEFAULT_LABEL,
                 label_position: str = DEFAULT_POSITION,
                 label_font: Path | None = None,
                 font_search: bool = True) -> None:
        cw, ch = size
        if cw < 16 or ch < 16:
            raise ValueError(f"canvas {cw}x{ch} is too small (at least 16x16)")
        if label_position not in POSITIONS:
            raise ValueError(f"label position {label_position!r}: choose one of "
                             f"{', '.join(POSITIONS)}")
        if label is not None and not label.strip():
            raise ValueError("the label text is empty; give a text, or turn the label off "
                             "explicitly")
        self.size = (cw, ch)
        self.source = source
        self.placement = place(source, self.size)
        if background_image is not None:
            self._bg = load_background(background_image, self.size)
        else:
            self._bg = np.empty((ch, cw, 3), np.uint8)
            self._bg[:] = np.array(background, np.uint8)
        x0, y0, x1, y1 = self.placement.dest
        sx0, sy0, sx1, sy1 = self.placement.crop
        self._dsize = (x1 - x0, y1 - y0)
        self._full = self.placement.dest == (0, 0, cw, ch)  # no background shows
        upscale = (x1 - x0) > (sx1 - sx0)
        self._interp = cv2.INTER_LINEAR if upscale else cv2.INTER_AREA
        self._identity = self._dsize == (sx1 - sx0, sy1 - sy0)
        self.times: dict[str, deque[float]] = {s: deque(maxlen=TIMING_WINDOW)
                                               for s in (*STAGES, I420_STAGE)}
        # compose_i420 state: the canvas without the label (RGB) and the last output (I420)
        self._rgb: U8 | None = None
        self._yuv: U8 | None = None
        self._block = (_period(sx1 - sx0, x1 - x0), _period(sy1 - sy0, y1 - y0))
        self.label = label.strip() if label is not None else None
        self.label_box: tuple[int, int, int, int] | None = None
        self._label_style = (label_position, label_font, font_search)  # for render_label
        if self.label is None:
            log.warning("the visible AI-disclosure label is turned OFF for this output")
            return
        ref = min(cw, ch)  # the canvas height, or the width of a portrait canvas
        rgb, alpha = _label_pixels(self.label, ref, label_font, font_search=font_search)
        lh, lw = alpha.shape
        if lw > cw or lh > ch:
            raise ValueError(f"the label {self.label!r} does not fit a {cw}x{ch} canvas; "
                             "shorten it")
        m = round(MARGIN * ref)
        lx = m if label_position.endswith("left") else cw - m - lw
        ly = m if label_position.startswith("top") else ch - m - lh
        lx, ly = max(0, min(lx, cw - lw)), max(0, min(ly, ch - lh))
        self.label_box = (lx, ly, lx + lw, ly + lh)
        self._label_rgb = rgb
        self._label_a = alpha
        self._label_inv = (1.0 - alpha).astype(np.float32)

    def render_label(self, text: str) -> LabelPixels:
        """The pixels and place of a new label `text` in this canvas's corner and font,
        not yet shown (`use_label` shows them). ValueError when the text is empty, has a
        character no font has, or does not fit the canvas."""
        text = text.strip()
        if not text:
            raise ValueError("the label text is empty; the AI-disclosure label needs a text")
        cw, ch = self.size
        position, font_file, search = self._label_style
        ref = min(cw, ch)
        rgb, alpha = _label_pixels(text, ref, font_file, font_search=search)
        lh, lw = alpha.shape
        if lw > cw or lh > ch:
            raise ValueError(f"the label {text!r} does not fit a {cw}x{ch} canvas; shorten it")
        m = round(MARGIN * ref)
        lx = m if position.endswith("left") else cw - m - lw
        ly = m if position.startswith("top") else ch - m - lh
        lx, ly = max(0, min(lx, cw - lw)), max(0, min(ly, ch - lh))
        return LabelPixels(text, (lx, ly, lx + lw, ly + lh), rgb, alpha)

    def use_label(self, label: LabelPixels) -> None:
        """Show `label` (from `render_label`) from the next frame on. Call it on the
        thread that composes the frames: compose() reads the label's parts one by one."""
        self.label = label.text
        self.label_box = label.box
        self._label_rgb = label.rgb
        self._label_a = label.alpha
        self._label_inv = (1.0 - label.alpha).astype(np.float32)
        self._yuv = None  # compose_i420 converts the whole canvas again (old box gone)

    def compose(self, frame: U8) -> U8:
        """The canvas with `frame` (h, w, 3 RGB of the source size) placed and labelled; a
        new array each call. Times "place" and "label" (ms) into `times`."""
        t0 = time.perf_counter()
        x0, y0, x1, y1 = self.placement.dest
        sx0, sy0, sx1, sy1 = self.placement.crop
        src = frame[sy0:sy1, sx0:sx1]
        if self._full:
            out = np.empty_like(self._bg)
        else:
            out = self._bg.copy()
        if self._identity:
            out[y0:y1, x0:x1] = src
        else:
            cv2.resize(src, self._dsize, dst=out[y0:y1, x0:x1], interpolation=self._interp)
        t1 = time.perf_counter()
        if self.label_box is not None:
            lx0, ly0, lx1, ly1 = self.label_box
            roi = out[ly0:ly1, lx0:lx1]
            roi[:] = cv2.blendLinear(self._label_rgb, np.ascontiguousarray(roi),
                                     self._label_a, self._label_inv)
        t2 = time.perf_counter()
        self.times["place"].append((t1 - t0) * 1e3)
        self.times["label"].append((t2 - t1) * 1e3)
        return out

    def compose_i420(self, frame: U8,
                     dirty: tuple[int, int, int, int] | None = None) -> U8:
        """The canvas of compose(`frame`) as I420 (yuv420p: (h * 3 / 2, w) uint8, the Y
        plane then U and V), for the encoder; the same pixels as
        cvtColor(compose(frame), COLOR_RGB2YUV_I420).

        Only what changes is redone: the avatar rectangle, or, when `dirty` (x0, y0, x1,
        y1 in frame pixels) says which part of `frame` differs from the previous call's
        frame, only the canvas pixels that part reaches (a photo avatar moves its face and
        not the rest of the photo). The static background and label are converted once.
        The returned array is reused by the next call (copy it to keep it). Requires an
        even canvas size (H.264 4:2:0). Times "place" and "label" like compose()."""
        t0 = time.perf_counter()
        cw, ch = self.size
        if cw % 2 or ch % 2:
            raise ValueError(f"I420 needs an even canvas size, not {cw}x{ch}")
        x0, y0, x1, y1 = self.placement.dest
        sx0, sy0, sx1, sy1 = self.placement.crop
        first = self._rgb is None or self._yuv is None
        if self._rgb is None:
            self._rgb = self._bg.copy()
        rgb = self._rgb
        region = (x0, y0, x1, y1)
        if first or dirty is None:
            if self._identity:
                rgb[y0:y1, x0:x1] = frame[sy0:sy1, sx0:sx1]
            else:
                cv2.resize(frame[sy0:sy1, sx0:sx1], self._dsize, dst=rgb[y0:y1, x0:x1],
                           interpolation=self._interp)
        else:
            region = self._place_dirty(frame, dirty)
        t1 = time.perf_counter()
        # The region to convert, on even coordinates (a 2x2 chroma block is all in or out).
        if first:
            region = (0, 0, cw, ch)
        rx0, ry0 = region[0] & ~1, region[1] & ~1
        rx1, ry1 = min(cw, region[2] + (region[2] & 1)), min(ch, region[3] + (region[3] & 1))
        if self._yuv is None:
            self._yuv = np.empty((ch * 3 // 2, cw), np.uint8)
        t2 = t3 = t1
        if rx1 > rx0 and ry1 > ry0:
            part = rgb[ry0:ry1, rx0:rx1].copy()  # a copy: the label goes on it, not on rgb
            if self.label_box is not None:
                lx0, ly0, lx1, ly1 = self.label_box
                ix0, iy0 = max(lx0, rx0), max(ly0, ry0)
                ix1, iy1 = min(lx1, rx1), min(ly1, ry1)
                if ix1 > ix0 and iy1 > iy0:
                    roi = part[iy0 - ry0:iy1 - ry0, ix0 - rx0:ix1 - rx0]
                    ls = (slice(iy0 - ly0, iy1 - ly0), slice(ix0 - lx0, ix1 - lx0))
                    roi[:] = cv2.blendLinear(
                        np.ascontiguousarray(self._label_rgb[ls]), np.ascontiguousarray(roi),
                        np.ascontiguousarray(self._label_a[ls]),
                        np.ascontiguousarray(self._label_inv[ls]))
            t2 = time.perf_counter()
            _put_i420(self._yuv, cv2.cvtColor(part, cv2.COLOR_RGB2YUV_I420), rx0, ry0, cw, ch)
            t3 = time.perf_counter()
        self.times["place"].append((t1 - t0) * 1e3)
        self.times["label"].append((t2 - t1) * 1e3)
        self.times[I420_STAGE].append((t3 - t2) * 1e3)
        return self._yuv

    def _place_dirty(self, frame: U8, dirty: tuple[int, int, int, int]
                     ) -> tuple[int, int, int, int]:
        """Redo the placement of the `dirty` part of `frame` in the label-less canvas; the
        canvas region redone. A resize is redone on whole periods of the scale (a period
        of source pixels maps to a whole number of canvas pixels, so a part resized alone
        samples exactly where the whole resize does) with a period of margin."""
        x0, y0, x1, y1 = self.placement.dest
        sx0, sy0, sx1, sy1 = self.placement.crop
        rgb = self._rgb
        assert rgb is not None
        # dirty in crop coordinates, clipped
        dx0, dy0 = max(dirty[0] - sx0, 0), max(dirty[1] - sy0, 0)
        dx1, dy1 = min(dirty[2] - sx0, sx1 - sx0), min(dirty[3] - sy0, sy1 - sy0)
        if dx1 <= dx0 or dy1 <= dy0:
            return (x0, y0, x0, y0)
        if self._identity:
            rgb[y0 + dy0:y0 + dy1, x0 + dx0:x0 + dx1] = frame[sy0 + dy0:sy0 + dy1,
                                                              sx0 + dx0:sx0 + dx1]
            return (x0 + dx0, y0 + dy0, x0 + dx1, y0 + dy1)
        (psx, pdx), (psy, pdy) = self._block
        if not psx or not psy:  # no short period: the whole resize
            cv2.resize(frame[sy0:sy1, sx0:sx1], self._dsize, dst=rgb[y0:y1, x0:x1],
                       interpolation=self._interp)
            return (x0, y0, x1, y1)
        sw, sh = sx1 - sx0, sy1 - sy0
        # A canvas pixel reads source pixels up to the scale (+1) away: widen the dirty
        # part by that, then take the blocks covering it and one block of margin.
        rx, ry = math.ceil(sw / (x1 - x0)) + 1, math.ceil(sh / (y1 - y0)) + 1
        dx0, dy0 = max(dx0 - rx, 0), max(dy0 - ry, 0)
        dx1, dy1 = min(dx1 + rx, sw), min(dy1 + ry, sh)
        ix0, ix1 = dx0 // psx, -(-dx1 // psx)
        iy0, iy1 = dy0 // psy, -(-dy1 // psy)
        mx0, mx1 = max(ix0 - 1, 0), min(ix1 + 1, sw // psx)
        my0, my1 = max(iy0 - 1, 0), min(iy1 + 1, sh // psy)
        src = frame[sy0 + my0 * psy:sy0 + my1 * psy, sx0 + mx0 * psx:sx0 + mx1 * psx]
        out = cv2.resize(src, ((mx1 - mx0) * pdx, (my1 - my0) * pdy),
                         interpolation=self._interp)
        ox0, ox1 = (ix0 - mx0) * pdx, (ix1 - mx0) * pdx
        oy0, oy1 = (iy0 - my0) * pdy, (iy1 - my0) * pdy
        cx0, cy0 = x0 + ix0 * pdx, y0 + iy0 * pdy
        rgb[cy0:cy0 + oy1 - oy0, cx0:cx0 + ox1 - ox0] = out[oy0:oy1, ox0:ox1]
        return (cx0, cy0, cx0 + ox1 - ox0, cy0 + oy1 - oy0)

    def timing(self) -> dict[str, dict[str, float]]:
        """Per-stage ("place", "label", and "i420" when the frames came from
        compose_i420) and their sum ("canvas") in ms per frame: p50 and p99 over the
        recent frames; empty before the first frame. ("canvas", not "total", so that it
        merges with the compositor's timing without overwriting its total.)"""
        out: dict[str, dict[str, float]] = {}
        if not self.times["place"]:
            return out
        stages = list(STAGES)
        if len(self.times[I420_STAGE]) == len(self.times["place"]):
            stages.append(I420_STAGE)
        arr = {s: np.array(self.times[s]) for s in stages}
        arr["canvas"] = np.sum([arr[s] for s in stages], axis=0)
        for s, a in arr.items():
            out[s] = {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99))}
        return out


def _period(src: int, dst: int) -> tuple[int, int]:
    """(source, canvas) pixels of the shortest run of a `src` -> `dst` resize that maps a
    whole number of source pixels onto a whole number of canvas pixels; (0, 0) when that
    run is more than a quarter of the source (then a part is not worth resizing alone)."""
    if src <= 0 or dst <= 0:
        return 0, 0
    g = math.gcd(src, dst)
    ps, pd = src // g, dst // g
    return (ps, pd) if ps * 4 <= src else (0, 0)


def _put_i420(yuv: U8, part: U8, x: int, y: int, w: int, h: int) -> None:
    """Copy the I420 image `part` (its size even) into the I420 canvas `yuv` (w x h) at the
    even position (x, y)."""
    ph, pw = part.shape[0] * 2 // 3, part.shape[1]
    yuv[y:y + ph, x:x + pw] = part[:ph]
    flat, pflat = yuv.reshape(-1), part.reshape(-1)
    n, pn = w * h, pw * ph
    for k in range(2):  # U then V
        plane = flat[n + k * n // 4:n + (k + 1) * n // 4].reshape(h // 2, w // 2)
        pplane = pflat[pn + k * pn // 4:pn + (k + 1) * pn // 4].reshape(ph // 2, pw // 2)
        plane[y // 2:(y + ph) // 2, x // 2:(x + pw) // 2] = pplane
