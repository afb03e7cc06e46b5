"""Finding a TrueType/OpenType font that can draw a given text (the AI-disclosure label).

Order: an explicit font file (setting `render.label_font` / `--label-font`), then a good
sans font (DejaVu Sans, also shipped inside matplotlib), then, for characters that font
lacks (CJK such as "AI生成"), `fc-match` asked for those characters, then well-known
font files on Debian/Ubuntu, Windows and macOS, then Pillow's built-in scalable font
(Latin only). Coverage is checked for real, in the font's character map (fontTools), for
every character of the text except whitespace and format characters.

`find_font(text, size)` returns a Pillow font or raises ValueError naming the missing
characters and what to install or set."""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

FontType = ImageFont.FreeTypeFont | ImageFont.ImageFont
FC_TIMEOUT_S = 5.0
MAX_TTC_FACES = 16  # faces tried in one collection

_DEJAVU = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf")
_LATIN_DIRS = (
    "/usr/share/fonts/truetype/dejavu",  # Debian/Ubuntu fonts-dejavu-core
    "/usr/share/fonts/dejavu",  # Fedora
    "/usr/share/fonts/TTF",  # Arch
    "/usr/local/share/fonts",
    "/Library/Fonts",
)
_WINDOWS = Path(os.environ.get("WINDIR", "C:/Windows")) / "Fonts"
# Fonts with CJK glyphs, in order of preference.
WELL_KNOWN_CJK = (
    # Debian/Ubuntu: fonts-wqy-microhei, fonts-wqy-zenhei, fonts-noto-cjk
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",  # Fedora
    # Windows
    str(_WINDOWS / "msyh.ttc"),
    str(_WINDOWS / "simhei.ttf"),
    str(_WINDOWS / "YuGothM.ttc"),
    str(_WINDOWS / "malgun.ttf"),
    # macOS
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/Hiragino Sans GB.ttc",
    "/System/Library/Fonts/ヒラギノ角ゴシック W3.ttc",
    "/System/Library/Fonts/AppleSDGothicNeo.ttc",
    "/Library/Fonts/Arial Unicode.ttf",
)
INSTALL_HINT = ("install a font that has them (Debian/Ubuntu: apt-get install "
                "fonts-wqy-microhei or fonts-noto-cjk) or set render.label_font / "
                "--label-font to a .ttf/.ttc/.otf file that has them")


@dataclass(frozen=True)
class FontFace:
    """One face of a font file (`index` within a .ttc collection)."""

    path: Path
    index: int = 0


def needed(text: str) -> list[str]:
    """The characters of `text` a font must have: all but whitespace and control/format
    characters (zero-width joiners, variation selectors, ...), in order, once each."""
    out: list[str] = []
    for c in text:
        if c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Mn") or c in out:
            continue
        if 0xFE00 <= ord(c) <= 0xFE0F:  # variation selectors
            continue
        out.append(c)
    return out


@functools.lru_cache(maxsize=64)
def _cmap(path: str, index: int) -> frozenset[int] | None:
    """The code points the face has glyphs for; None when the file cannot be read as a
    font (or the face does not exist)."""
    from fontTools.ttLib import TTFont, TTLibError

    try:  # our own file object: fontTools leaves its own open when the font is bad
        with open(path, "rb") as fh, TTFont(fh, fontNumber=index, lazy=True) as f:
            cmap = f.getBestCmap()
            return frozenset(cmap) if cmap else frozenset()
    except (OSError, TTLibError, AssertionError, KeyError, ValueError, IndexError):
        return None


def _faces(path: Path) -> list[FontFace]:
    """The faces of a font file: one for .ttf/.otf, each of a collection's (.ttc/.otc)."""
    if path.suffix.lower() not in (".ttc", ".otc"):
        return [FontFace(path)]
    from fontTools.ttLib import TTCollection, TTLibError

    try:
        with open(path, "rb") as fh, TTCollection(fh, lazy=True) as c:
            n = len(c.fonts)
    except (OSError, TTLibError, AssertionError, ValueError):
        return []
    return [FontFace(path, i) for i in range(min(n, MAX_TTC_FACES))]


