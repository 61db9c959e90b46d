"""Objects (instance predictions or ground truth) drawn over a photo: each mask in its class colour with the
same outlines as semantic overlays, so adjacent objects of one class stay apart, and a tag at its box's corner
naming the class and, for predictions, the score ("wheel 0.93")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw

from masksmith.data.schema import class_color
from masksmith.draw.masks import DARK, Color, outline_width, region_outline
from masksmith.draw.sheet import INK, TextBox, draw_text, font

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
        dark, line = region_outline(objects[k].mask.astype(np.uint8), width)
        pixels[line] = colors[objects[k].label]
        pixels[dark] = DARK
    canvas = Image.fromarray(pixels)
    draw = ImageDraw.Draw(canvas)
    tags = []
    for k in order:  # the best object's tag is drawn last, on top
        obj = objects[k]
        text = object_tag(obj, show_scores)
        x0, y0 = float(obj.box[0]), float(obj.box[1])
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font(TAG_SIZE))
        tx = int(min(max(0.0, x0), max(0, canvas.width - (right - left) - 2)))
        ty = int(max(0.0, y0 - (bottom - top) - 3))
        tag = (tx, ty, tx + (right - left) + 4, ty + (bottom - top) + 4)
        draw.rectangle([tag[0], tag[1], tag[2] - 1, tag[3] - 1], fill=colors[obj.label], outline=DARK)
        draw_text(draw, (tx + 2 - left, ty + 1 - top), text, TAG_SIZE, INK)
        tags.append(TextBox(text, tag, "object"))
    return np.asarray(canvas), tags


def draw_instances(image: np.ndarray, objects: Sequence[Drawable], opacity: float = 0.5, show_scores: bool = True,
                   colors: Mapping[str, Color] | None = None) -> np.ndarray:
    """Each object's mask blended in its class colour and outlined, with its class (and score) at its box."""
    return render_instances(image, objects, colors, opacity, show_scores)[0]

