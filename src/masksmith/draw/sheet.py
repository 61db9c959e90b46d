"""Pictures that say what they show: panels laid out in a grid under a title, column titles and one caption
per row, with a legend of the class colours that wraps onto as many lines as it needs.

A `Picture` keeps, beside its pixels, what it wrote where (title, column titles, captions, legend entries,
object labels). `save_options()` stores that in the PNG (a standard Title and Description, and the layout as
JSON under "masksmith"), so the report can use the description as the image's alt text and tests can check
a picture for what it claims to show; `read_picture_info(path)` reads it back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from masksmith.core.labels import ClassMap
from masksmith.draw.overlay import DARK, Color
from masksmith.draw.text import draw_text as _draw_text
from masksmith.draw.text import fit_text, font, text_box, text_width

__all__ = ["Picture", "TextBox", "draw_text", "fit_text", "font", "legend", "read_picture_info", "sheet",
           "text_box", "text_width"]

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)
INFO_KEY = "masksmith"
BACKGROUND: Color = (255, 255, 255)
INK: Color = (25, 25, 25)
MUTED: Color = (90, 90, 90)
TITLE_SIZE, COLUMN_SIZE, CAPTION_SIZE, LEGEND_SIZE = 16, 14, 12, 12


@dataclass
class TextBox:
    text: str
    box: Box
    role: str  # "title", "column", "caption", "legend", "object"


@dataclass
class Panel:
    row: int
    column: int
    box: Box
    title: str


@dataclass
class LegendEntry:
    name: str
    color: Color
    box: Box  # the whole entry
    swatch: Box


@dataclass
class Picture:
    pixels: np.ndarray
    title: str = ""
    texts: list[TextBox] = field(default_factory=list)
    panels: list[Panel] = field(default_factory=list)
    legend: list[LegendEntry] = field(default_factory=list)

    @property
    def description(self) -> str:
        """One sentence for people who cannot see the picture (the report's alt text)."""
        columns = [t.text for t in self.texts if t.role == "column"]
        parts = [self.title] if self.title else []
        rows = len({p.row for p in self.panels})
        if columns:
            parts.append(f"{rows} row(s) of: {', '.join(columns)}")
        if self.legend:
            parts.append("classes: " + ", ".join(e.name for e in self.legend))
        return ". ".join(parts)

    def info(self) -> dict[str, Any]:
        """What the picture shows and where, as plain JSON values (what `read_picture_info` returns)."""
        info = {"title": self.title, "size": [int(self.pixels.shape[1]), int(self.pixels.shape[0])],
                "texts": [asdict(t) for t in self.texts], "panels": [asdict(p) for p in self.panels],
                "legend": [asdict(e) for e in self.legend]}
        return json.loads(json.dumps(info))

    def save_options(self) -> dict[str, Any]:
        """Keyword arguments for PIL's PNG writer (`atomic_save_image(..., **options)`, `folder.save_image`)."""
        from PIL.PngImagePlugin import PngInfo

        png = PngInfo()
        png.add_text("Title", self.title)
        png.add_text("Description", self.description)
        png.add_itxt(INFO_KEY, json.dumps(self.info()))
        return {"pnginfo": png}


def read_picture_info(path: str | Path) -> dict[str, Any] | None:
    """The layout a masksmith picture was saved with (see `Picture.info`), or None for other pictures."""
    with Image.open(path) as im:
        text = getattr(im, "text", {}).get(INFO_KEY)
    return json.loads(text) if text else None


def draw_text(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int, fill: Color = INK) -> Box:
    """Draw `text` with its top-left at `xy`, whatever it holds (cleaned, each glyph in a font that has it:
    `draw/text.py`); returns the box it covers."""
    return _draw_text(draw, xy, text, size, fill)


def line_height(size: int) -> int:
    return size + max(4, size // 3)


def layout_legend(names: Sequence[str], colors: Sequence[Color], width: int, size: int = LEGEND_SIZE,
                  pad: int = 6) -> tuple[int, list[LegendEntry]]:
    """Entries of a legend `width` pixels wide: equal columns as wide as the longest name allows, as many per
    line as fit, wrapping onto more lines (20+ classes); names too long for a line are shortened. Returns the
    legend's height and the entries (boxes relative to the legend's top-left corner)."""
    swatch, gap = size, 6
    usable = max(1, width - 2 * pad)
    widest = max((text_width(n, size) for n in names), default=0) + swatch + gap + 14
    column = min(usable, widest)
    per_line = max(1, usable // column)
    row_h = line_height(size) + 2
    entries = []
    for k, (name, color) in enumerate(zip(names, colors, strict=True)):
        x = pad + (k % per_line) * column
        y = pad + (k // per_line) * row_h
        shown = fit_text(name, size, column - swatch - gap - 4)
        entries.append(LegendEntry(shown, tuple(int(c) for c in color), (x, y, x + column, y + row_h),
                                   (x, y + 2, x + swatch, y + 2 + swatch)))
    lines = (len(entries) + per_line - 1) // per_line
    return 2 * pad + lines * row_h, entries


def draw_legend(draw: ImageDraw.ImageDraw, entries: list[LegendEntry], origin: tuple[int, int],
                size: int = LEGEND_SIZE) -> list[LegendEntry]:
    """Draw legend entries at `origin`; returns them with boxes in picture coordinates."""
    ox, oy = origin
    placed = []
    for e in entries:
        x0, y0, x1, y1 = e.swatch
        swatch = (x0 + ox, y0 + oy, x1 + ox, y1 + oy)
        draw.rectangle([swatch[0], swatch[1], swatch[2] - 1, swatch[3] - 1], fill=e.color, outline=DARK)
        draw_text(draw, (swatch[2] + 6, swatch[1] - 2), e.name, size)
        bx0, by0, bx1, by1 = e.box
        placed.append(LegendEntry(e.name, e.color, (bx0 + ox, by0 + oy, bx1 + ox, by1 + oy), swatch))
    return placed


def legend(names: Sequence[str], colors: Sequence[Color], width: int) -> Picture:
    """A legend strip on its own, `width` pixels wide."""
    height, entries = layout_legend(names, colors, width)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    placed = draw_legend(ImageDraw.Draw(canvas), entries, (0, 0))
    return Picture(np.asarray(canvas), legend=placed)


def sheet(rows: Sequence[Sequence[np.ndarray]], columns: Sequence[str], *, title: str = "",
          captions: Sequence[str] | None = None, classes: ClassMap | None = None, cell: int = 256, gap: int = 6,
          panel_texts: Sequence[Sequence[Sequence[TextBox]]] | None = None) -> Picture:
    """Panels in a grid, each centred in a column `cell` pixels wide, under `title` and the column titles, with one
    caption line above each row (file name, score, ...) and, with `classes`, their legend below.
    `panel_texts[r][c]`: what was written on that panel (boxes relative to it), kept in the picture's info."""
    if not rows or not any(rows):
        raise ValueError("no pictures to lay out")
    ncols = max(len(r) for r in rows)
    width = max(ncols * (cell + gap) + gap, 320)
    title_h = line_height(TITLE_SIZE) + gap if title else 0
    column_h = line_height(COLUMN_SIZE) if columns else 0
    caption_h = line_height(CAPTION_SIZE) if captions else 0
    # each row as tall as its tallest panel (wide photos leave no empty band under their caption)
    heights = [max((p.shape[0] for p in row), default=0) for row in rows]
    tops = np.cumsum([0] + [caption_h + h + gap for h in heights]).tolist()
    body_top = gap + title_h + column_h
    legend_h, entries = (layout_legend(classes.names, classes.colors, width) if classes else (0, []))
    height = body_top + tops[-1] + legend_h + (gap if not legend_h else 0)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    picture = Picture(np.zeros((0, 0, 3), np.uint8), title=title)
    if title:
        text = fit_text(title, TITLE_SIZE, width - 2 * gap)
        picture.texts.append(TextBox(text, draw_text(draw, (gap, gap), text, TITLE_SIZE), "title"))
    for c, name in enumerate(columns[:ncols]):
        text = fit_text(name, COLUMN_SIZE, cell)
        x = gap + c * (cell + gap) + (cell - text_width(text, COLUMN_SIZE)) // 2
        picture.texts.append(TextBox(text, draw_text(draw, (x, gap + title_h), text, COLUMN_SIZE), "column"))
    pixels = np.asarray(canvas).copy()
    for r, row in enumerate(rows):
        y_row = body_top + tops[r]
        for c, panel in enumerate(row):
            h, w = panel.shape[:2]
            if max(h, w) > cell:
                raise ValueError(f"panel {w}x{h} does not fit a {cell} pixel cell; fit it first")
            x0 = gap + c * (cell + gap) + (cell - w) // 2
            y0 = y_row + caption_h + (heights[r] - h) // 2
            pixels[y0:y0 + h, x0:x0 + w] = panel[..., :3]
            picture.panels.append(Panel(r, c, (x0, y0, x0 + w, y0 + h), columns[c] if c < len(columns) else ""))
            written = panel_texts[r][c] if panel_texts and r < len(panel_texts) and c < len(panel_texts[r]) else []
            for t in written:
                bx0, by0, bx1, by1 = t.box
                picture.texts.append(TextBox(t.text, (bx0 + x0, by0 + y0, bx1 + x0, by1 + y0), t.role))
    canvas = Image.fromarray(pixels)
    draw = ImageDraw.Draw(canvas)
    for r, caption in enumerate(captions or []):
        if caption:
            text = fit_text(caption, CAPTION_SIZE, width - 2 * gap)
            y = body_top + tops[r] + 1
            picture.texts.append(TextBox(text, draw_text(draw, (gap, y), text, CAPTION_SIZE, MUTED), "caption"))
    if entries:
        picture.legend = draw_legend(draw, entries, (0, body_top + tops[-1]))
    picture.pixels = np.asarray(canvas)
    return picture