def missing(face: FontFace, chars: list[str]) -> list[str] | None:
    """The characters of `chars` the face lacks; None when the file is not a usable font."""
    cmap = _cmap(str(face.path), face.index)
    if cmap is None:
        return None
    return [c for c in chars if ord(c) not in cmap]


def _covering(path: Path, chars: list[str]) -> FontFace | None:
    """The first face of the file at `path` that has all of `chars`."""
    if not path.is_file():
        return None
    for face in _faces(path):
        if missing(face, chars) == []:
            return face
    return None


def _latin_candidates() -> list[Path]:
    paths = [Path(d) / n for n in _DEJAVU for d in _LATIN_DIRS]
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            paths += [Path(loc) / "mpl-data" / "fonts" / "ttf" / n for n in _DEJAVU]
    paths += [_WINDOWS / "segoeui.ttf", _WINDOWS / "arial.ttf",
              Path("/System/Library/Fonts/Helvetica.ttc")]
    return paths


def fc_match(chars: list[str]) -> FontFace | None:
    """What fontconfig's `fc-match` proposes for a sans font with `chars`; None where
    fc-match is absent or fails. The answer is the best match, not necessarily one that
    covers; the caller checks."""
    exe = shutil.which("fc-match")
    if exe is None or not chars:
        return None
    charset = " ".join(f"{ord(c):x}" for c in chars)
    try:
        proc = subprocess.run([exe, "-f", "%{file}\n%{index}", f"sans-serif:charset={charset}"],
                              capture_output=True, text=True, timeout=FC_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or not lines or not lines[0].strip():
        return None
    try:
        index = int(lines[1]) if len(lines) > 1 and lines[1].strip() else 0
    except ValueError:
        index = 0
    return FontFace(Path(lines[0].strip()), index)


def _builtin_covers(chars: list[str], size: int) -> bool:
    """Whether Pillow's built-in scalable font draws all of `chars` (each differs from
    the .notdef box it draws for a character it lacks)."""
    font = ImageFont.load_default(size)
    notdef = _glyph(font, "\U0010fffd", size)
    return all(_glyph(font, c, size) != notdef for c in chars)


def _glyph(font: FontType, c: str, size: int) -> bytes:
    img = Image.new("L", (2 * size, 2 * size))
    ImageDraw.Draw(img).text((size // 2, size // 2), c, font=font, fill=255)
    return img.tobytes()


def find_face(text: str, explicit: Path | None = None, *, search: bool = True) -> FontFace | None:
    """The face to draw `text` with, or None for Pillow's built-in font; ValueError when
    `explicit` is not a readable font, or when no font has all the characters.
    `search=False` looks at `explicit` and the built-in font only."""
    chars = needed(text)
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ValueError(f"label font {path}: no such file; give a .ttf/.ttc/.otf file")
        faces = _faces(path)
        if not faces or missing(faces[0], []) is None:
            raise ValueError(f"label font {path}: not a TrueType/OpenType font file")
        face = _covering(path, chars)
        if face is not None:
            return face
        lacks = missing(faces[0], chars) or []
        log.warning("label font %s lacks %s; looking for another font", path,
                    "".join(lacks))
    if search:
        for p in _latin_candidates():
            face = _covering(p, chars)
            if face is not None:
                return face
        proposed = fc_match(chars)
        if proposed is not None:
            face = (proposed if missing(proposed, chars) == []
                    else _covering(proposed.path, chars))
            if face is not None:
                return face
        for name in WELL_KNOWN_CJK:
            face = _covering(Path(name), chars)
            if face is not None:
                return face
    if _builtin_covers(chars, 32):
        return None
    lacking = [c for c in chars if not _builtin_covers([c], 32)]
    shown = "".join(lacking[:20]) + ("..." if len(lacking) > 20 else "")
    raise ValueError(f"no font found for the label characters {shown!r}; {INSTALL_HINT}")


def load(face: FontFace | None, size: int) -> FontType:
    """A Pillow font of `size` pixels for the face (None: Pillow's built-in font)."""
    if face is None:
        return ImageFont.load_default(size)
    try:
        return ImageFont.truetype(str(face.path), size, index=face.index)
    except OSError as exc:
        raise ValueError(f"label font {face.path}: cannot be loaded ({exc})") from None
