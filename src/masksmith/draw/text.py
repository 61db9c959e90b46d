"""Text on pictures, for names from anyone's data: class and file names in every script, of any length, with
whatever characters a hostile or careless annotation file puts in them. Nothing drawn here ever fails on a name.

- Fonts, per glyph: DejaVu Sans (matplotlib ships it: Latin, Greek, Cyrillic, Hebrew, Arabic, arrows) and then
  Noto Sans CJK (the `noto-cjk-sans-jp-regular` package, OFL: Chinese, Japanese and Korean, which DejaVu
  lacks and would draw as empty boxes). A text is cut into runs of characters the same font covers, each run
  drawn with the first font that has its glyphs, on one baseline. Pillow's built-in font when neither exists.
- Cleaning (`clean`): line and paragraph breaks and other control characters become spaces (Raqm's layout
  fails outright on a carriage return or a paragraph separator), bidirectional overrides and isolates are
  dropped (they would reorder what is drawn around them), lone surrogates become U+FFFD, stacks of combining
  marks are cut to MAX_MARKS (a "zalgo" name would paint over its neighbours), and a name is cut to MAX_CHARS
  before it is measured (only what fits a line is drawn anyway).
- Layout: Raqm's complex layout (right-to-left scripts, Arabic joining, combining marks) where Pillow has it;
  a run it cannot lay out is drawn with basic layout instead, and a run neither can is drawn as "?".
"""

from __future__ import annotations

import importlib.util
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import ImageDraw, ImageFont

MAX_CHARS = 512  # longer names are cut before measuring; a line of a picture holds far fewer
MAX_MARKS = 2  # combining marks kept on one base character (accents stack two deep at most in real names)
ELLIPSIS = "\u2026"
REPLACEMENT = "\ufffd"
# bidirectional embeddings, overrides and isolates, and the marks that only steer them
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
Color = tuple[int, int, int]
Box = tuple[int, int, int, int]


# ----------------------------------------------------------------------------------------------- fonts
@dataclass(frozen=True)
class FontFile:
    name: str
    path: Path


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder, *parts)
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=1)
def font_files() -> tuple[FontFile, ...]:
    """The fonts text is drawn with, in order of preference (those installed)."""
    found = [FontFile("DejaVu Sans", _package_file("matplotlib", "mpl-data", "fonts", "ttf", "DejaVuSans.ttf")),
             FontFile("Noto Sans CJK JP", _package_file("noto_cjk_sans_jp_regular", "NotoSansCJKjp-Regular.otf"))]
    return tuple(f for f in found if f.path is not None)


@lru_cache(maxsize=8)
def _coverage(path: Path) -> frozenset[int]:
    """The code points a font has glyphs for (its cmap, read with fontTools, which matplotlib depends on)."""
    from fontTools.ttLib import TTFont

    with TTFont(str(path), lazy=True) as f:
        return frozenset(f.getBestCmap() or {})


