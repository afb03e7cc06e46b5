"""The output canvas (issue 4 item 2): the rendered frame placed and scaled on a canvas of
any size, on a background colour, with the visible AI-disclosure label.

Placement: a source whose orientation matches the canvas and whose aspect ratio is close
to it fills the canvas (cropping at most FILL_MAX_CROP of it, centred); otherwise it is
scaled to fit and centred (a portrait or square source sits in a landscape canvas with
bars at the sides). Everything static (placement, background, label pixels and alpha) is
computed once; per frame there is one resize, one paste and one alpha blend of the label
box.

The label is on by default. Turning it off is an explicit choice (`label=None`) and is
logged as a warning, since the disclosure is what viewers rely on."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
log = logging.getLogger(__name__)

DEFAULT_SIZE = (1280, 720)
DEFAULT_LABEL = "AI-generated host"
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")
DEFAULT_POSITION = "top-left"
FILL_MAX_CROP = 0.12  # fill (crop) only when it loses at most this share of a side
BOX_OPACITY = 0.6  # of the dark box behind the label text
TEXT_HEIGHT = 0.030  # label cap height as a share of the canvas height (~22 px at 720p)
MARGIN = 0.025  # label box distance from the canvas edges, share of the canvas height


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


def _label_pixels(text: str, canvas_h: int) -> tuple[U8, F32]:
    """The label box: RGB (h, w, 3) and alpha (h, w) in [0, 1]: white anti-aliased text
    on a dark, semi-transparent box with rounded corners."""
    font = cv2.FONT_HERSHEY_DUPLEX
    cap = max(9.0, TEXT_HEIGHT * canvas_h)
    (_, ref_h), _ = cv2.getTextSize("H", font, 1.0, 1)
    scale = cap / ref_h
    thick = max(1, round(scale * 1.4))
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    pad_x, pad_y = round(0.7 * cap), round(0.55 * cap)
    w, h = tw + 2 * pad_x, th + base + 2 * pad_y
    text_mask = np.zeros((h, w), np.uint8)
    cv2.putText(text_mask, text, (pad_x, pad_y + th), font, scale, 255, thick, cv2.LINE_AA)
    box = np.zeros((h, w), np.uint8)
    r = max(2, round(0.4 * cap))
    cv2.rectangle(box, (r, 0), (w - 1 - r, h - 1), 255, -1)
    cv2.rectangle(box, (0, r), (w - 1, h - 1 - r), 255, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(box, (cx, cy), r, 255, -1, cv2.LINE_AA)
    t = text_mask.astype(np.float32) / 255.0
    b = box.astype(np.float32) / 255.0 * BOX_OPACITY
    alpha = np.maximum(b, t)  # text is opaque, the box semi-transparent
    # colour: white where text, near-black box elsewhere (premultiplied, then divided)
    rgb = np.where(t[..., None] > 0, 255.0 * t[..., None] / np.maximum(alpha[..., None], 1e-6),
                   16.0)
    rgb3 = np.repeat(np.clip(rgb, 0, 255).astype(np.uint8), 3, axis=2)
    return np.ascontiguousarray(rgb3), alpha.astype(np.float32)


class Canvas:
    """Places frames of size `source` (w, h) on a canvas of `size` (w, h)."""

    def __init__(self, source: tuple[int, int], size: tuple[int, int] = DEFAULT_SIZE, *,
                 background: tuple[int, int, int] = (0, 0, 0),
                 label: str | None = DEFAULT_LABEL,
                 label_position: str = DEFAULT_POSITION) -> None:
        cw, ch = size
        if cw < 16 or ch < 16:
            raise ValueError(f"canvas {cw}x{ch} is too small (at least 16x16)")
        if label_position not in POSITIONS:
            raise ValueError(f"label position {label_position!r}: choose one of "
                             f"{', '.join(POSITIONS)}")
        self.size = (cw, ch)
        self.source = source
        self.placement = place(source, self.size)
        self._bg = np.empty((ch, cw, 3), np.uint8)
        self._bg[:] = np.array(background, np.uint8)
        x0, y0, x1, y1 = self.placement.dest
        sx0, sy0, sx1, sy1 = self.placement.crop
        self._dsize = (x1 - x0, y1 - y0)
        upscale = (x1 - x0) > (sx1 - sx0)
        self._interp = cv2.INTER_LINEAR if upscale else cv2.INTER_AREA
        self._identity = self._dsize == (sx1 - sx0, sy1 - sy0)
        self.label = label.strip() if label else None
        self.label_box: tuple[int, int, int, int] | None = None
        if not self.label:
            log.warning("the visible AI-disclosure label is turned OFF for this output")
            self.label = None
            return
        rgb, alpha = _label_pixels(self.label, ch)
        lh, lw = alpha.shape
        if lw > cw or lh > ch:
            raise ValueError(f"the label {self.label!r} does not fit a {cw}x{ch} canvas; "
                             "shorten it")
        m = round(MARGIN * ch)
        lx = m if label_position.endswith("left") else cw - m - lw
        ly = m if label_position.startswith("top") else ch - m - lh
        lx, ly = max(0, min(lx, cw - lw)), max(0, min(ly, ch - lh))
        self.label_box = (lx, ly, lx + lw, ly + lh)
        self._label_rgb = rgb
        self._label_a = alpha
        self._label_inv = (1.0 - alpha).astype(np.float32)

    def compose(self, frame: U8) -> U8:
        """The canvas with `frame` (h, w, 3 RGB of the source size) placed and labelled; a
        new array each call."""
        out = self._bg.copy()
        x0, y0, x1, y1 = self.placement.dest
        sx0, sy0, sx1, sy1 = self.placement.crop
        src = frame[sy0:sy1, sx0:sx1]
        out[y0:y1, x0:x1] = src if self._identity else cv2.resize(
            src, self._dsize, interpolation=self._interp)
        if self.label_box is not None:
            lx0, ly0, lx1, ly1 = self.label_box
            roi = out[ly0:ly1, lx0:lx1]
            roi[:] = cv2.blendLinear(self._label_rgb, np.ascontiguousarray(roi),
                                     self._label_a, self._label_inv)
        return out
