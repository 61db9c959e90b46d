"""Objects (instance predictions or ground truth) drawn over a photo: each mask in its class colour with the
same outlines as semantic overlays, so adjacent objects of one class stay apart, and a tag at its box's corner
naming the class and, for predictions, the score ("wheel 0.93")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw

from masksmith.core.labels import class_color
from masksmith.draw.overlay import DARK, Color, outline_parts, outline_width
from masksmith.draw.sheet import INK, TextBox, draw_text, fit_text, text_box

TAG_SIZE = 11


class Drawable(Protocol):
    label: str
    score: float
    mask: np.ndarray
    box: tuple[float, float, float, float]  # x0, y0, x1, y1


def object_tag(obj: Drawable, show_scores: bool = True) -> str:
    return f"{obj.label} {obj.score:.2f}" if show_scores else obj.label


def render_instances(image: np.ndarray, objects: Sequence[Drawable], colors: Mapping[str, Color] | None = None,
                     opacity: float = 0.5, show_scores: bool = True) -> tuple[np.ndarray, list[TextBox]]:
    """The drawing and the tags it wrote (text and box). `colors` maps class names to colours; objects of a
    class it lacks (or all, without it) take the default palette by order of first appearance."""
    colors = dict(colors or {})
    for obj in objects:
        if obj.label not in colors:
            colors[obj.label] = class_color(len(colors) + 1)
    out = image[..., :3].astype(np.float32).copy()
    order = sorted(range(len(objects)), key=lambda k: objects[k].score)  # lowest first: the best ends on top
    for k in order:
        m = objects[k].mask.astype(bool)
        out[m] = (1 - opacity) * out[m] + opacity * np.asarray(colors[objects[k].label], np.float32)
    pixels = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    width = outline_width(pixels.shape)
    for k in order:  # each object's own outline, so touching objects of one class stay two
        dark, line, thin = outline_parts(objects[k].mask.astype(np.uint8), width)
        pixels[line | thin] = colors[objects[k].label]  # thin objects in their solid colour, not outlined
        pixels[dark] = DARK
    canvas = Image.fromarray(pixels)
    draw = ImageDraw.Draw(canvas)
    tags: list[TextBox] = []
    for k in reversed(order):  # best first: it gets the first choice of place
        obj = objects[k]
        text = fit_text(object_tag(obj, show_scores), TAG_SIZE, max(16, canvas.size[0] - 6))
        left, top, right, bottom = text_box(text, TAG_SIZE)
        size = (int(right - left) + 4, int(bottom - top) + 4)
        tag = place_tag(obj.box, size, canvas.size, [t.box for t in tags])
        color = colors[obj.label]
        draw.rectangle([tag[0], tag[1], tag[2] - 1, tag[3] - 1], fill=color, outline=DARK)
        draw_text(draw, (tag[0] + 2 - int(left), tag[1] + 1 - int(top)), text, TAG_SIZE, ink_on(color))
        tags.append(TextBox(text, tag, "object"))
    return np.asarray(canvas), tags


def ink_on(color: Color) -> Color:
    """Dark text on light colours, white on dark ones (by relative luminance)."""
    r, g, b = (c / 255.0 for c in color)
    return INK if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else (255, 255, 255)


def place_tag(box: Sequence[float], size: tuple[int, int], canvas: tuple[int, int],
              taken: Sequence[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """Where an object's tag goes: above its box's left corner, else inside it, below it or at its right,
    the first of those that overlaps no tag placed before (the least overlapping one when all do)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    tw, th = size
    width, height = canvas
    tries = [(x0, y0 - th), (x0, y0), (x0, y1), (x1 - tw, y0 - th), (x0, y1 - th), (x1 - tw, y1)]
    best, best_overlap = None, None
    for x, y in tries:
        tx = int(min(max(0.0, x), max(0, width - tw)))
        ty = int(min(max(0.0, y), max(0, height - th)))
        candidate = (tx, ty, tx + tw, ty + th)
        overlap = sum(max(0, min(candidate[2], t[2]) - max(candidate[0], t[0])) *
                      max(0, min(candidate[3], t[3]) - max(candidate[1], t[1])) for t in taken)
        if overlap == 0:
            return candidate
        if best_overlap is None or overlap < best_overlap:
            best, best_overlap = candidate, overlap
    return best  # type: ignore[return-value]


def draw_instances(image: np.ndarray, objects: Sequence[Drawable], opacity: float = 0.5, show_scores: bool = True,
                   colors: Mapping[str, Color] | None = None) -> np.ndarray:
    """Each object's mask blended in its class colour and outlined, with its class (and score) at its box."""
    return render_instances(image, objects, colors, opacity, show_scores)[0]