@lru_cache(maxsize=64)
def _font(index: int, size: int, basic: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    files = font_files()
    if index >= len(files):
        return ImageFont.load_default(size=size)
    engine = ImageFont.Layout.BASIC if basic else None
    return ImageFont.truetype(str(files[index].path), size, layout_engine=engine)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The first font of the chain at `size` (for callers that need one font, such as line metrics)."""
    return _font(0, size)


def _font_for(char: str) -> int:
    code = ord(char)
    files = font_files()
    for k, f in enumerate(files):
        if k == 0 and code < 0x250:  # Latin: DejaVu has it, no need to read a cmap
            return 0
        if code in _coverage(f.path):
            return k
    return 0  # drawn as the first font's missing-glyph box


# ---------------------------------------------------------------------------------------------- cleaning
@lru_cache(maxsize=4096)
def clean(text: str) -> str:
    """`text` as it can be drawn on one line (see the module's notes)."""
    text = str(text)
    cut = len(text) > MAX_CHARS
    text = text[:MAX_CHARS]
    out: list[str] = []
    marks = 0
    for ch in text:
        category = unicodedata.category(ch)
        if ch in BIDI_CONTROLS:
            continue
        if category == "Cs":
            ch, category = REPLACEMENT, "So"
        elif category in ("Cc", "Zl", "Zp") or unicodedata.bidirectional(ch) in ("B", "S"):
            ch, category = " ", "Zs"
        if category in ("Mn", "Me", "Mc"):
            marks += 1
            if marks > MAX_MARKS or not out:
                continue
        else:
            marks = 0
        out.append(ch)
    return "".join(out) + (ELLIPSIS if cut else "")


def runs(text: str) -> list[tuple[int, str]]:
    """(font index, characters) runs of a cleaned text: combining marks stay with their base's run."""
    out: list[tuple[int, str]] = []
    for ch in text:
        if out and (unicodedata.category(ch) in ("Mn", "Me", "Mc") or ch == " "):
            out[-1] = (out[-1][0], out[-1][1] + ch)
            continue
        k = _font_for(ch)
        if out and out[-1][0] == k:
            out[-1] = (k, out[-1][1] + ch)
        else:
            out.append((k, ch))
    return out


# ------------------------------------------------------------------------------------- measuring, drawing
def _safe(call, index: int, size: int, run: str):
    """call(font, run) with Raqm layout, else basic layout, else for "?" in basic layout."""
    for basic, what in ((False, run), (True, run), (True, "?")):
        try:
            return call(_font(index, size, basic), what), what, basic
        except (RuntimeError, OSError, ValueError):
            continue
    raise AssertionError("unreachable: basic layout of '?' cannot fail")


def text_width(text: str, size: int) -> int:
    """Width in pixels of `text` drawn at `size` (cleaned, across its fonts)."""
    total = 0.0
    for index, run in runs(clean(text)):
        length, _, _ = _safe(lambda f, s: f.getlength(s), index, size, run)
        total += length
    return int(-(-total // 1))


def fit_text(text: str, size: int, width: int) -> str:
    """`text` cleaned and, when wider than `width` pixels, shortened with an ellipsis to fit (binary search on
    the length, so a long name costs a few measurements)."""
    text = clean(text)
    if text_width(text, size) <= width:
        return text
    low, high = 0, len(text)  # the longest prefix that fits with the ellipsis is in [low, high)
    while low < high - 1:
        mid = (low + high) // 2
        if text_width(text[:mid] + ELLIPSIS, size) <= width:
            low = mid
        else:
            high = mid
    return text[:low].rstrip() + ELLIPSIS


def _place(f: ImageFont.FreeTypeFont | ImageFont.ImageFont, run: str):
    return f.getbbox(run, anchor="ls"), f.getlength(run)


def text_box(text: str, size: int) -> Box:
    """The box `draw_text` would cover when drawing `text` at (0, 0)."""
    return draw_text(None, (0, 0), text, size)


def draw_text(draw: ImageDraw.ImageDraw | None, xy: tuple[int, int], text: str, size: int,
              fill: Color = (25, 25, 25)) -> Box:
    """Draw `text` (cleaned) with its top-left near `xy`, each run in the first font that has its glyphs, all on
    the first font's baseline; returns the box it covers. With `draw` None, only measures."""
    x, y = float(xy[0]), float(xy[1])
    baseline = y + _font(0, size).getmetrics()[0]
    boxes = []
    for index, run in runs(clean(text)):
        (bbox, length), shown, basic = _safe(_place, index, size, run)
        if draw is not None and shown.strip():
            draw.text((x, baseline), shown, fill=fill, font=_font(index, size, basic), anchor="ls")
        if shown.strip():
            boxes.append((x + bbox[0], baseline + bbox[1], x + bbox[2], baseline + bbox[3]))
        x += length
    if not boxes:
        return int(xy[0]), int(xy[1]), int(xy[0]), int(xy[1])
    return (int(min(b[0] for b in boxes)), int(min(b[1] for b in boxes)),
            int(-(-max(b[2] for b in boxes) // 1)), int(-(-max(b[3] for b in boxes) // 1)))


def matplotlib_fonts() -> list[str]:
    """The chain's family names, registered with matplotlib, for `font.family` (per-glyph fallback there)."""
    from matplotlib import font_manager

    names = []
    for f in font_files():
        if f.name != "DejaVu Sans":
            try:
                font_manager.fontManager.addfont(str(f.path))
            except (RuntimeError, OSError, ValueError):
                continue
        names.append(f.name)
    return names
